"""A synthetic test pattern: colour bars, a moving square and a frame counter.

It needs no file, camera or display, so it is the source for smoke tests and for checking a pipeline's
latency and dropping behaviour with a known frame rate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import cv2
import numpy as np

from agentkit.sources import Source
from agentkit.types import Frame

_BARS = np.array(
    [[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0], [192, 0, 192], [192, 0, 0], [0, 0, 192]],
    dtype=np.uint8,
)


def pattern_image(seq: int, width: int = 320, height: int = 240, fps: float = 10.0) -> np.ndarray:
    """The pattern for frame ``seq``: bars, a white square sweeping left to right once per 4 s."""
    img = np.repeat(_BARS[np.arange(width) * len(_BARS) // width][None, :, :], height, axis=0).copy()
    side = max(8, height // 6)
    period = max(1, int(4 * fps))
    x = int((seq % period) / period * (width - side))
    y = height // 2 - side // 2
    img[y : y + side, x : x + side] = 255
    cv2.putText(img, f"{seq:06d}", (6, height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img


class TestPatternSource(Source):
    """``frames`` frames (default 10 s) at ``fps``; paced in real time when ``realtime`` is set."""

    name = "test-pattern"
    __test__ = False  # not a pytest test class, despite the name

    @classmethod
    def from_spec(cls, spec: str, *, realtime: bool = False, **options: Any) -> TestPatternSource:
        return cls(realtime=realtime, **options)

    def __init__(
        self,
        *,
        fps: float = 10.0,
        duration_s: float = 10.0,
        width: int = 320,
        height: int = 240,
        realtime: bool = False,
    ) -> None:
        self.fps = self.rate = fps
        self.n = int(round(duration_s * fps))
        self.width, self.height = width, height
        self.realtime = realtime
        self.lossless = not realtime

    async def frames(self) -> AsyncIterator[Frame]:
        t0 = time.monotonic()
        for seq in range(self.n):
            if self.realtime:
                delay = t0 + seq / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            yield Frame(
                pattern_image(seq, self.width, self.height, self.rate),
                time.monotonic(),
                seq / self.rate,
                seq,
                "test-pattern",
            )
            if not self.realtime:
                await asyncio.sleep(0)
