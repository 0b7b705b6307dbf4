"""Video files and network streams through PyAV.

Decoding and colour conversion happen once, here, in a worker thread so the event loop stays free.
Offline files default to *lossless* as-fast-as-possible processing (every frame reaches the policy, so
results do not depend on machine speed); ``realtime=True`` paces frames to the stream clock and makes the
source lossy like a live camera. A corrupt or truncated stream raises :class:`SourceError` after the frames
decoded so far were delivered, so outputs stay valid up to the last good frame. ``pts`` is seconds of the
file (from the stream's start), so labels written against a player's clock line up; ``start_s`` seeks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import av
import numpy as np

from agentkit.errors import SourceError
from agentkit.sources import Source
from agentkit.types import Frame


def _resize(img: np.ndarray, max_width: int | None) -> np.ndarray:
    if not max_width or img.shape[1] <= max_width:
        return img
    import cv2

    h = int(round(img.shape[0] * max_width / img.shape[1]))
    return cv2.resize(img, (max_width, h), interpolation=cv2.INTER_AREA)


class VideoSource(Source):
    """Frames of a video file or URL (anything FFmpeg opens: mp4, mkv, rtsp://, http://)."""

    name = "video"

    @classmethod
    def from_spec(cls, spec: str, *, realtime: bool = False, **options: Any) -> VideoSource:
        """A URL (live streams are paced, ``file://`` as asked) or a file path (must exist)."""
        if "://" in spec:
            return cls(spec, realtime=True if not spec.startswith("file://") else realtime, **options)
        path = Path(spec)
        if not path.exists():
            raise SourceError(f"video file not found: {spec}")
        if path.is_dir():
            raise SourceError(f"expected a video file, got a directory: {spec}")
        return cls(str(path), realtime=realtime, **options)

    def __init__(
        self,
        path: str,
        *,
        realtime: bool = False,
        speed: float = 1.0,
        max_width: int | None = None,
        start_s: float = 0.0,
        end_s: float | None = None,
        open_timeout_s: float = 10.0,
    ) -> None:
        self.path = path
        self.realtime = realtime
        self.lossless = not realtime
        self.speed = speed
        self.max_width = max_width
        self.start_s = start_s
        self.end_s = end_s
        self.open_timeout_s = open_timeout_s
        self.fps: float | None = None
        self.duration_s: float | None = None
        self.size: tuple[int, int] | None = None
        self._container: Any = None
        self.frames_decoded = 0

    async def open(self) -> None:
        await asyncio.to_thread(self._open_blocking)

    def _open_blocking(self) -> None:
        try:
            self._container = av.open(self.path, timeout=self.open_timeout_s)
        except FileNotFoundError:
            raise SourceError(f"video file not found: {self.path}") from None
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise SourceError(f"cannot open video {self.path}: {_msg(e)}") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"no video stream in {self.path}")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self.fps = float(stream.average_rate) if stream.average_rate else None
        if stream.duration is not None and stream.time_base is not None:
            self.duration_s = float(stream.duration * stream.time_base)
        elif self._container.duration:
            self.duration_s = self._container.duration / 1e6
        self.size = (stream.codec_context.width, stream.codec_context.height)

    def _decode(self) -> Iterator[tuple[np.ndarray, float]]:
        stream = self._container.streams.video[0]
        base = None
        if stream.start_time is not None and stream.time_base is not None:
            base = float(stream.start_time * stream.time_base)
        try:
            if self.start_s > 1.0 and stream.time_base is not None:  # jump near the start, then decode forward
                target = (base or 0.0) + self.start_s - 1.0
                self._container.seek(int(target / stream.time_base), stream=stream, backward=True)
            for i, vf in enumerate(self._container.decode(stream)):
                if vf.pts is not None and vf.time_base is not None:
                    pts = float(vf.pts * vf.time_base)
                else:
                    pts = i / (self.fps or 30.0)
                if base is None:
                    base = pts
                pts -= base
                if pts < self.start_s - 1e-6:
                    continue
                if self.end_s is not None and pts > self.end_s + 1e-6:
                    return
                yield _resize(vf.to_ndarray(format="rgb24"), self.max_width), pts
        except (av.error.FFmpegError, OSError, ValueError) as e:
            raise SourceError(
                f"corrupt or truncated video {self.path} after {self.frames_decoded} frames: {_msg(e)}"
            ) from None

    async def frames(self) -> AsyncIterator[Frame]:
        if self._container is None:
            await self.open()
        it = self._decode()
        sentinel = object()
        pts = 0.0
        t0: float | None = None
        pts0 = 0.0
        seq = 0
        while True:
            item = await asyncio.to_thread(next, it, sentinel)
            if item is sentinel:
                break
            img, pts = cast(tuple[np.ndarray, float], item)
            if self.realtime:
                if t0 is None:
                    t0, pts0 = time.monotonic(), pts
                delay = t0 + (pts - pts0) / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            self.frames_decoded += 1
            yield Frame(img, time.monotonic(), pts, seq, self.path)
            seq += 1
        if self.frames_decoded == 0:
            raise SourceError(f"no decodable frames in {self.path}")
        # A file cut short often decodes cleanly up to the cut: compare with the declared duration.
        last = pts if self.frames_decoded else 0.0
        if self.end_s is None and self.duration_s and last < self.duration_s - max(1.0, 0.02 * self.duration_s):
            raise SourceError(
                f"truncated video {self.path}: frames end at {last:.1f} s of the declared {self.duration_s:.1f} s"
            )

    def iter_frames(self) -> Iterator[Frame]:
        """The same frames, synchronously (offline tools and tests); opens the file if needed.

        Raises:
            SourceError: the file is missing, not a video, or corrupt.
        """
        if self._container is None:
            self._open_blocking()
        try:
            for seq, (img, pts) in enumerate(self._decode()):
                self.frames_decoded += 1
                yield Frame(img, time.monotonic(), pts, seq, self.path)
        finally:
            self._close_blocking()

    def _close_blocking(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    async def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def _msg(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
