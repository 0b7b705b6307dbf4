"""The source contract and ``open_source``, which turns a CLI string into a source.

A source is an async producer of :class:`~agentkit.types.Frame`. Live sources (camera, screen, a video
played in real time, a browser, a robot) are *lossy*: the loop keeps only the latest frame when the
policy is busy. An offline file processed as fast as possible is *lossless*: the loop takes every frame
and the source waits for it, so offline results do not depend on machine speed.
"""

from __future__ import annotations

import abc
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from agentkit.errors import SourceError
from agentkit.types import Frame


class Source(abc.ABC):
    """An async producer of frames. Use as ``async with source: async for frame in source.frames(): ...``."""

    name: str = "source"
    lossless: bool = False
    fps: float | None = None

    async def open(self) -> None:
        """Acquire the device or file; raise :class:`SourceError` with one clear line if impossible."""

    @abc.abstractmethod
    def frames(self) -> AsyncIterator[Frame]:
        """Yield frames until the stream ends (or forever, for live sources)."""

    async def close(self) -> None:
        """Release the device or file."""

    async def __aenter__(self) -> Source:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


def open_source(spec: str, *, realtime: bool = False, **kwargs: Any) -> Source:
    """Build a source from a CLI string.

    ``spec`` is a file path, a URL (``rtsp://``, ``http://``...), ``camera:N`` or ``camera:URL``,
    ``screen`` / ``screen:N`` (monitor), ``test-pattern``, ``mqtt://host:port/name`` (a remote robot or
    camera), or a recording folder (replayed losslessly). Raises :class:`SourceError` for anything else.
    """
    spec = spec.strip()
    if spec == "test-pattern" or spec.startswith("test-pattern:"):
        from agentkit.envs.pattern import TestPatternSource

        return TestPatternSource(realtime=realtime, **kwargs)
    if spec.startswith("camera:"):
        from agentkit.envs.camera import CameraSource

        return CameraSource(spec.removeprefix("camera:"), **kwargs)
    if spec == "screen" or spec.startswith("screen:"):
        from agentkit.envs.screen import ScreenSource

        monitor = int(spec.split(":", 1)[1]) if ":" in spec else 1
        return ScreenSource(monitor=monitor, **kwargs)
    if spec.startswith("mqtt://"):
        from agentkit.envs.mqtt_source import MqttSource

        return MqttSource(spec, **kwargs)
    if _URL.match(spec):
        from agentkit.envs.video import VideoSource

        return VideoSource(spec, realtime=True if not spec.startswith("file://") else realtime, **kwargs)
    path = Path(spec)
    if path.suffix or path.exists():
        from agentkit.envs.video import VideoSource

        if not path.exists():
            raise SourceError(f"video file not found: {spec}")
        if path.is_dir() and (path / "frames.mp4").exists():
            from agentkit.recorder import RecordingSource

            return RecordingSource(path)
        if path.is_dir():
            raise SourceError(f"expected a video file, got a directory: {spec}")
        return VideoSource(str(path), realtime=realtime, **kwargs)
    raise SourceError(
        f"unknown source {spec!r}: expected a video file, a URL, camera:N, screen, test-pattern or mqtt://host/name"
    )
