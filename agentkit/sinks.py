"""The sink contract: where decisions and action results go (subtitles, speech, video, files, a bus).

Sinks are called on the event-loop thread, in order, once per processed frame; they must be quick
(heavy work such as speech synthesis goes to a thread of their own). ``close`` must leave every file
valid, also after an error upstream, which is why the loop always calls it in a ``finally``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import IO, Any

from agentkit.errors import AgentkitError
from agentkit.types import ActionResult, Decision, Frame

log = logging.getLogger(__name__)


class JsonlError(AgentkitError):
    """A JSON Lines file has a bad line before its end: it was edited or damaged, not cut by a killed writer."""


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
    """Read a JSON Lines file of objects.

    A torn *last* line (a writer killed mid-line) is skipped with a warning: everything before it is
    complete. Any other bad line means the file is damaged, and reading on would silently use part of it.

    Raises:
        JsonlError: a line before the last is not a JSON object; the message names the file and the line.
        OSError: the file cannot be read.
    """
    out: list[dict[str, Any]] = []
    bad: tuple[int, str] | None = None  # the last bad line so far, forgiven only if nothing follows it
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            if bad is not None:
                raise JsonlError(f"{path}:{bad[0]}: {bad[1]}; lines follow it, so the file is damaged, not cut short")
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:  # a line cut inside a multi-byte character, or binary garbage
                bad = (n, "not UTF-8 text")
                continue
            except json.JSONDecodeError as e:
                bad = (n, f"not valid JSON ({e.msg})")
                continue
            if not isinstance(obj, dict):
                raise JsonlError(f"{path}:{n}: expected a JSON object, got {type(obj).__name__}")
            out.append(obj)
    if bad is not None:
        log.warning("%s:%d: skipped a torn last line (the writer was stopped mid-line)", path, bad[0])
    return out
