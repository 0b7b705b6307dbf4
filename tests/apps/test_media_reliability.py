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


# -- 9. output folders: never mixed, never written into the recording being read -----------------------------


def test_narrate_refuses_a_folder_holding_an_earlier_run_and_force_replaces_it(tiny_clip, tmp_path):
    out = tmp_path / "run"
    r = agentkit("narrate", str(tiny_clip), "--out", str(out), "--record", "--no-progress")
    assert r.returncode == 0, r.stderr
    first = (out / "decisions.jsonl").read_bytes()
    r = agentkit("narrate", str(tiny_clip), "--out", str(out), "--no-progress")
    assert "--force" in one_line_error(r)  # was: exit 0, the old frames.mp4 and meta.json left beside new files
    assert (out / "decisions.jsonl").read_bytes() == first and (out / "frames.mp4").exists()
    r = agentkit("narrate", str(tiny_clip), "--out", str(out), "--no-progress", "--force")
    assert r.returncode == 0, r.stderr
    assert not (out / "frames.mp4").exists()  # nothing of the earlier run is left to be mistaken for this one
    assert json.loads((out / "meta.json").read_text())["frames_recorded"] is False
    assert len(read_jsonl(out / "decisions.jsonl")) == decode_all(out / "annotated.mp4")


def test_force_keeps_the_earlier_run_when_the_new_source_does_not_open(tiny_clip, tmp_path):
    out = tmp_path / "run"
    assert agentkit("narrate", str(tiny_clip), "--out", str(out), "--no-progress").returncode == 0
    before = (out / "decisions.jsonl").read_bytes()
    r = agentkit("narrate", str(tmp_path / "missing.mp4"), "--out", str(out), "--force", "--no-progress")
    assert "not found" in one_line_error(r)
    assert (out / "decisions.jsonl").read_bytes() == before


def test_without_out_each_run_gets_a_fresh_folder(tiny_clip, tmp_path):
    for _ in range(2):
        r = agentkit("narrate", str(tiny_clip), "--no-progress", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "runs" / "narrate" / "decisions.jsonl").exists()
    assert (tmp_path / "runs" / "narrate-2" / "decisions.jsonl").exists()  # was: the first run overwritten
    assert "runs/narrate-2" in r.stderr  # the summary line says where the outputs went


def test_replay_never_writes_into_the_recording(tiny_clip, tmp_path):
    rec = tmp_path / "rec"
    assert agentkit("narrate", str(tiny_clip), "--out", str(rec), "--record", "--no-progress").returncode == 0
    snapshot = {p.name: p.read_bytes() for p in rec.iterdir() if p.is_file()}
    for out in (rec, rec / "sub", rec / "." / "sub" / ".."):
        for force in ([], ["--force"]):
            r = agentkit("replay", str(rec), "--out", str(out), *force)
            assert "recording being read" in one_line_error(r)  # was: exit 0, the recording rewritten
    assert {p.name: p.read_bytes() for p in rec.iterdir() if p.is_file()} == snapshot
    assert not (rec / "sub").exists()
    r = agentkit("replay", str(rec), "--out", str(tmp_path / "again"))
    assert r.returncode == 0, r.stderr


def test_bench_detector_checks_its_outputs_before_running(tiny_clip, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / "bench"
    r = agentkit("bench", "detector", str(tiny_clip), "--out", str(out), "--sheet", str(tmp_path / "a-file" / "s.png"))
    assert "a-file is a file" in one_line_error(r)
    assert not (out / "decisions.jsonl").exists()  # was: the whole video processed, then a traceback
    assert agentkit("bench", "detector", str(tiny_clip), "--out", str(out)).returncode == 0
    r = agentkit("bench", "detector", str(tiny_clip), "--out", str(out))
    assert "--force" in one_line_error(r)
    assert agentkit("bench", "detector", str(tiny_clip), "--out", str(out), "--force").returncode == 0


def test_bench_narrate_checks_every_output_before_the_first_run(tiny_clip, tmp_path):
    out = tmp_path / "bench"
    (out / "realtime").mkdir(parents=True)
    (out / "realtime" / "metrics.json").write_text("{}")  # an earlier run's figures
    r = agentkit("bench", "narrate", str(tiny_clip), "--out", str(out))
    assert "--force" in one_line_error(r)
    assert not (out / "offline" / "decisions.jsonl").exists()  # refused before the offline run, not after it
    r = agentkit("bench", "narrate", str(tiny_clip), "--out", str(tmp_path / "b2"), "--json", str(out))
    assert "is a folder" in one_line_error(r)
    assert not (tmp_path / "b2" / "offline" / "decisions.jsonl").exists()


# -- 10. one clear line for bad input: a damaged recording, a missing camera, a model policy without --model --


def test_replay_of_a_damaged_recording_names_the_file_and_line(tiny_clip, tmp_path):
    rec = tmp_path / "rec"
    assert agentkit("narrate", str(tiny_clip), "--out", str(rec), "--record", "--no-progress").returncode == 0
    lines = (rec / "decisions.jsonl").read_text().splitlines()
    lines[9] = lines[9][: len(lines[9]) // 2]  # a line cut in the middle of the file
    (rec / "decisions.jsonl").write_text("\n".join(lines) + "\n")
    r = agentkit("replay", str(rec), "--out", str(tmp_path / "again"))
    line = one_line_error(r)  # was: exit 0, replayed with the first 9 decisions only
    assert f"{rec / 'decisions.jsonl'}:10:" in line


def test_a_missing_camera_prints_exactly_one_line(tmp_path):
    r = agentkit("narrate", "camera:7", "--out", str(tmp_path / "o"), "--no-progress")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [one_line_error(r)]  # was: a dozen OpenCV warnings first
    assert "cannot open camera 7" in r.stderr


def test_a_model_policy_without_model_names_the_option(tmp_path):
    pytest.importorskip("transformers")
    r = agentkit("narrate", "test-pattern", "--policy", "vlm", "--out", str(tmp_path / "o"), "--no-progress")
    assert "--model" in one_line_error(r)  # was: a Python TypeError


def test_build_policy_turns_a_missing_model_argument_into_one_line(monkeypatch):
    from agentkit.apps import narrator
    from agentkit.config import NarratorConfig
    from agentkit.errors import ConfigError

    def needs_model(name, **kwargs):
        raise TypeError("VLMPolicy.__init__() missing 1 required positional argument: 'model'")

    monkeypatch.setattr(narrator, "make_policy", needs_model)
    with pytest.raises(ConfigError, match="--policy vlm needs a model: pass --model PATH"):
        narrator.build_policy(NarratorConfig(policy="vlm"))
    with pytest.raises(TypeError):  # with a model given, a TypeError is a bug to show, not a usage error
        narrator.build_policy(NarratorConfig(policy="vlm", model="x"))
