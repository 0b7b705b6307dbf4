"""Issue 12, media and files: real runs of the CLI on real video, each case one that lost or broke outputs.

Every test runs ``agentkit`` in a subprocess on frames of the bundled clip (resized, cut or recorded), so
what is checked is what a user gets: the exit code, stderr, and whether every output file opens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import cv2
import pytest

from agentkit.envs.media.video import VideoSource
from agentkit.sinks import read_jsonl
from agentkit.video_io import Mp4Writer


def agentkit(*args: str, timeout: float = 240, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "agentkit.apps.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def error_lines(r: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]


def one_line_error(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = error_lines(r)
    assert len(lines) == 1, r.stderr
    return lines[0]


def decode_all(path: Path) -> int:
    """Decode every frame of a video to the end (a torn file raises); returns the frame count."""
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def resized_clip(src: Path, dst: Path, size: tuple[int, int], seconds: float = 3.0) -> Path:
    """The first ``seconds`` of ``src``, resized to ``size`` (w, h), re-encoded (sizes rounded to even)."""
    writer = Mp4Writer(dst, fps=10)
    for f in VideoSource(str(src), end_s=seconds).iter_frames():
        writer.write(cv2.resize(f.image, size, interpolation=cv2.INTER_AREA), f.pts)
    writer.close()
    return dst


# -- 7. frame sizes the HOG window does not fit ------------------------------------------------------------


@pytest.mark.parametrize("size", [(64, 48), (640, 100)])
def test_narrate_a_video_smaller_than_the_detector_window(people_video, tmp_path, size):
    clip = resized_clip(people_video, tmp_path / f"{size[0]}x{size[1]}.mp4", size)
    n = decode_all(clip)
    out = tmp_path / "out"
    r = agentkit("narrate", str(clip), "--out", str(out), "--no-progress")
    assert r.returncode == 0, (r.returncode, r.stderr)  # was -11 (segmentation fault), no outputs
    assert not error_lines(r), r.stderr
    decisions = read_jsonl(out / "decisions.jsonl")
    assert len(decisions) == n and not any(d.get("errors") for d in decisions)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processed"] == n and metrics["error"] is None
    assert decode_all(out / "annotated.mp4") == n
