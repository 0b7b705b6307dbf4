"""Recording a run so it can be inspected, replayed through another policy, or trained on.

A recording is a folder: ``frames.mp4`` (the frames the policy processed, with their stream times),
``decisions.jsonl`` (one line per processed frame, in the same order), ``actions.jsonl`` (one line per
executed tool call) and ``meta.json``. Frame *i* of the video answers line *i* of ``decisions.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
