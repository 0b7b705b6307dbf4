"""Speech for Responses through espeak-ng: one WAV per Response plus a timeline track.

Synthesis runs in a worker thread so it never delays the next frame. ``narration.wav`` places every
utterance at its Response's stream time, ready to be muxed under the annotated video. Live playback is
attempted only where an audio device exists (``/dev/snd`` and ``aplay``).
"""

from __future__ import annotations

import glob
import logging
import shutil
import subprocess
import wave
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from agentkit.errors import ConfigError
from agentkit.sinks import Sink
from agentkit.types import Decision, DecisionKind, Frame

log = logging.getLogger(__name__)


def espeak_binary() -> str:
    exe = shutil.which("espeak-ng") or shutil.which("espeak")
    if exe is None:
        raise ConfigError("speech needs espeak-ng: apt-get install espeak-ng")
    return exe


def synthesize(text: str, path: str | Path, *, voice: str = "en", rate_wpm: int = 175) -> Path:
    """Write ``text`` as speech to a WAV file with espeak-ng. Text is passed as an argument, never a shell."""
    path = Path(path)
    subprocess.run(
        [espeak_binary(), "-v", voice, "-s", str(rate_wpm), "-w", str(path), "--", text],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path


def can_play_audio() -> bool:
    return bool(glob.glob("/dev/snd/pcm*p")) and shutil.which("aplay") is not None


class SpeechSink(Sink):
    """Speaks each Response: ``speech/NNNN.wav`` per utterance, ``narration.wav`` on the stream timeline."""

    def __init__(
        self, out_dir: str | Path, *, voice: str = "en", rate_wpm: int = 175, play: bool | None = None
    ) -> None:
        espeak_binary()  # fail early, with the install hint
        self.dir = Path(out_dir)
        (self.dir / "speech").mkdir(parents=True, exist_ok=True)
        self.voice, self.rate = voice, rate_wpm
        self.play = can_play_audio() if play is None else play
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
        self._jobs: list[tuple[float, Future[Path]]] = []
        self._last_pts = 0.0

    def _speak(self, text: str, path: Path) -> Path:
        synthesize(text, path, voice=self.voice, rate_wpm=self.rate)
        if self.play:
            subprocess.Popen(["aplay", "-q", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return path

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        self._last_pts = max(self._last_pts, decision.pts)
        if decision.kind is DecisionKind.RESPONSE and decision.text:
            path = self.dir / "speech" / f"{len(self._jobs):04d}_{decision.pts:08.2f}s.wav"
            self._jobs.append((decision.pts, self._pool.submit(self._speak, decision.text, path)))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        clips: list[tuple[float, np.ndarray]] = []
        rate = 22050
        for pts, job in self._jobs:
            try:
                path = job.result()
            except Exception as e:  # a failed utterance is logged; the others still make the track
                log.warning("speech synthesis failed at %.1fs: %s", pts, e)
                continue
            with wave.open(str(path)) as w:
                rate = w.getframerate()
                clips.append((pts, np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)))
        end = max([self._last_pts] + [p + len(c) / rate for p, c in clips])
        track = np.zeros(int(end * rate) + rate // 2, dtype=np.int32)
        for pts, clip in clips:
            i = int(pts * rate)
            track[i : i + len(clip)] += clip[: len(track) - i]
        with wave.open(str(self.dir / "narration.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(np.clip(track, -32768, 32767).astype(np.int16).tobytes())
