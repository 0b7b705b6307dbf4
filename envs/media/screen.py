"""Screen capture through ``mss`` (X11, Windows, macOS), paced at a fixed rate.

``mss`` needs no XAUTHORITY or scrot, unlike pyautogui's screenshots, so it is the capture path for the
desktop executor on Xvfb as well.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from agentkit.errors import SourceError
from agentkit.sources import Source
from agentkit.types import Frame


class ScreenSource(Source):
    """Frames of monitor ``monitor`` (1 = the first; 0 = all monitors together) at ``fps``."""

    name = "screen"
    lossless = False

    @classmethod
    def from_spec(cls, spec: str, *, realtime: bool = False, **options: Any) -> ScreenSource:
        """``screen`` (the first monitor) or ``screen:N``."""
        try:
            monitor = int(spec) if spec else 1
        except ValueError:
            raise SourceError(f"screen:{spec}: expected a monitor number, e.g. screen:1") from None
        return cls(monitor=monitor, **options)

    def __init__(self, *, monitor: int = 1, fps: float = 10.0, region: dict[str, int] | None = None) -> None:
        self.monitor = monitor
        self.fps = self.rate = fps
        self.region = region
        self._sct: Any = None
        self._box: dict[str, int] | None = None

    async def open(self) -> None:
        try:
            import mss
        except ImportError:
            raise SourceError("screen capture needs mss: pip install 'agentkit[screen]'") from None
        try:
            self._sct = mss.MSS() if hasattr(mss, "MSS") else mss.mss()
            monitors = self._sct.monitors
        except Exception as e:  # mss raises ScreenShotError or XError subclasses without a common base
            raise SourceError(f"cannot open the screen (is DISPLAY set?): {e}") from None
        if self.monitor >= len(monitors):
            raise SourceError(f"no monitor {self.monitor}; this display has {len(monitors) - 1}")
        self._box = self.region or monitors[self.monitor]

    def grab(self) -> np.ndarray:
        shot = self._sct.grab(self._box)
        return np.ascontiguousarray(np.asarray(shot)[:, :, 2::-1])  # BGRA -> RGB

    async def frames(self) -> AsyncIterator[Frame]:
        if self._sct is None:
            await self.open()
        t0 = time.monotonic()
        seq = 0
        while True:
            # mss handles are thread-bound on X11: grab on the loop thread; a grab takes a few ms.
            img = self.grab()
            now = time.monotonic()
            yield Frame(img, now, now - t0, seq, f"screen:{self.monitor}")
            seq += 1
            await asyncio.sleep(max(0.0, t0 + seq / self.rate - time.monotonic()))

    async def close(self) -> None:
        if self._sct is not None:
            self._sct.close()
            self._sct = None
