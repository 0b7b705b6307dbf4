"""Recording a run so it can be inspected, replayed through another policy, or trained on.

A recording is a folder: ``frames.mp4`` (the frames the policy processed, with their stream times),
``decisions.jsonl`` (one line per processed frame, in the same order), ``actions.jsonl`` (one line per
executed tool call) and ``meta.json``. Frame *i* of the video answers line *i* of ``decisions.jsonl``.

:func:`check_output_dir` is the overwrite rule every command that writes a run folder applies before it
starts: never write into the recording being read, never mix with an earlier run's files unless asked to
replace them (``--force``), and fail at once when the folder cannot be written.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError
from agentkit.sinks import JsonlWriter, Sink
from agentkit.types import ActionResult, Decision, Frame
from agentkit.video_io import Mp4Writer


class Recorder(Sink):
    """Writes a recording folder. ``frames=False`` keeps only the JSONL files (cheap, for long runs)."""

    def __init__(
        self, out_dir: str | Path, *, frames: bool = True, fps: float = 10.0, meta: dict[str, Any] | None = None
    ):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.decisions = JsonlWriter(self.dir / "decisions.jsonl")
        self.actions = JsonlWriter(self.dir / "actions.jsonl")
        self.video = Mp4Writer(self.dir / "frames.mp4", fps=fps) if frames else None
        self.meta = dict(meta or {})
        self.meta["frames_recorded"] = frames

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        self.decisions.write(decision.to_dict())
        if self.video is not None:
            self.video.write(frame.image, frame.pts)

    def on_action(self, result: ActionResult) -> None:
        self.actions.write(result.to_dict())

    def close(self) -> None:
        try:
            if self.video is not None:
                self.video.close()
        finally:
            self.decisions.close()
            self.actions.close()
            self.meta["decisions"] = self.decisions.lines
            self.meta["actions"] = self.actions.lines
            (self.dir / "meta.json").write_text(json.dumps(self.meta, indent=2))


def check_output_dir(
    out: str | Path,
    names: Iterable[str],
    *,
    replace: bool = False,
    reading: str | Path | None = None,
    option: str = "--out",
) -> list[Path]:
    """Check, before a run starts, that ``out`` can take the files ``names`` without losing anything.

    Creates ``out`` when it is missing. Returns the files and folders of an earlier run found there (the
    caller removes them with :func:`remove_outputs` once its input has opened, when ``replace``).

    Args:
        out: the output folder.
        names: the file (or folder) names the run writes into ``out``.
        replace: the user asked to replace an earlier run's files (``--force``).
        reading: the input of the run when it is a local file or folder: ``out`` may never be that
            recording folder or lie inside it, nor hold the input file among the names it writes,
            ``replace`` or not.
        option: how the folder is named in messages.

    Raises:
        ConfigError: any of the above, ``out`` is a file, or it cannot be created or written.
    """
    out = Path(out)
    names = list(names)
    target = out.resolve()
    if reading is not None and Path(reading).exists():
        src = Path(reading).resolve()
        if src.is_dir() and (target == src or src in target.parents):
            raise ConfigError(
                f"{option} {out} would write into {reading}, the recording being read; choose another folder"
            )
        if src.is_file() and src.parent == target and src.name in names:
            raise ConfigError(f"{option} {out} would overwrite the input {reading}; choose another folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} {out} is a file, expected a folder")
    found = [out / n for n in names if (out / n).exists() or (out / n).is_symlink()]
    if found and not replace:
        shown = ", ".join(p.name for p in found[:4]) + (", ..." if len(found) > 4 else "")
        raise ConfigError(
            f"{option} {out} already holds an earlier run ({shown}); pass --force to replace those files, "
            f"or choose another {option}"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create {option} {out}: {e.strerror or e}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write to {option} {out}: permission denied")
    return found


def remove_outputs(paths: Iterable[Path]) -> None:
    """Delete an earlier run's outputs (files, or folders such as ``speech/``) that the new run replaces."""
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
