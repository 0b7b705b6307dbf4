"""Issue 12, media and files: real runs of the CLI on real video, each case one that lost or broke outputs.

Every test runs ``agentkit`` in a subprocess on frames of the bundled clip (resized, cut or recorded), so
what is checked is what a user gets: the exit code, stderr, and whether every output file opens.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import av
import cv2
import pytest

from agentkit.envs.media.video import VideoSource
from agentkit.sinks import read_jsonl
from agentkit.tools.narration.subtitles import read_cues
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


# -- 8. SIGTERM / SIGINT on a live run --------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_a_live_run_with_every_output_complete(people_video, tmp_path, sig):
    speech = shutil.which("espeak-ng") is not None or shutil.which("espeak") is not None
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "agentkit.apps.cli", "narrate", str(people_video), "--realtime", "--record"]
    cmd += ["--out", str(out), "--no-progress"] + (["--tts"] if speech else [])
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            deadline = time.monotonic() + 90
            # wait for the first Response (~8 s into the clip), so speech and subtitles have content
            while not ((out / "messages.jsonl").exists() and (out / "messages.jsonl").read_text().strip()):
                assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
                assert time.monotonic() < deadline, "no Response within 90 s"
                time.sleep(0.2)
            time.sleep(1.0)
            proc.send_signal(sig)
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert rc == 128 + sig.value, (rc, stderr)  # was -15 (killed, files torn) for SIGTERM
    assert f"stopped by {sig.name}" in stderr and "Traceback" not in stderr, stderr
    decisions = read_jsonl(out / "decisions.jsonl")
    assert 20 < len(decisions) < 1000  # stopped early, every processed frame recorded
    assert decode_all(out / "annotated.mp4") == len(decisions)
    assert decode_all(out / "frames.mp4") == len(decisions)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["decisions"] == len(decisions) and meta["frames_recorded"] is True
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processed"] == len(decisions) and metrics["stopped_by"] == sig.name
    assert read_cues(out / "narration.srt")
    if speech:
        with wave.open(str(out / "narration.wav")) as w:
            assert w.getnframes() / w.getframerate() >= len(decisions) / 10 - 1.0  # the stream's length
    r = agentkit("replay", str(out), "--out", str(tmp_path / "replayed"))
    assert r.returncode == 0, r.stderr
    assert len(read_jsonl(tmp_path / "replayed" / "decisions.jsonl")) == len(decisions)


def test_second_signal_cancels_the_run_and_restores_the_default_handler():
    from agentkit.apps.narrator import StopOnSignal

    class Stream:
        stopped = 0

        def stop(self) -> None:
            self.stopped += 1

    stream = Stream()

    async def main() -> StopOnSignal:
        with StopOnSignal() as stopper:
            assert signal.SIGTERM in stopper._installed  # or the kill below would end pytest
            stopper.attach(stream)  # type: ignore[arg-type]
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.2)
            assert stream.stopped == 1 and stopper.received is signal.SIGTERM and not stopper.forced
            os.kill(os.getpid(), signal.SIGINT)
            with pytest.raises(asyncio.CancelledError):
                await asyncio.sleep(5)
            assert stopper.forced
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # a third one ends the process
            return stopper

    before = signal.getsignal(signal.SIGINT)
    asyncio.run(main())
    assert signal.getsignal(signal.SIGINT) is before
