"""Cameras through OpenCV: a device index (``camera:0``) or a stream URL (``camera:rtsp://...``).

Cameras come and go (USB unplugged, Wi-Fi camera rebooting), so a read failure triggers a reconnect with
exponential back-off instead of ending the stream; only a camera that never opens, or stays gone for
``max_retries`` attempts, raises :class:`SourceError`.

OpenCV's own log is silenced while a camera is probed: a missing device makes each of its backends print
warnings (a dozen lines for ``camera:7`` on a machine without cameras) before our one clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import cv2

from agentkit.errors import SourceError
from agentkit.sources import Source
from agentkit.types import Frame

log = logging.getLogger(__name__)

_quiet_lock = threading.Lock()


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own log (process-wide) for the duration, then restore its level."""
    logging_api = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_api is None or not hasattr(logging_api, "setLogLevel"):  # a build without cv2.utils.logging
        yield
        return
    with _quiet_lock:  # two probes at once must not restore each other's level
        level = logging_api.getLogLevel()
        logging_api.setLogLevel(logging_api.LOG_LEVEL_SILENT)
        try:
            yield
        finally:
            logging_api.setLogLevel(level)


class CameraSource(Source):
    """A live camera. Lossy: the loop keeps only the newest frame when the policy is busy."""

    name = "camera"
    lossless = False

    @classmethod
    def from_spec(cls, spec: str, *, realtime: bool = False, **options: Any) -> CameraSource:
        """``camera:N`` (a device index) or ``camera:URL``."""
        return cls(spec, **options)

    def __init__(
        self,
        device: str | int = 0,
        *,
        width: int | None = None,
        height: int | None = None,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        capture_factory: Any = cv2.VideoCapture,
    ) -> None:
        text = str(device).strip()
        self.device: str | int = int(text) if text.isdigit() else text
        if self.device == "":
            raise SourceError("camera: expected a device index or URL, e.g. camera:0")
        self.width, self.height = width, height
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._factory = capture_factory
        self._cap: Any = None
        self.reconnects = 0
        self.fps: float | None = None

    def _describe(self) -> str:
        if isinstance(self.device, int):
            present = sorted(glob.glob("/dev/video*"))
            where = f"devices present: {', '.join(present)}" if present else "no /dev/video* devices on this machine"
            return f"camera {self.device} ({where})"
        return f"camera stream {self.device}"

    def _open_blocking(self) -> Any:
        with quiet_opencv():  # a failed probe is reported once, by us, with the devices present
            cap = self._factory(self.device)
            opened = cap.isOpened()
        if not opened:
            cap.release()
            return None
        if self.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        return cap

    async def open(self) -> None:
        self._cap = await asyncio.to_thread(self._open_blocking)
        if self._cap is None:
            raise SourceError(f"cannot open {self._describe()}")

    async def _reconnect(self) -> None:
        delay = self.backoff_s
        for attempt in range(1, self.max_retries + 1):
            log.warning(
                "%s lost; reconnecting (attempt %d/%d) in %.1fs", self._describe(), attempt, self.max_retries, delay
            )
            await asyncio.sleep(delay)
            self._cap = await asyncio.to_thread(self._open_blocking)
            if self._cap is not None:
                self.reconnects += 1
                return
            delay = min(delay * 2, self.backoff_max_s)
        raise SourceError(f"{self._describe()} lost and did not come back after {self.max_retries} attempts")

    async def frames(self) -> AsyncIterator[Frame]:
        if self._cap is None:
            await self.open()
        seq = 0
        t0 = time.monotonic()
        while True:
            ok, bgr = await asyncio.to_thread(self._cap.read)
            if not ok or bgr is None:
                self._cap.release()
                await self._reconnect()
                continue
            now = time.monotonic()
            yield Frame(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), now, now - t0, seq, f"camera:{self.device}")
            seq += 1

    async def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
