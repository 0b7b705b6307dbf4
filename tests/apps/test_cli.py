"""End-to-end runs of the real CLI in a subprocess: outputs, and bad input as one line + non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from agentkit.sinks import read_jsonl
from agentkit.tools.narration.subtitles import read_cues


def agentkit(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "agentkit.apps.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def count_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_narrate_short_clip_end_to_end(short_clip, tmp_path):
    out = tmp_path / "run"
    r = agentkit("narrate", str(short_clip), "--out", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    decisions = read_jsonl(out / "decisions.jsonl")
    assert len(decisions) >= 190  # 20 s at 10 fps, lossless
    assert all({"pts", "kind", "text"} <= set(d) for d in decisions)
    assert {d["kind"] for d in decisions} <= {"silence", "standby", "response"}
    arrivals = [d for d in decisions if d["kind"] == "response" and "arrived" in (d["text"] or "")]
    assert arrivals, "the first person's arrival (around 7-8 s) was not narrated"
    assert 5.0 <= arrivals[0]["pts"] <= 11.0
    cues = read_cues(out / "narration.srt")
    assert cues and cues[0][2] == arrivals[0]["text"]
    assert read_cues(out / "narration.vtt") == cues
    assert count_frames(out / "annotated.mp4") == len(decisions)
    m = json.loads((out / "metrics.json").read_text())
    assert m["processed"] == len(decisions) and m["dropped"] == 0
    assert m["real_time_factor"] > 1.0  # faster than real time even on a loaded 2-core machine
    assert {"p50", "p95", "p99"} <= set(m["latency_ms"])


def test_narrate_test_pattern_and_replay_a_recording(tmp_path):
    rec = tmp_path / "rec"
    r = agentkit("narrate", "test-pattern", "--out", str(rec), "--record", "--no-progress")
    assert r.returncode == 0, r.stderr
    n = len(read_jsonl(rec / "decisions.jsonl"))
    assert n == 100 and count_frames(rec / "frames.mp4") == n
    r = agentkit("replay", str(rec), "--out", str(tmp_path / "again"))
    assert r.returncode == 0, r.stderr
    again = read_jsonl(tmp_path / "again" / "decisions.jsonl")
    assert [d["seq"] for d in again] == list(range(n))


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize(
    "source,expected",
    [("missing.mp4", "not found"), ("camera:7", "cannot open camera 7"), ("bogus", "unknown source")],
)
def test_bad_sources_fail_with_one_line(tmp_path, source, expected):
    r = agentkit("narrate", source, "--out", str(tmp_path / "o"), "--no-progress")
    assert expected in one_line_error(r)


def test_corrupt_video_fails_with_one_line(tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(os.urandom(20_000))
    r = agentkit("narrate", str(bad), "--out", str(tmp_path / "o"), "--no-progress")
    assert "video" in one_line_error(r)


def test_truncated_video_keeps_outputs_valid_up_to_last_good_frame(people_video, tmp_path):
    data = people_video.read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 8])
    out = tmp_path / "o"
    r = agentkit("narrate", str(cut), "--out", str(out), "--no-progress")
    assert "truncated video" in one_line_error(r)
    decisions = read_jsonl(out / "decisions.jsonl")
    assert len(decisions) > 100  # the frames before the cut were all processed and recorded
    # every line complete, subtitles closed and parseable, video playable up to the same frame
    assert count_frames(out / "annotated.mp4") == len(decisions)
    assert read_cues(out / "narration.srt")
    assert (out / "narration.vtt").read_text().startswith("WEBVTT")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processed"] == len(decisions) and "truncated" in metrics["error"]


def test_unknown_policy_and_bad_config(tmp_path):
    r = agentkit("narrate", "test-pattern", "--policy", "nope", "--out", str(tmp_path / "o"))
    assert "unknown policy 'nope'" in one_line_error(r)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("source: test-pattern\nmax_frames: -3\n")
    r = agentkit("narrate", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert "max_frames=-3" in one_line_error(r)
