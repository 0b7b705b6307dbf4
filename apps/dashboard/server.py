"""The dashboard's web server: a FastAPI app on uvicorn, in a thread of its own with its own event loop.

Why a thread and not a task on the run's event loop: the run's loop must only ever see the sink's reference
copies. Everything else the dashboard does (polling the streams, JSON, drawing and JPEG-encoding frames,
HTTP parsing, WebSocket writes, a page being reloaded, a client whose socket is full) happens on the
server's loop and its encoder thread, so it cannot delay a frame of the run, and the apps keep their own
``asyncio.run`` untouched. What is shared is the GIL: the frame rate is capped (``max_fps``) and OpenCV
releases the GIL while it draws and encodes, which keeps that cost small (measured by
``agentkit bench dashboard``).

Protocol (``/ws``, server to client only; anything a client sends is read and ignored):

* text ``{"type": "hello", "mode": "live", "title", "streams": [names]}`` once;
* text ``{"type": "update", "stream", "decisions"?, "actions"?, "series"?, "counters"?, "status"?, "missed"?}``
  whenever something changed (records carry their number ``n``; a client that fell more than the ring
  behind gets ``missed``, the count it will never see);
* binary ``b"AKF1" + uint32 (big-endian) header length + header JSON + JPEG``: the newest annotated frame
  of a stream (header: ``stream, id, n, seq, pts, kind, width, height, encode_ms``). A client still
  receiving an older frame never gets the ones made meanwhile: they are counted in its ``frames_skipped``;
* text ``{"type": "bye"}`` when the run is over, then the socket closes (code 1001).

HTTP: ``GET /`` (the page), ``/static/*``, ``/api/info``, ``/healthz``; live: ``/api/streams/{name}/state``,
``/api/streams/{name}/frame.jpg``; replay: ``/api/streams/{name}/timeline``,
``/api/streams/{name}/frames/{i}.jpg?annotated=true``.

Bound to loopback by default; requests whose ``Host`` is not a loopback name are refused there (a web page
cannot reach the server through DNS rebinding), and a WebSocket whose ``Origin`` is another site is
refused always (a page the user has open elsewhere cannot read the camera).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from agentkit.apps.dashboard.runtime import LOOPBACK_NAMES, LiveRuntime
from agentkit.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


# --------------------------------------------------------------------------- addresses
@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def parse_address(text: str | None) -> Address:
    """``--dashboard`` value -> :class:`Address`: nothing, ``PORT``, ``:PORT``, ``HOST``, ``HOST:PORT``, ``[V6]:PORT``.

    The host defaults to 127.0.0.1 and the port to 8765; port 0 picks a free one.

    Raises:
        ConfigError: not one of those forms, or a port outside 0-65535.
    """
    text = (text or "").strip()
    host, port_text = DEFAULT_HOST, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            raise ConfigError(f"--dashboard {text!r}: expected [IPv6]:PORT")
        host, port_text = text[1:end], text[end + 2 :]
    elif text.isdigit():
        port_text = text
    elif text.count(":") == 1:
        h, port_text = text.split(":")
        host = h or DEFAULT_HOST
    elif text.count(":") > 1:  # a bare IPv6 address
        host = text
    elif text:
        host = text
    if host and not all(c.isalnum() or c in ".-_:" for c in host):
        raise ConfigError(f"--dashboard {text!r}: expected HOST:PORT, :PORT or PORT (put --dashboard after the source)")
    if port_text and not port_text.isdigit():
        raise ConfigError(f"--dashboard {text!r}: the port must be a number, got {port_text!r}")
    port = int(port_text) if port_text else DEFAULT_PORT
    if not 0 <= port <= 65535:
        raise ConfigError(f"--dashboard {text!r}: port {port} is outside 0-65535")
    return Address(host, port)


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1).

    Raises:
        ConfigError: ``host`` does not resolve.
    """
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        raise ConfigError(
            f"--dashboard {host!r}: no such host (expected HOST:PORT, :PORT or PORT; "
            "a --dashboard without a value goes after the source)"
        ) from None
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def check_public(address: Address, public: bool) -> None:
    """Refuse a non-loopback bind unless ``public`` (``--dashboard-public``) was given.

    Raises:
        ConfigError: naming the address and the flag.
    """
    if not public and not is_loopback(address.host):
        raise ConfigError(
            f"--dashboard {address.host}:{address.port} would show the run (frames, task, tool calls) to anyone "
            "who can reach that address, without a password; bind 127.0.0.1 (and use an SSH tunnel), or pass "
            "--dashboard-public to allow it"
        )


