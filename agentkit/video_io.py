"""Writing frames to mp4 with PyAV, flushed on close so a file stays playable up to the last frame.

Frames carry their own stream time (``pts`` seconds) into the container (millisecond time base), so a
recording of a lossy live run keeps the true timing of the frames that were processed.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np


def _codec() -> str:
    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # av raises UnknownCodecError (version dependent): try the next one
            continue
    raise RuntimeError("PyAV has no H.264 or MPEG-4 encoder")


class Mp4Writer:
    """Append RGB frames with their timestamps; the output size is fixed by the first frame."""

    def __init__(self, path: str | Path, fps: float = 10.0, crf: int = 23) -> None:
        self.path = Path(path)
        self.fps = fps
        self.crf = crf
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None
        self._last_pts = -1
        self.frames = 0

    def _open(self, width: int, height: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        codec = _codec()
        options = {"crf": str(self.crf), "preset": "veryfast"} if codec == "libx264" else {}
        self._stream = self._container.add_stream(codec, rate=max(1, int(round(self.fps))), options=options)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = Fraction(1, 1000)
        self._size = (width, height)

    def write(self, image: np.ndarray, pts: float | None = None) -> None:
        """Encode one RGB ``uint8`` frame shown at ``pts`` seconds (default: next frame at ``fps``)."""
        h, w = image.shape[:2]
        w2, h2 = w - w % 2, h - h % 2  # yuv420p needs even sizes
        if self._container is None:
            self._open(w2, h2)
        assert self._size is not None
        if (w2, h2) != self._size:
            import cv2

            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        else:
            image = image[:h2, :w2]
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        ms = int(round(pts * 1000)) if pts is not None else int(round(self.frames * 1000 / self.fps))
        ms = max(ms, self._last_pts + 1)  # strictly increasing, as the muxer requires
        vf.pts = ms
        vf.time_base = self._stream.codec_context.time_base
        self._last_pts = ms
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None
