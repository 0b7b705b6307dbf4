"""A real browser the agent sees and acts on: async Playwright driving Debian's Chromium.

Why this module exists: every GUI feature (MiniWoB++, ``agentkit browse``, the browser source for the
stream loop) needs the same four things from a browser, done once and carefully:

* **Frames** from a CDP screencast (``Page.startScreencast``; every frame is acknowledged with
  ``Page.screencastFrameAck`` or Chromium stops sending), plus periodic screenshots because a static page
  sends no screencast frames at all. Frames become :class:`agentkit.types.Frame` (RGB uint8).
* **A URL allowlist** in layers (see ``docs/browser.md``): request interception on the whole browser
  context (``context.route("**/*")``, so popups, new tabs, iframes and workers are covered, not only the
  first page); WebSocket interception (``context.route_web_socket``); WebRTC refused in every frame;
  service workers blocked; and a browser-wide DNS backstop (``--host-resolver-rules``: every host off the
  list resolves to nothing, so what interception cannot see, such as a WebSocket opened by a worker,
  cannot connect either). Task pages under the allowed ``file://`` roots and the configured hosts pass;
  every other attempt seen (request, popup, WebSocket, WebRTC) is aborted and appended to
  :attr:`BrowserSession.blocked`. Popups and new tabs are closed as soon as they open (the agent acts on
  one page); the URLs they were opened for are in :attr:`BrowserSession.popups`.
* **Recovery**: a crashed page, a dead browser, or a page whose script hangs (a screenshot that times
  out) is detected and restarted by :meth:`BrowserSession.ensure_alive`; each is recorded in
  :attr:`BrowserSession.errors`. Navigation waits for ``DOMContentLoaded`` plus a bounded settle for
  ``load``, so one stalled image does not fail a page that rendered.
* **Input** through :class:`PlaywrightBackend`, the GUI tools' backend for a page (CSS pixels).

Playwright cannot download its own browser on these machines: we launch ``/usr/bin/chromium`` through
``executable_path`` with the flags below. Chromium keeps its sandbox where the machine allows it
(``sandbox: auto``): as root it cannot, and runs with ``--no-sandbox``; :attr:`BrowserSession.sandboxed`
says which mode ran.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentkit.errors import SourceError, ToolError
from agentkit.sources import Source
from agentkit.types import Frame

log = logging.getLogger(__name__)

CHROMIUM_ARGS = [  # always; the sandbox flag and the DNS backstop are added per launch
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class BrowserConfig(BaseModel):
    """How to launch the browser and what it may load.

    Attributes:
        executable: Chromium binary (Playwright's own download is not available here).
        headless: Run without a window (a non-headless run needs ``DISPLAY``, e.g. Xvfb).
        width / height: Viewport in CSS pixels; normalized tool coordinates map onto it.
        scale: Device scale factor; frames are ``width*scale`` x ``height*scale`` pixels.
        allow_hosts: Hosts (exact, or ``.example.com`` for subdomains) that http(s) requests may reach.
        allow_file_roots: Directories whose ``file://`` URLs may load (task pages and their assets).
        screencast: Stream CDP screencast frames.
        screenshot_interval_s: Period of the fallback screenshots (a static page sends no screencast).
        nav_timeout_s: How long navigation may take to reach ``DOMContentLoaded``; longer is an error.
        load_settle_s: After ``DOMContentLoaded``, how long to wait for ``load`` (images, iframes) at most;
            a subresource that never arrives costs this much, not the run.
        screenshot_timeout_s: A screenshot slower than this means the page is unresponsive (a script in an
            endless loop): the page is marked hung and restarted by :meth:`BrowserSession.ensure_alive`.
        max_restarts: Page restarts in a row without a frame in between before :class:`BrowserSource`
            gives up (a page that hangs every time it loads).
        sandbox: ``auto`` keeps Chromium's sandbox unless running as root (Chromium refuses to sandbox
            as root) or the sandbox fails to start (then ``--no-sandbox`` with a logged warning);
            ``on`` requires it (launch fails otherwise); ``off`` always passes ``--no-sandbox``.
    """

    model_config = ConfigDict(extra="forbid")

    executable: str = "/usr/bin/chromium"
    headless: bool = True
    width: int = Field(1280, ge=16, le=7680)
    height: int = Field(720, ge=16, le=4320)
    scale: float = Field(1.0, gt=0, le=4)
    allow_hosts: list[str] = Field(default_factory=list)
    allow_file_roots: list[str] = Field(default_factory=list)
    screencast: bool = True
    screenshot_interval_s: float = Field(0.5, gt=0)
    nav_timeout_s: float = Field(15.0, gt=0)
    load_settle_s: float = Field(2.0, ge=0)
    screenshot_timeout_s: float = Field(5.0, gt=0)
    max_restarts: int = Field(5, ge=0)
    sandbox: Literal["auto", "on", "off"] = "auto"

    @field_validator("allow_hosts")
    @classmethod
    def _hosts_are_names(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not _HOST_RE.fullmatch(host):
                raise ValueError(
                    f"allow_hosts entry {host!r} is not a host name or address (e.g. 127.0.0.1, example.org, "
                    "or .example.org for subdomains; no scheme, port or path)"
                )
        return hosts


_HOST_RE = re.compile(r"\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*|[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*")


def host_resolver_rules(allow_hosts: list[str]) -> str:
    """Chromium ``--host-resolver-rules`` that resolve every host off ``allow_hosts`` to nothing.

    The DNS backstop of the allowlist: it also stops connections that request interception never sees
    (a WebSocket opened by a worker). IP literals are matched too.

    Example:
        >>> host_resolver_rules(["127.0.0.1", ".example.org"])
        'MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE *.example.org, EXCLUDE example.org'
    """
    rules = ["MAP * ~NOTFOUND"]
    for host in allow_hosts:
        host = host.lower()
        if host.startswith("."):
            rules += [f"EXCLUDE *{host}", f"EXCLUDE {host[1:]}"]
        else:
            rules.append(f"EXCLUDE {host}")  # an IPv6 address without brackets, as Chromium matches it
    return ", ".join(rules)


def sandbox_plan(mode: str, euid: int | None = None) -> tuple[bool, str]:
    """Whether to try Chromium's sandbox, and why, for ``BrowserConfig.sandbox`` = ``mode``.

    Raises:
        SourceError: ``mode="on"`` as root, where Chromium cannot sandbox.
    """
    euid = os.geteuid() if euid is None else euid
    if mode == "off":
        return False, "sandbox off (sandbox: off in the browser config)"
    if euid == 0:
        if mode == "on":
            raise SourceError(
                "sandbox: on, but this process runs as root and Chromium cannot sandbox as root; "
                "run as a normal user or set sandbox: auto/off"
            )
        return False, "sandbox off: running as root (Chromium refuses its sandbox as root)"
    return True, "sandboxed"


_NO_WEBRTC_JS = """(() => {
  for (const name of ["RTCPeerConnection", "webkitRTCPeerConnection"]) {
    if (!(name in globalThis)) continue;
    const blocked = function (config) {
      const servers = (config && config.iceServers) || [];
      const urls = servers.flatMap((s) => [].concat((s && (s.urls || s.url)) || []));
      try { globalThis.__agentkitBlocked("webrtc:" + (urls.join(" ") || "(no ICE servers)")); } catch (e) {}
      throw new DOMException("WebRTC is blocked by the agentkit allowlist", "NotAllowedError");
    };
    Object.defineProperty(globalThis, name, {value: blocked, writable: false, configurable: false});
  }
})();"""


def url_allowed(url: str, allow_hosts: list[str], allow_file_roots: list[str]) -> bool:
    """Whether ``url`` may load under the allowlist (``data:``/``about:`` always may)."""
    parsed = urlparse(url)
    scheme = parsed.scheme.lower()
    if scheme in ("data", "about", "blob"):
        return True
    if scheme == "file":
        path = Path(parsed.path).resolve()
        return any(path.is_relative_to(Path(root).resolve()) for root in allow_file_roots)
    if scheme in ("http", "https", "ws", "wss"):
        host = (parsed.hostname or "").lower()
        for allowed in allow_hosts:
            allowed = allowed.lower()
            if allowed.startswith(".") and (host.endswith(allowed) or host == allowed[1:]):
                return True
            if host == allowed:
                return True
    return False


def decode_image(data: bytes) -> np.ndarray:
    """PNG/JPEG bytes -> RGB uint8 array."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise SourceError("browser sent an undecodable image")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


