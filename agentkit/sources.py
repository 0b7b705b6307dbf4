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
from agentkit.registry import Registry
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

    @classmethod
    def from_spec(cls, spec: str, *, realtime: bool = False, **options: Any) -> Source:
        """Build from a CLI source string: the part after ``kind:``, or the whole URL or path.

        ``realtime`` asks a file to be paced to its stream clock; live sources ignore it.
        """
        return cls(**options)

    async def __aenter__(self) -> Source:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


SOURCES: Registry[type[Source]] = Registry("sources")
"""Source kinds by name (``video``, ``camera``, ``mqtt``...): entry points of group ``agentkit.sources``."""

_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://", re.I)


def source_kind(spec: str) -> tuple[str, str]:
    """Split a CLI source string into ``(kind, argument)``.

    ``camera:0`` -> ``("camera", "0")``; ``screen`` -> ``("screen", "")``; a URL whose scheme is a registered
    kind (``mqtt://...``) goes to that kind, any other URL (``rtsp://``, ``http://``) to ``video``; a folder
    holding ``frames.mp4`` is a ``recording``; anything that looks like a file is a ``video``.

    Raises:
        SourceError: for a string that is none of these.
    """
    spec = spec.strip()
    url = _URL.match(spec)
    if url:
        scheme = url.group("scheme").lower()
        return (scheme if scheme in SOURCES else "video"), spec
    head, _, rest = spec.partition(":")
    if head in SOURCES and head not in ("video", "recording"):
        return head, rest
    path = Path(spec)
    if path.is_dir() and (path / "frames.mp4").exists():
        return "recording", spec
    if path.suffix or path.exists():
        return "video", spec
    raise SourceError(
        f"unknown source {spec!r}: expected a video file, a URL, camera:N, screen, test-pattern or mqtt://host/name"
    )


def open_source(spec: str, *, realtime: bool = False, **kwargs: Any) -> Source:
    """Build a source from a CLI string (see :func:`source_kind`); ``kwargs`` go to the source.

    Raises:
        SourceError: an unknown or unusable source string, with one clear line.
    """
    kind, arg = source_kind(spec)
    try:
        cls = SOURCES.get(kind)
    except KeyError as e:
        raise SourceError(str(e.args[0])) from None
    return cls.from_spec(arg, realtime=realtime, **kwargs)
