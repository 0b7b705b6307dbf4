"""Subtitles of the Responses: SubRip (``.srt``) and WebVTT (``.vtt``).

A cue starts at the Response's stream time and lasts ``hold_s`` or until the next Response, whichever
comes first. A cue is written as soon as its end is known and the file is flushed, so a run that dies
half-way leaves a valid subtitle file up to the last Response.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from agentkit.sinks import Sink
from agentkit.types import Decision, DecisionKind, Frame


def _stamp(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


class SubtitleSink(Sink):
    """Writes ``.srt`` or ``.vtt`` (chosen by ``fmt`` or the file suffix)."""

    def __init__(self, path: str | Path, *, fmt: str | None = None, hold_s: float = 4.0, min_s: float = 0.5) -> None:
        self.path = Path(path)
        self.fmt = (fmt or self.path.suffix.lstrip(".")).lower()
        if self.fmt not in ("srt", "vtt"):
            raise ValueError(f"subtitle format must be srt or vtt, got {self.fmt!r}")
        self.hold_s, self.min_s = hold_s, min_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[str] | None = open(self.path, "w", encoding="utf-8")
        if self.fmt == "vtt":
            self._f.write("WEBVTT\n\n")
            self._f.flush()
        self._pending: tuple[float, str] | None = None
        self._last_pts = 0.0
        self.cues = 0

    def _write(self, start: float, end: float, text: str) -> None:
        assert self._f is not None
        self.cues += 1
        sep = "," if self.fmt == "srt" else "."
        head = f"{self.cues}\n" if self.fmt == "srt" else ""
        self._f.write(f"{head}{_stamp(start, sep)} --> {_stamp(end, sep)}\n{text.strip()}\n\n")
        self._f.flush()

    def _flush_pending(self, until: float | None) -> None:
        if self._pending is None:
            return
        start, text = self._pending
        end = start + self.hold_s if until is None else min(start + self.hold_s, until)
        self._write(start, max(end, start + self.min_s), text)
        self._pending = None

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        self._last_pts = decision.pts
        if decision.kind is not DecisionKind.RESPONSE or not decision.text:
            return
        self._flush_pending(until=decision.pts)
        self._pending = (decision.pts, decision.text)

    def close(self) -> None:
        if self._f is None:
            return
        self._flush_pending(until=None)
        self._f.close()
        self._f = None


def read_cues(path: str | Path) -> list[tuple[float, float, str]]:
    """Parse an ``.srt`` or ``.vtt`` file back into ``(start_s, end_s, text)`` (used by tests and replay)."""

    def secs(stamp: str) -> float:
        hms, ms = stamp.replace(",", ".").rsplit(".", 1)
        h, m, s = (int(x) for x in hms.split(":"))
        return h * 3600 + m * 60 + s + int(ms) / 1000

    cues = []
    for block in Path(path).read_text(encoding="utf-8").split("\n\n"):
        lines = [ln for ln in block.strip().splitlines() if ln.strip()]
        for i, ln in enumerate(lines):
            if "-->" in ln:
                a, b = (x.strip() for x in ln.split("-->"))
                cues.append((secs(a), secs(b), "\n".join(lines[i + 1 :])))
                break
    return cues