class BrowserSession:
    """One Chromium page with frames, an allowlist and recovery from crashes and hangs.

    Attributes:
        blocked: Every URL the allowlist stopped, in order (requests, popups, WebSockets, navigations).
        popups: URLs popups / new tabs were opened for; every popup is closed as soon as it appears (the
            agent acts on one page), counted in ``popups_closed``.
        errors: What went wrong with the page itself (hangs, restarts, failed navigations), one line each.
        sandboxed: Whether Chromium runs with its sandbox (``None`` before :meth:`start`);
            ``sandbox_note`` says why.
        crashes / hangs / restarts: Counts of crashed pages, unresponsive pages, and page restarts.

    Example:
        >>> async with BrowserSession(BrowserConfig(allow_hosts=["127.0.0.1"])) as b:  # doctest: +SKIP
        ...     await b.goto("http://127.0.0.1:8000/")
        ...     frame = await b.screenshot()
    """

    def __init__(self, config: BrowserConfig | None = None, name: str = "browser") -> None:
        self.config = config or BrowserConfig()
        self.name = name
        self.blocked: list[str] = []
        self.popups: list[str] = []
        self.popups_closed = 0
        self.errors: list[str] = []
        self.crashes = 0
        self.hangs = 0
        self.restarts = 0
        self.sandboxed: bool | None = None
        self.sandbox_note = ""
        self.url: str | None = None
        self._pw: Any = None
        self._browser: Any = None
        self._context: Any = None
        self.page: Any = None
        self._cdp: Any = None
        self._crashed = False
        self._hung = False
        self._seq = 0
        self._t0 = time.monotonic()
        self._latest: Frame | None = None
        self._new_frame = asyncio.Event()
        self._shot_task: asyncio.Task[None] | None = None
        self._restart_lock = asyncio.Lock()
        self.screencast_frames = 0
        self.screenshot_frames = 0
        self._tasks: set[asyncio.Future[None]] = set()

    # ----------------------------------------------------------------- lifecycle
    async def __aenter__(self) -> BrowserSession:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Launch Chromium and open a page. Raises :class:`SourceError` if Chromium cannot start."""
        from playwright.async_api import async_playwright

        if not Path(self.config.executable).exists():  # noqa: ASYNC240 - one stat() at start-up
            raise SourceError(f"chromium not found at {self.config.executable} (apt-get install chromium)")
        try_sandbox, self.sandbox_note = sandbox_plan(self.config.sandbox)
        if self._pw is None:
            self._pw = await async_playwright().start()
        if try_sandbox:
            try:
                self._browser = await self._launch(sandbox=True)
                self.sandboxed = True
            except SourceError as e:
                if self.config.sandbox == "on":
                    raise SourceError(f"{e} (with the sandbox; sandbox: on)") from None
                self.sandbox_note = f"sandbox off: Chromium failed to start with it ({e})"
                log.warning("%s; running with --no-sandbox", self.sandbox_note)
        if self._browser is None:
            self._browser = await self._launch(sandbox=False)
            self.sandboxed = False
        await self._new_page()

    async def _launch(self, sandbox: bool | None = None) -> Any:
        sandbox = bool(self.sandboxed) if sandbox is None else sandbox
        args = [*CHROMIUM_ARGS, f"--host-resolver-rules={host_resolver_rules(self.config.allow_hosts)}"]
        try:  # chromium_sandbox=False makes Playwright pass --no-sandbox
            return await self._pw.chromium.launch(
                executable_path=self.config.executable,
                headless=self.config.headless,
                args=args,
                chromium_sandbox=sandbox,
            )
        except Exception as e:
            raise SourceError(f"chromium failed to start: {str(e).splitlines()[0]}") from None

    async def _new_page(self) -> None:
        cfg = self.config
        # Service workers are blocked: their requests would bypass the page's routing.
        self._context = await self._browser.new_context(
            viewport={"width": cfg.width, "height": cfg.height}, device_scale_factor=cfg.scale, service_workers="block"
        )
        # Routes on the context, not the page: popups, new tabs and workers are covered too.
        await self._context.route("**/*", self._route)
        await self._context.route_web_socket(lambda _url: True, self._route_web_socket)
        # WebRTC sends UDP straight to any STUN/TURN address (no request to intercept, IP literals skip
        # DNS): the constructors are replaced in every frame by ones that report and refuse.
        await self._context.expose_binding("__agentkitBlocked", self._on_blocked_binding)
        await self._context.add_init_script(_NO_WEBRTC_JS)
        self.page = await self._context.new_page()
        self._context.on("page", self._on_new_page)  # after new_page: only pages the page itself opens
        self.page.set_default_timeout(cfg.nav_timeout_s * 1000)
        self._crashed = self._hung = False
        self.page.on("crash", self._on_crash)
        self.page.on("websocket", self._on_websocket)
        if cfg.screencast:
            self._cdp = await self._context.new_cdp_session(self.page)
            self._cdp.on("Page.screencastFrame", self._on_screencast)
            await self._cdp.send(
                "Page.startScreencast",
                {
                    "format": "jpeg",
                    "quality": 85,
                    "maxWidth": int(cfg.width * cfg.scale),
                    "maxHeight": int(cfg.height * cfg.scale),
                    "everyNthFrame": 1,
                },
            )
        if self._shot_task is None or self._shot_task.done():
            self._shot_task = asyncio.create_task(self._periodic_screenshots())

    def _background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)  # keep a reference until done, or the task may be collected
        task.add_done_callback(self._tasks.discard)

    def _on_crash(self, _page: Any) -> None:
        self._crashed = True
        self.crashes += 1
        self.errors.append("page crashed; it will be restarted")

    def _allowed(self, url: str) -> bool:
        return url_allowed(url, self.config.allow_hosts, self.config.allow_file_roots)

    async def _route(self, route: Any) -> None:
        request = route.request
        url = request.url
        if request.is_navigation_request():
            try:
                request.frame  # noqa: B018 - raises for the first navigation of a page not yet created
            except Exception:
                self.popups.append(url)  # a popup / new tab opened for this URL (closed when it appears)
        if self._allowed(url):
            await route.continue_()
        else:
            self.blocked.append(url)
            await route.abort("blockedbyclient")

    async def _route_web_socket(self, ws: Any) -> None:
        if self._allowed(ws.url):
            ws.connect_to_server()
        else:
            self.blocked.append(ws.url)
            await ws.close(code=1008, reason="blocked by the allowlist")

    def _on_blocked_binding(self, _source: Any, what: Any) -> None:
        self.blocked.append(str(what)[:500])

    def _on_websocket(self, ws: Any) -> None:
        # A WebSocket that ``route_web_socket`` did not see (opened by a worker): the DNS backstop keeps
        # it from connecting; here it is reported.
        if not self._allowed(ws.url):
            self.blocked.append(ws.url)

    def _on_new_page(self, page: Any) -> None:
        if page is self.page:
            return
        # A popup / new tab. Its first request went through the context's route already (its URL is in
        # ``popups``; off the list, in ``blocked`` too, and never fetched); the agent acts on one page,
        # so it is closed.
        self.popups_closed += 1
        self._background(self._close_page(page))

    @staticmethod
    async def _close_page(page: Any) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(page.close(), 5.0)

    def _on_screencast(self, params: dict[str, Any]) -> None:
        # Ack first: Chromium sends the next frame only after the previous one is acknowledged.
        cdp = self._cdp
        if cdp is not None:
            self._background(self._ack(cdp, params["sessionId"]))
        try:
            image = decode_image(base64.b64decode(params["data"]))
        except SourceError:
            return
        self.screencast_frames += 1
        self._publish(image, "screencast")

    @staticmethod
    async def _ack(cdp: Any, session_id: int) -> None:
        with contextlib.suppress(Exception):
            await cdp.send("Page.screencastFrameAck", {"sessionId": session_id})

    async def _periodic_screenshots(self) -> None:
        while True:
            await asyncio.sleep(self.config.screenshot_interval_s)
            latest = self._latest
            if latest is not None and time.monotonic() - latest.t < self.config.screenshot_interval_s:
                continue  # the screencast is live; no need for a screenshot
            if not self.alive:
                continue  # a hung or crashed page waits for ensure_alive()
            with contextlib.suppress(Exception):
                await self.screenshot(kind="screenshot", mark_hung=False)  # the source's own one decides

    def _publish(self, image: np.ndarray, kind: str) -> Frame:
        now = time.monotonic()
        frame = Frame(image, t=now, pts=now - self._t0, seq=self._seq, source=self.name, meta={"via": kind})
        self._seq += 1
        self._latest = frame
        self._new_frame.set()
        return frame

    async def close(self) -> None:
        """Stop the screenshot task and the browser (idempotent; bounded even when the page hangs)."""
        if self._shot_task is not None:
            self._shot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._shot_task
            self._shot_task = None
        if self._browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._browser.close(), 15.0)
        self._browser = self._context = self.page = self._cdp = None
        if self._pw is not None:
            with contextlib.suppress(Exception):
                await self._pw.stop()  # also ends a browser that did not close
            self._pw = None

    # ----------------------------------------------------------------- health
    @property
    def alive(self) -> bool:
        return (
            self._browser is not None
            and self._browser.is_connected()
            and self.page is not None
            and not self.page.is_closed()
            and not self._crashed
            and not self._hung
        )

    def mark_unresponsive(self, reason: str) -> None:
        """Record that the page stopped answering; :meth:`ensure_alive` restarts it."""
        if not self._hung:
            self.hangs += 1
            self.errors.append(f"page unresponsive: {reason}; it will be restarted")
        self._hung = True

    async def ensure_alive(self) -> bool:
        """Restart the page (or the whole browser) if it crashed or hung; reload the last URL.

        Returns True if it restarted. Raises :class:`ToolError` when the reload fails (the page is new
        and empty then) and :class:`SourceError` when Chromium cannot be started again.
        """
        async with self._restart_lock:  # the source, the tools and the app may all ask at once
            if self.alive:
                return False
            self.restarts += 1
            if self._browser is None or not self._browser.is_connected():
                with contextlib.suppress(Exception):
                    if self._browser is not None:
                        await asyncio.wait_for(self._browser.close(), 10.0)
                self._browser = None
                self._browser = await self._launch()
            else:
                try:  # closing the context ends its renderer, even one stuck in a script
                    await asyncio.wait_for(self._context.close(), 10.0)
                except Exception:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(self._browser.close(), 10.0)
                    self._browser = await self._launch()
            await self._new_page()
            if self.url is not None:
                try:
                    await self.goto(self.url)
                except ToolError:
                    self._hung = True  # not usable: the next ensure_alive() tries again
                    raise
            return True

    # ----------------------------------------------------------------- actions
    async def goto(self, url: str) -> None:
        """Navigate and wait for ``DOMContentLoaded`` plus at most ``load_settle_s`` for ``load``.

        A URL off the allowlist raises :class:`ToolError`; so does a page that does not reach
        ``DOMContentLoaded`` within ``nav_timeout_s``. A subresource that never arrives (an image whose
        server does not answer) only costs the settle time.
        """
        if not self._allowed(url):
            self.blocked.append(url)
            raise ToolError(f"blocked URL (not on the allowlist): {url}")
        self.url = url
        try:
            await self.page.goto(url, wait_until="domcontentloaded", timeout=self.config.nav_timeout_s * 1000)
        except Exception as e:
            msg = f"navigation to {url} failed: {str(e).splitlines()[0]}"
            self.errors.append(msg)
            raise ToolError(msg) from None
        if self.config.load_settle_s > 0:
            with contextlib.suppress(Exception):
                await self.page.wait_for_load_state("load", timeout=self.config.load_settle_s * 1000)

    async def evaluate(self, script: str, arg: Any = None, timeout_s: float = 5.0) -> Any:
        """Run JavaScript in the page with a timeout (a hung page must not hang the caller)."""
        try:
            return await asyncio.wait_for(self.page.evaluate(script, arg), timeout_s)
        except TimeoutError:
            raise ToolError(f"page did not answer within {timeout_s:g} s") from None

    async def screenshot(
        self, kind: str = "screenshot", timeout_s: float | None = None, mark_hung: bool = True
    ) -> Frame:
        """Take a screenshot now and publish it as the latest frame.

        Raises:
            ToolError: the page did not answer within ``timeout_s`` (default ``screenshot_timeout_s``);
                the page is then marked unresponsive (unless ``mark_hung=False``) and
                :meth:`ensure_alive` restarts it.
        """
        timeout_s = self.config.screenshot_timeout_s if timeout_s is None else timeout_s
        page = self.page
        try:
            png = await asyncio.wait_for(page.screenshot(type="png"), timeout_s)
        except TimeoutError:
            reason = f"screenshot timed out after {timeout_s:g} s"
            if mark_hung and page is self.page:  # not a page that was replaced meanwhile
                self.mark_unresponsive(reason)
            raise ToolError(f"page unresponsive: {reason}") from None
        self.screenshot_frames += 1
        return self._publish(decode_image(png), kind)

    @property
    def latest(self) -> Frame | None:
        return self._latest

    async def next_frame(self, timeout_s: float = 5.0) -> Frame:
        """Wait for the next published frame (screencast or screenshot)."""
        self._new_frame.clear()
        await asyncio.wait_for(self._new_frame.wait(), timeout_s)
        assert self._latest is not None
        return self._latest


class PlaywrightBackend:
    """The GUI tools' backend for a Playwright page: CSS-pixel viewport, real mouse and keyboard events."""

    kind = "playwright"

    def __init__(self, session: BrowserSession) -> None:
        self.session = session

    def viewport(self) -> tuple[int, int]:
        return self.session.config.width, self.session.config.height

    @property
    def _page(self) -> Any:
        if self.session.page is None:
            raise ToolError("browser page is not open")
        if not self.session.alive:  # known hung or crashed: fail now instead of waiting for the timeout
            raise ToolError("page unresponsive or crashed (it is being restarted); action not run")
        return self.session.page

    async def click(
        self, x: float, y: float, button: str = "left", count: int = 1, hold: list[str] | None = None
    ) -> None:
        keys = [_playwright_key(k) for k in hold or []]
        for k in keys:
            await self._page.keyboard.down(k)
        try:
            await self._page.mouse.click(x, y, button=button, click_count=count)
        finally:
            for k in reversed(keys):
                await self._page.keyboard.up(k)

    async def move(self, x: float, y: float) -> None:
        await self._page.mouse.move(x, y, steps=4)

    async def drag(self, x1: float, y1: float, x2: float, y2: float) -> None:
        mouse = self._page.mouse
        await mouse.move(x1, y1)
        await mouse.down()
        await mouse.move(x2, y2, steps=8)
        await mouse.up()

    async def type(self, text: str) -> None:
        await self._page.keyboard.type(text, delay=5)

    async def key(self, keys: list[str]) -> None:
        await self._page.keyboard.press("+".join(_playwright_key(k) for k in keys))

    async def scroll(self, x: float, y: float, dx: float, dy: float) -> None:
        await self._page.mouse.move(x, y)
        await self._page.mouse.wheel(dx, dy)