def bind(address: Address) -> socket.socket:
    """A listening socket on ``address``, or a :class:`ConfigError` saying why not."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    try:
        return socket.create_server((address.host, address.port), family=family, backlog=64)
    except OSError as e:
        hint = " (choose another with --dashboard HOST:PORT, or :0 for any free port)" if e.errno == 98 else ""
        raise ConfigError(
            f"cannot serve the dashboard on {address.host}:{address.port}: {e.strerror or e}{hint}"
        ) from None


# --------------------------------------------------------------------------- the thread
class DashboardServer:
    """Serves ``hub`` on ``address`` from a daemon thread: :meth:`start` returns once it accepts connections.

    Example:
        >>> hub = LiveHub(title="demo")  # doctest: +SKIP
        >>> server = DashboardServer(hub, Address("127.0.0.1", 0))  # doctest: +SKIP
        >>> url = server.start()  # doctest: +SKIP
        >>> sink = hub.sink("camera")  # add it to a StreamLoop's sinks  # doctest: +SKIP
        >>> server.stop()  # doctest: +SKIP
    """

    def __init__(self, hub: Any, address: Address, *, public: bool = False, linger_s: float = 2.0) -> None:
        check_public(address, public)
        self.hub = hub
        self.address = address
        self.linger_s = linger_s
        self._loopback_only = not public or is_loopback(address.host)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._app: Any = None
        self.url = ""

    def start(self, timeout_s: float = 20.0) -> str:
        """Bind, start serving, and return the page's URL.

        Raises:
            ConfigError: the address cannot be bound, or the server did not start.
        """
        import uvicorn

        sock = bind(self.address)
        port = sock.getsockname()[1]
        self.url = Address(self.address.host, port).url
        from agentkit.apps.dashboard.app import create_app

        self._app = create_app(self.hub, loopback_only=self._loopback_only)
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws_max_size=1 << 16,
            ws_per_message_deflate=False,  # JPEG does not compress; deflating it would only cost the server CPU
            timeout_graceful_shutdown=max(1, int(self.linger_s) + 1),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), name="dashboard-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            self.stop()
            raise ConfigError(f"the dashboard did not start on {self.url}: {self._error or 'timed out'}")
        return self.url

    def _run(self, sock: socket.socket) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            serving = asyncio.create_task(self._server.serve(sockets=[sock]))
            while not self._server.started and not serving.done():  # noqa: ASYNC110 - uvicorn offers only a flag
                await asyncio.sleep(0.01)
            self._ready.set()
            await serving

        try:
            asyncio.run(main())
        except BaseException as e:  # reported by start(), or logged when it happens later
            self._error = e
            log.exception("dashboard server stopped")
        finally:
            self._ready.set()
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def runtime(self) -> LiveRuntime | None:
        app = self._app.app if self._app is not None else None
        return getattr(getattr(app, "state", None), "runtime", None) if app is not None else None

    def stop(self) -> None:
        """Send the last updates and ``bye``, give clients ``linger_s`` to take them, then stop. Idempotent."""
        thread, loop, server = self._thread, self._loop, self._server
        if thread is None or not thread.is_alive():
            return
        rt = self.runtime
        if loop is not None and rt is not None:
            fut = asyncio.run_coroutine_threadsafe(rt.finish(), loop)
            with contextlib.suppress(Exception):
                fut.result(timeout=self.linger_s + 3.0)
            deadline = time.monotonic() + self.linger_s
            while rt.clients and time.monotonic() < deadline:
                time.sleep(0.02)
        if server is not None:
            server.should_exit = True
        thread.join(timeout=self.linger_s + 8.0)
        if thread.is_alive():
            log.warning("dashboard server did not stop in time; leaving its daemon thread")
