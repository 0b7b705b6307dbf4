"""The sink contract: where decisions and action results go (subtitles, speech, video, files, a bus).

Sinks are called on the event-loop thread, in order, once per processed frame; they must be quick
(heavy work such as speech synthesis goes to a thread of their own). ``close`` must leave every file
valid, also after an error upstream, which is why the loop always calls it in a ``finally``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from agentkit.types import ActionResult, Decision, Frame


class Sink:
    """Receives every decision (with the frame it answers) and every action result. Defaults do nothing."""

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        """Called once per processed (or gated) frame."""

    def on_action(self, result: ActionResult) -> None:
        """Called once per executed tool call."""

    def close(self) -> None:
        """Flush and close. Called exactly once, also when the run failed."""


class JsonlWriter:
    """Append-only JSON Lines, flushed per line: a crash loses at most the line being written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: IO[str] | None = open(self.path, "w", encoding="utf-8")
        self.lines = 0

    def write(self, obj: dict[str, Any]) -> None:
        if self._f is None:
            raise ValueError(f"{self.path} is closed")
        self._f.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._f.flush()
        self.lines += 1

    def close(self) -> None:
        if self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            self._f = None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSON Lines file, skipping a torn last line (from a killed writer) instead of failing."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return out