_KEYS = {
    "ctrl": "Control",
    "control": "Control",
    "alt": "Alt",
    "shift": "Shift",
    "cmd": "Meta",
    "meta": "Meta",
    "enter": "Enter",
    "return": "Enter",
    "tab": "Tab",
    "esc": "Escape",
    "escape": "Escape",
    "space": " ",
    "backspace": "Backspace",
    "delete": "Delete",
    "up": "ArrowUp",
    "down": "ArrowDown",
    "left": "ArrowLeft",
    "right": "ArrowRight",
    "home": "Home",
    "end": "End",
    "pageup": "PageUp",
    "pagedown": "PageDown",
}


def _playwright_key(key: str) -> str:
    k = key.strip()
    if k.lower() in _KEYS:
        return _KEYS[k.lower()]
    if len(k) == 1:
        return k
    if k.lower().startswith("f") and k[1:].isdigit():
        return k.upper()
    return k[:1].upper() + k[1:]


class BrowserSource(Source):
    """A live, lossy source of a browser page's frames, for :class:`agentkit.loop.StreamLoop`.

    Args:
        url: Page to open (must pass the allowlist).
        config: Browser settings.
        session: Reuse an already started session instead (the source then does not close it).
    """

    lossless = False

    def __init__(
        self, url: str | None = None, config: BrowserConfig | None = None, session: BrowserSession | None = None
    ) -> None:
        self.url = url
        self.session = session or BrowserSession(config)
        self._owns = session is None
        self.name = "browser"

    async def open(self) -> None:
        if self._owns:
            await self.session.start()
        if self.url:
            try:
                await self.session.goto(self.url)
            except ToolError as e:
                raise SourceError(str(e)) from None

    async def frames(self) -> AsyncIterator[Frame]:  # type: ignore[override]
        """Frames of the page, as they come; a page that hangs or crashes is restarted, not fatal.

        Each hang, crash and failed reload is recorded in ``session.errors``. After ``max_restarts``
        restarts in a row with no frame in between, the stream ends with :class:`SourceError`.
        """
        session = self.session
        last = -1
        restarts = 0  # in a row, without a frame since
        while True:
            if not session.alive:
                if restarts >= session.config.max_restarts:
                    why = session.errors[-1] if session.errors else "no frame"
                    raise SourceError(f"page kept failing: {restarts} restart(s) in a row without a frame ({why})")
                restarts += 1
                try:
                    await session.ensure_alive()
                except ToolError:
                    continue  # the reload failed (recorded by goto); the page is restarted again
            frame = session.latest
            if frame is None or frame.seq == last:
                try:
                    frame = await session.next_frame(timeout_s=session.config.screenshot_interval_s * 4)
                except TimeoutError:
                    try:
                        frame = await session.screenshot()
                    except ToolError:  # recorded; the page is marked unresponsive and restarted above
                        continue
                    except Exception as e:  # e.g. the target closed or crashed under the screenshot
                        if session.alive:  # a crash is recorded (and restarted) already
                            session.mark_unresponsive(f"screenshot failed: {(str(e).splitlines() or ['?'])[0]}")
                        continue
            restarts = 0
            last = frame.seq
            yield frame

    async def close(self) -> None:
        if self._owns:
            await self.session.close()
