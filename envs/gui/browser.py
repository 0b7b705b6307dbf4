"""A real browser the agent sees and acts on: async Playwright driving Debian's Chromium.

Why this module exists: every GUI feature (MiniWoB++, ``agentkit browse``, the browser source for the
stream loop) needs the same four things from a browser, done once and carefully:

* **Frames** from a CDP screencast (``Page.startScreencast``; every frame is acknowledged with
  ``Page.screencastFrameAck`` or Chromium stops sending), plus periodic screenshots because a static page
  sends no screencast frames at all. Frames become :class:`agentkit.types.Frame` (RGB uint8).
* **A URL allowlist** enforced by request interception (``page.route("**/*")``): task pages under the
  allowed ``file://`` roots and the configured hosts pass; anything else is aborted and appended to
  :attr:`BrowserSession.blocked`, so a run reports what the page tried to reach.
* **Crash recovery**: a crashed page or a dead browser is detected and restarted by :meth:`ensure_alive`.
* **Input** through :class:`PlaywrightBackend`, the GUI tools' backend for a page (CSS pixels).

Playwright cannot download its own browser on these machines: we launch ``/usr/bin/chromium`` through
``executable_path`` with the flags below.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agentkit.errors import SourceError, ToolError
from agentkit.sources import Source
from agentkit.types import Frame

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
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
        nav_timeout_s: Navigation timeout; a page that hangs longer is reported, not waited on forever.
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
    """One Chromium page with frames, an allowlist and crash recovery.

    Example:
        >>> async with BrowserSession(BrowserConfig(allow_hosts=["127.0.0.1"])) as b:  # doctest: +SKIP
        ...     await b.goto("http://127.0.0.1:8000/")
        ...     frame = await b.screenshot()
    """

    def __init__(self, config: BrowserConfig | None = None, name: str = "browser") -> None:
        self.config = config or BrowserConfig()
        self.name = name
        self.blocked: list[str] = []
        self.crashes = 0
        self.restarts = 0
        self.url: str | None = None
        self._pw: Any = None
        self._browser: Any = None
        self._context: Any = None
        self.page: Any = None
        self._cdp: Any = None
        self._crashed = False
        self._seq = 0
        self._t0 = time.monotonic()
        self._latest: Frame | None = None
        self._new_frame = asyncio.Event()
        self._shot_task: asyncio.Task[None] | None = None
        self.screencast_frames = 0
        self.screenshot_frames = 0
        self._acks: set[asyncio.Future[None]] = set()

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
        if self._pw is None:
            self._pw = await async_playwright().start()
        try:
            self._browser = await self._pw.chromium.launch(
                executable_path=self.config.executable, headless=self.config.headless, args=CHROMIUM_ARGS
            )
        except Exception as e:
            raise SourceError(f"chromium failed to start: {str(e).splitlines()[0]}") from None
        await self._new_page()

    async def _new_page(self) -> None:
        cfg = self.config
        self._context = await self._browser.new_context(
            viewport={"width": cfg.width, "height": cfg.height}, device_scale_factor=cfg.scale
        )
        self.page = await self._context.new_page()
        self.page.set_default_timeout(cfg.nav_timeout_s * 1000)
        self._crashed = False
        self.page.on("crash", self._on_crash)
        await self.page.route("**/*", self._route)
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

    def _on_crash(self, _page: Any) -> None:
        self._crashed = True
        self.crashes += 1

    async def _route(self, route: Any) -> None:
        url = route.request.url
        if url_allowed(url, self.config.allow_hosts, self.config.allow_file_roots):
            await route.continue_()
        else:
            self.blocked.append(url)
            await route.abort("blockedbyclient")

    def _on_screencast(self, params: dict[str, Any]) -> None:
        # Ack first: Chromium sends the next frame only after the previous one is acknowledged.
        cdp = self._cdp
        if cdp is not None:
            task = asyncio.ensure_future(self._ack(cdp, params["sessionId"]))
            self._acks.add(task)
            task.add_done_callback(self._acks.discard)
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
            with contextlib.suppress(Exception):
                await self.screenshot(kind="screenshot")

    def _publish(self, image: np.ndarray, kind: str) -> Frame:
        now = time.monotonic()
        frame = Frame(image, t=now, pts=now - self._t0, seq=self._seq, source=self.name, meta={"via": kind})
        self._seq += 1
        self._latest = frame
        self._new_frame.set()
        return frame

    async def close(self) -> None:
        """Stop the screenshot task and the browser (idempotent)."""
        if self._shot_task is not None:
            self._shot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._shot_task
            self._shot_task = None
        for obj in (self._browser,):
            if obj is not None:
                with contextlib.suppress(Exception):
                    await obj.close()
        self._browser = self._context = self.page = self._cdp = None
        if self._pw is not None:
            with contextlib.suppress(Exception):
                await self._pw.stop()
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
        )

    async def ensure_alive(self) -> bool:
        """Restart the page (or the whole browser) if it crashed; reload the last URL. True if restarted."""
        if self.alive:
            return False
        self.restarts += 1
        if self._browser is None or not self._browser.is_connected():
            with contextlib.suppress(Exception):
                if self._browser is not None:
                    await self._browser.close()
            self._browser = None
            self._browser = await self._pw.chromium.launch(
                executable_path=self.config.executable, headless=self.config.headless, args=CHROMIUM_ARGS
            )
        else:
            with contextlib.suppress(Exception):
                await self._context.close()
        await self._new_page()
        if self.url is not None:
            await self.goto(self.url)
        return True

    # ----------------------------------------------------------------- actions
    async def goto(self, url: str) -> None:
        """Navigate; a URL off the allowlist raises :class:`ToolError`, a hang raises after the timeout."""
        if not url_allowed(url, self.config.allow_hosts, self.config.allow_file_roots):
            self.blocked.append(url)
            raise ToolError(f"blocked URL (not on the allowlist): {url}")
        self.url = url
        try:
            await self.page.goto(url, timeout=self.config.nav_timeout_s * 1000)
        except Exception as e:
            raise ToolError(f"navigation to {url} failed: {str(e).splitlines()[0]}") from None

    async def evaluate(self, script: str, arg: Any = None, timeout_s: float = 5.0) -> Any:
        """Run JavaScript in the page with a timeout (a hung page must not hang the caller)."""
        try:
            return await asyncio.wait_for(self.page.evaluate(script, arg), timeout_s)
        except TimeoutError:
            raise ToolError(f"page did not answer within {timeout_s:g} s") from None

    async def screenshot(self, kind: str = "screenshot", timeout_s: float = 5.0) -> Frame:
        """Take a screenshot now and publish it as the latest frame."""
        try:
            png = await asyncio.wait_for(self.page.screenshot(type="png"), timeout_s)
        except TimeoutError:
            raise ToolError(f"screenshot timed out after {timeout_s:g} s (page hung?)") from None
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
        last = -1
        while True:
            await self.session.ensure_alive()
            frame = self.session.latest
            if frame is None or frame.seq == last:
                try:
                    frame = await self.session.next_frame(timeout_s=self.session.config.screenshot_interval_s * 4)
                except TimeoutError:
                    frame = await self.session.screenshot()
            last = frame.seq
            yield frame

    async def close(self) -> None:
        if self._owns:
            await self.session.close()
