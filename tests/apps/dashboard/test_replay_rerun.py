"""``agentkit dashboard DIR``: a recording's frames decoded on demand, the right one for each index; and
``--rerun FILE.rrd``: the file is written, and read back with the SDK's own reader."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from agentkit.apps.dashboard.replay import ReplayHub, ReplayStream
from agentkit.apps.dashboard.server import Address, DashboardServer

CLI = [sys.executable, "-m", "agentkit.apps.cli"]


def decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def jpeg_rgb(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def test_frames_come_back_by_index_in_any_order(record_pattern, tmp_path):
    rec = record_pattern(tmp_path / "rec", seconds=6.0)
    truth = decode_all(rec / "frames.mp4")
    stream = ReplayStream(rec, jpeg_width=960)
    try:
        assert stream.frames == len(truth) == 60
        order = [0, 59, 30, 31, 33, 5, 58, 12, 12, 40]  # seeks back and forth, short forward decodes, a cache hit
        for i in order:
            jpeg, header = stream.frame(i, annotated=False)
            diff = np.abs(jpeg_rgb(jpeg).astype(int) - truth[i].astype(int)).mean()
            assert diff < 4.0, (i, diff)  # JPEG noise only: the same picture
            assert header["i"] == i and header["seq"] == i
        drawn, _ = stream.frame(39, annotated=True)  # frame 39 answers a Response: its box and caption drawn
        shown = jpeg_rgb(drawn)  # upscaled 2x by the annotator, so its text stays readable
        plain = cv2.resize(truth[39], (shown.shape[1], shown.shape[0]), interpolation=cv2.INTER_NEAREST)
        assert shown.shape == (480, 640, 3) and np.abs(shown.astype(int) - plain.astype(int)).mean() > 4.0
        tl = stream.timeline()
        assert tl["counters"]["processed"] == 60 and tl["counters"]["responses"] == 6
        assert tl["counters"]["actions"] == 6 and tl["counters"]["action_errors"] == 3
        assert [d["i"] for d in tl["decisions"]] == list(range(60)) and len(tl["series"]) == 6
        with pytest.raises(IndexError):
            stream.frame(60)
    finally:
        stream.close()


def test_replay_server_serves_timeline_and_frames(record_pattern, tmp_path):
    pytest.importorskip("fastapi")
    rec = record_pattern(tmp_path / "pattern", seconds=2.0)
    hub = ReplayHub([rec])
    server = DashboardServer(hub, Address("127.0.0.1", 0), linger_s=0.2)
    url = server.start()
    try:
        info = json.load(urllib.request.urlopen(url + "api/info", timeout=5))
        assert info == {"mode": "replay", "title": "pattern", "streams": ["pattern"]}
        tl = json.load(urllib.request.urlopen(url + "api/streams/pattern/timeline", timeout=10))
        assert tl["frames"] == 20 and tl["decisions"][19]["kind"] == "response"
        r = urllib.request.urlopen(url + "api/streams/pattern/frames/19.jpg", timeout=10)
        assert r.headers["Content-Type"] == "image/jpeg" and json.loads(r.headers["X-Frame"])["seq"] == 19
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url + "api/streams/pattern/frames/20.jpg", timeout=10)
    finally:
        server.stop()
        hub.close()


def test_a_narration_without_frames_mp4_replays_its_annotated_video(events_clip, tmp_path):
    out = tmp_path / "run"
    r = subprocess.run(
        [*CLI, "narrate", str(events_clip), "--out", str(out), "--no-progress", "--max-frames", "25"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert not (out / "frames.mp4").exists()
    stream = ReplayStream(out)
    try:
        assert stream.frames == 25 and not stream.annotate  # drawn already: not drawn twice
        jpeg, header = stream.frame(24)
        assert header["annotated"] and jpeg_rgb(jpeg).shape[1] == 480
    finally:
        stream.close()


def test_rerun_file_is_written_and_readable(tmp_path):
    rr = pytest.importorskip("rerun")
    path = tmp_path / "run.rrd"
    r = subprocess.run(
        [*CLI, "narrate", "test-pattern", "--max-frames", "30", "--out", str(tmp_path / "out"), "--rerun", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert r.returncode == 0, r.stderr
    assert path.stat().st_size > 10_000
    with path.open("rb") as f:
        assert f.read(4) == b"RRF2"  # Rerun's file header
    reader_cls = getattr(getattr(rr, "chunk", None), "RrdReader", None)
    if reader_cls is None:
        pytest.skip(f"rerun-sdk {rr.__version__} has no RrdReader: file written, not read back")
    summary = str(reader_cls(path).store().summary())
    rows: dict[str, int] = {}
    for m in re.finditer(r"^/(\S+) rows=(\d+)", summary, re.M):  # one line per chunk
        rows[m.group(1)] = rows.get(m.group(1), 0) + int(m.group(2))
    assert rows["test-pattern/image"] == 30 and rows["test-pattern/state"] == 30, summary
    assert rows["test-pattern/latency_ms"] == 30 and rows["test-pattern/model_ms"] == 30
    if shutil.which("rerun") is not None:  # the CLI that ships with the SDK reads it too
        out = subprocess.run(["rerun", "rrd", "stats", str(path)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
