"""What the server does for a live run, on its own event loop: poll the streams, encode frames, wake clients.

Split from :mod:`.server` (addresses and the thread) and :mod:`.app` (routes) so neither imports the other's
dependencies: this module needs neither FastAPI nor uvicorn. The protocol is described in :mod:`.server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkit.apps.dashboard.state import Cursor, LiveHub, StreamView

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
FRAME_MAGIC = b"AKF1"
POLL_S = 0.05  # how often the server takes new decisions from the streams
ENCODE_POLL_S = 0.02  # how often it looks for a new frame to encode
SEND_TIMEOUT_S = 10.0  # a client that takes longer to accept one message is disconnected
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


@dataclass(eq=False)  # hashed by identity: kept in a set
class _Client:
    cursors: dict[str, Cursor] = field(default_factory=dict)
    connected: float = field(default_factory=time.monotonic)


class LiveRuntime:
    """What the server does for a live hub: polls the streams, encodes frames, wakes the clients."""

    def __init__(self, hub: LiveHub) -> None:
        self.hub = hub
        self.views: dict[str, StreamView] = {}
        self.clients: set[_Client] = set()
        self.clients_total = 0
        self.clients_dropped = 0  # disconnected for being too slow
        self.closing = False
        self._event = asyncio.Event()
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashboard-jpeg")
        self._tasks: list[asyncio.Task[None]] = []
        self._last_encode: dict[str, float] = {}

    # wake-ups: every waiter holds the event of its time; notify replaces it
    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_change(self, timeout: float) -> None:
        ev = self._event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ev.wait(), timeout)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._poll_loop()), asyncio.create_task(self._encode_loop())]

    def poll(self) -> bool:
        changed = False
        for st in self.hub.states():
            view = self.views.get(st.name)
            if view is None:
                view = self.views[st.name] = StreamView(
                    st, jpeg_width=self.hub.jpeg_width, jpeg_quality=self.hub.jpeg_quality
                )
                changed = True
            changed |= view.poll()
        return changed

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            try:
                if self.poll():
                    self.notify()
            except Exception:  # a bug here must not end the dashboard; the run does not depend on it
                log.exception("dashboard poll failed")

    async def encode_pending(self, *, force: bool = False) -> bool:
        """Encode the newest frame of each stream whose rate cap allows it (``force``: all of them)."""
        loop = asyncio.get_running_loop()
        gap = 1.0 / self.hub.max_fps
        made = False
        for view in list(self.views.values()):
            now = time.monotonic()
            if not force and now - self._last_encode.get(view.name, 0.0) < gap:
                continue
            item = view.pending_frame()
            if item is None:
                continue
            self._last_encode[view.name] = now
            try:
                encoded = await loop.run_in_executor(self._encoder, view.render, item)
            except Exception:  # a frame that cannot be drawn is skipped (and logged), not retried forever
                log.exception("dashboard: drawing frame %d of %s failed", item[1].seq, view.name)
                view.skip(item[0])
                continue
            view.rendered(item[0], encoded)
            made = True
        return made

    async def _encode_loop(self) -> None:
        while True:
            await asyncio.sleep(ENCODE_POLL_S)
            try:
                if await self.encode_pending():
                    self.notify()
            except Exception:
                log.exception("dashboard frame encoding failed")

    async def finish(self) -> None:
        """The run is over: take the last decisions and frames, tell the clients, let them drain."""
        if self.closing:
            return
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        try:
            self.poll()
            await self.encode_pending(force=True)
            self.poll()
        except Exception:
            log.exception("dashboard: the final update failed")
        self.closing = True
        self.notify()

    def close(self) -> None:
        self._encoder.shutdown(wait=False, cancel_futures=True)

    def info(self) -> dict[str, Any]:
        return {
            "clients": len(self.clients),
            "clients_total": self.clients_total,
            "clients_dropped": self.clients_dropped,
        }


def pack_frame(header: dict[str, Any], jpeg: bytes) -> bytes:
    """The binary WebSocket message of one frame (see the module docstring)."""
    head = json.dumps(header, separators=(",", ":")).encode()
    return FRAME_MAGIC + struct.pack(">I", len(head)) + head + jpeg


def unpack_frame(message: bytes) -> tuple[dict[str, Any], bytes]:
    """Inverse of :func:`pack_frame` (clients and tests)."""
    if message[:4] != FRAME_MAGIC:
        raise ValueError("not a dashboard frame message")
    (n,) = struct.unpack(">I", message[4:8])
    return json.loads(message[8 : 8 + n]), message[8 + n :]
