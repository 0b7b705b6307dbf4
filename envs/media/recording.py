"""Replaying a recording folder (``frames.mp4`` + ``decisions.jsonl``) as a lossless source.

Why: any policy can then be run on exactly the frames another one saw, with their original stream times
and sequence numbers (``agentkit replay``, training data export). The writer is
:class:`agentkit.recorder.Recorder`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from agentkit.envs.media.video import VideoSource
from agentkit.errors import SourceError
from agentkit.sinks import read_jsonl
from agentkit.sources import Source
from agentkit.types import Decision, Frame


class RecordingSource(Source):
    """Replays a recording's frames (lossless) so any policy can be run on exactly what another saw."""

    name = "recording"
    lossless = True

    @classmethod
    def from_spec(cls, spec: str, *, realtime: bool = False, **options: Any) -> RecordingSource:
        return cls(spec)

    def __init__(self, rec_dir: str | Path) -> None:
        self.dir = Path(rec_dir)
        if not (self.dir / "frames.mp4").exists():
            raise SourceError(f"{self.dir} is not a recording with frames (no frames.mp4)")
        self._video = VideoSource(str(self.dir / "frames.mp4"))
        self.fps = None

    def recorded_decisions(self) -> Iterator[Decision]:
        path = self.dir / "decisions.jsonl"
        if path.exists():
            for d in read_jsonl(path):
                yield Decision.from_dict(d)

    async def open(self) -> None:
        await self._video.open()
        self.fps = self._video.fps

    async def frames(self) -> AsyncIterator[Frame]:
        decisions = list(self.recorded_decisions())
        i = 0
        async for frame in self._video.frames():
            if i < len(decisions):  # keep the original stream time and sequence number
                frame.pts = decisions[i].pts
                frame.seq = decisions[i].seq
            frame.source = f"recording:{self.dir}"
            i += 1
            yield frame

    async def close(self) -> None:
        await self._video.close()
