"""The browser world on real headless Chromium: allowlist, screencast and screenshots, crash restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentkit.envs.gui.browser import BrowserConfig, BrowserSession, BrowserSource, url_allowed
from agentkit.errors import ToolError

pytestmark = pytest.mark.browser


def test_url_allowed_rules(tmp_path: Path) -> None:
    roots = [str(tmp_path)]
    hosts = ["127.0.0.1", ".example.org"]
    assert url_allowed((tmp_path / "a.html").as_uri(), hosts, roots)
    assert not url_allowed("file:///etc/passwd", hosts, roots)
    assert not url_allowed((tmp_path / ".." / "x.html").as_uri(), hosts, roots)  # no escaping the root
    assert url_allowed("http://127.0.0.1:8000/x", hosts, roots)
    assert url_allowed("https://docs.example.org/", hosts, roots)
    assert not url_allowed("https://example.org.evil.com/", hosts, roots)
    assert not url_allowed("https://google.com/", hosts, roots)
    assert url_allowed("data:text/html,hi", hosts, roots)


def _page(tmp_path: Path, body: str) -> str:
    page = tmp_path / "page.html"
    page.write_text(f"<html><body style='margin:0'>{body}</body></html>")
    return page.as_uri()


def test_blocked_requests_are_aborted_and_reported(tmp_path: Path) -> None:
    url = _page(
        tmp_path,
        "<img src='http://10.255.255.1/pixel.png'><img src='file:///etc/hostname'>"
        "<script>fetch('https://example.com/api').catch(() => {})</script>",
    )

    async def run() -> tuple[list[str], str]:
        async with BrowserSession(BrowserConfig(width=320, height=240, allow_file_roots=[str(tmp_path)])) as b:
            await b.goto(url)
            await asyncio.sleep(0.3)
            with pytest.raises(ToolError, match="blocked URL"):
                await b.goto("https://example.com/")
            return list(b.blocked), b.page.url

    blocked, current = asyncio.run(run())
    assert "http://10.255.255.1/pixel.png" in blocked
    assert "file:///etc/hostname" in blocked
    assert "https://example.com/api" in blocked
    assert "https://example.com/" in blocked
    assert current == url  # the blocked navigation never happened


def test_frames_from_screencast_and_periodic_screenshots(tmp_path: Path) -> None:
    animated = _page(
        tmp_path,
        "<div id=d style='width:50px;height:50px;background:red'></div><script>"
        "let t=0; setInterval(() => {t++; document.getElementById('d').style.marginLeft=(t%200)+'px'}, 16)"
        "</script>",
    )

    async def run() -> tuple[int, int, tuple[int, ...], int]:
        cfg = BrowserConfig(width=320, height=240, allow_file_roots=[str(tmp_path)], screenshot_interval_s=0.2)
        source = BrowserSource(animated, cfg)
        await source.open()
        try:
            frames = []
            async for frame in source.frames():
                frames.append(frame)
                if len(frames) >= 10:
                    break
            cast = source.session.screencast_frames
            # a static page: no screencast frames, the periodic screenshots keep the stream alive
            await source.session.evaluate(
                "() => { document.body.innerHTML = 'static'; for (let i = 1; i < 99999; i++) clearInterval(i); }"
            )
            await asyncio.sleep(0.3)
            before = source.session.screenshot_frames
            await asyncio.sleep(1.0)
            shots = source.session.screenshot_frames - before
            return cast, len({f.seq for f in frames}), frames[-1].image.shape, shots
        finally:
            await source.close()

    cast, unique, shape, shots = asyncio.run(run())
    assert cast >= 5  # CDP screencast frames were acknowledged and kept coming
    assert unique == 10
    assert shape == (240, 320, 3)
    assert shots >= 2


def test_restart_after_page_crash(tmp_path: Path) -> None:
    url = _page(tmp_path, "<h1 id=h>alive</h1>")

    async def run() -> tuple[int, bool, str]:
        async with BrowserSession(BrowserConfig(width=320, height=240, allow_file_roots=[str(tmp_path)])) as b:
            await b.goto(url)
            try:
                await b.page.goto("chrome://crash", timeout=5000)
            except Exception:
                pass
            for _ in range(50):
                if not b.alive:
                    break
                await asyncio.sleep(0.1)
            crashed = not b.alive
            restarted = await b.ensure_alive()
            text = await b.evaluate("() => document.getElementById('h').textContent")
            return b.crashes, crashed and restarted, text

    crashes, restarted, text = asyncio.run(run())
    assert crashes == 1
    assert restarted
    assert text == "alive"


def test_restart_after_browser_death(tmp_path: Path) -> None:
    url = _page(tmp_path, "<h1 id=h>back</h1>")

    async def run() -> tuple[bool, bool, str]:
        async with BrowserSession(BrowserConfig(width=320, height=240, allow_file_roots=[str(tmp_path)])) as b:
            await b.goto(url)
            await b._browser.close()  # the browser process goes away
            dead = not b.alive
            restarted = await b.ensure_alive()
            text = await b.evaluate("() => document.getElementById('h').textContent")
            return dead, restarted, text

    dead, restarted, text = asyncio.run(run())
    assert dead and restarted
    assert text == "back"
