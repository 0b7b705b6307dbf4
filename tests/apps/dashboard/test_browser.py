"""The dashboard in a real browser: Debian Chromium through Playwright, against real runs of the CLI.

The live test is the acceptance test of issue 11 (parts 2 and 3): ``agentkit narrate --realtime --dashboard``
on a clip with three events; the page shows frames that change, a timeline and Response texts that grow;
a page reload and a dropped WebSocket mid-run do not affect the run, which ends with complete outputs.
It saves a screenshot; with ``AGENTKIT_UPDATE_SCREENSHOTS=1`` it also replaces ``docs/img/dashboard.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av
import pytest

from agentkit.sinks import read_jsonl

pytestmark = pytest.mark.browser
pytest.importorskip("fastapi")

REPO = Path(__file__).resolve().parents[3]
SCREENSHOT = REPO / "docs" / "img" / "dashboard.png"


class Cli:
    """``agentkit ...`` in a subprocess; its stderr drained by a thread (a full pipe would block the run)."""

    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", AGENTKIT_LOG="WARNING")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentkit.apps.cli", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.url: str | None = None
        self._found = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # type: ignore[union-attr]

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            m = re.search(r"dashboard: (http://\S+/)", line)
            if m and self.url is None:
                self.url = m.group(1)
                self._found.set()
        self._found.set()

    def wait_url(self, timeout_s: float = 60.0) -> str:
        self._found.wait(timeout_s)
        assert self.url, "".join(self.lines)
        return self.url

    def wait(self, timeout_s: float = 120.0) -> int:
        return self.proc.wait(timeout=timeout_s)


def dash(page: Any, expr: str) -> Any:
    return page.evaluate(f"() => window.agentkitDashboard.{expr}")


def frame_id(page: Any) -> int:
    value = page.eval_on_selector(".panel .frame", "e => e.dataset.frameId || '0'")
    return int(value or 0)


def test_live_run_in_chromium_survives_reload_and_a_dropped_socket(events_clip, browser, tmp_path):
    out = tmp_path / "run"
    args = ("narrate", events_clip.name, "--realtime", "--out", str(out), "--no-progress", "--dashboard", ":0")
    cli = Cli(*args, cwd=events_clip.parent)  # the page's title names the clip, not a temporary folder
    try:
        url = cli.wait_url()
        page = browser.new_page(viewport={"width": 1100, "height": 1000})
        page.goto(url)
        page.wait_for_function("() => Number(document.querySelector('.panel .frame')?.dataset.frameId) > 0")
        first, shot1 = frame_id(page), page.locator(".panel .frame").screenshot()
        page.wait_for_function(f"() => Number(document.querySelector('.panel .frame').dataset.frameId) > {first + 5}")
        assert page.locator(".panel .frame").screenshot() != shot1  # the picture itself changes
        seen = int(page.eval_on_selector(".timeline", "e => e.dataset.decisions"))
        page.wait_for_function(f"() => Number(document.querySelector('.timeline').dataset.decisions) > {seen + 10}")

        # a reload mid-run: the new page catches up (everything the server still holds) and goes on
        page.reload()
        page.wait_for_function("() => Number(document.querySelector('.panel .frame')?.dataset.frameId) > 0")
        assert int(page.eval_on_selector(".timeline", "e => e.dataset.decisions")) > seen

        # the first Response's text arrives (a person walks in about 4 s into the clip)
        page.wait_for_selector(".panel .responses li:has-text('arrived')", timeout=30_000)

        # the WebSocket dropped under the page: it reconnects and frames flow again
        before = frame_id(page)
        page.evaluate("() => window.agentkitDashboard.dropSocket()")
        page.wait_for_function("() => window.agentkitDashboard.stats.connects >= 2", timeout=15_000)
        page.wait_for_function(f"() => Number(document.querySelector('.panel .frame').dataset.frameId) > {before}")
        assert dash(page, "stats.reconnects") >= 1

        # the person leaves, the next one arrives: the list grows, newest first
        items = "[...document.querySelectorAll('.panel .responses li')]"
        page.wait_for_function(f"() => {items}.filter(e => /arrived/.test(e.textContent)).length >= 2", timeout=40_000)
        texts = page.eval_on_selector_all(".panel .responses li span", "els => els.map(e => e.textContent)")[::-1]
        first_left = next(k for k, t in enumerate(texts) if "person left" in t)
        assert "arrived" in texts[0] and "arrived" in texts[-1] and 0 < first_left < len(texts) - 1, texts
        time.sleep(0.6)  # the caption and the plots of this moment
        page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        if os.environ.get("AGENTKIT_UPDATE_SCREENSHOTS") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp_path / "dashboard.png", SCREENSHOT)

        page.wait_for_selector("#conn[data-state='ended']", timeout=60_000)  # the server said bye
        assert cli.wait() == 0, "".join(cli.lines)
        final = page.eval_on_selector(".panel .v-processed", "e => e.textContent")
    finally:
        if cli.proc.poll() is None:
            cli.proc.kill()
    # the run is complete and consistent: every processed frame is in every output
    metrics = json.loads((out / "metrics.json").read_text())
    decisions = read_jsonl(out / "decisions.jsonl")
    assert metrics["processed"] == len(decisions) == int(final) and metrics["error"] is None
    assert metrics["processed"] + metrics["dropped"] == metrics["frames_in"]
    with av.open(str(out / "annotated.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == len(decisions)
    assert sum(d["kind"] == "response" for d in decisions) == metrics["responses"] >= 3


def test_recordings_side_by_side_and_scrubbing_fetches_the_right_frame(browser, record_pattern, tmp_path):
    a = record_pattern(tmp_path / "first", seconds=4.0)
    b = record_pattern(tmp_path / "second", seconds=2.0)
    decisions = read_jsonl(a / "decisions.jsonl")
    cli = Cli("dashboard", str(a), str(b), "--address", ":0", "--seconds", "90")
    try:
        url = cli.wait_url()
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(url)
        page.wait_for_selector(".panel[data-stream='first'] .frame[data-index='0']")
        page.wait_for_selector(".panel[data-stream='second'] .frame[data-index='0']")
        panels = page.eval_on_selector_all(".panel", "els => els.map(e => e.getBoundingClientRect().x)")
        assert len(panels) == 2 and panels[0] < panels[1]  # side by side
        first = page.locator(".panel[data-stream='first']")
        for i in (27, 3, 39, 28):  # backwards and forwards: seeks and forward decoding
            first.locator(".slider").evaluate(f"(el) => {{ el.value = '{i}'; el.dispatchEvent(new Event('input')); }}")
            first.locator(f".frame[data-index='{i}']").wait_for()
            assert int(first.locator(".frame").get_attribute("data-seq") or -1) == decisions[i]["seq"]
        # a click on the timeline seeks there; a click on a Response jumps to its frame
        box = first.locator(".timeline").bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] * 0.5 + 1, box["y"] + box["height"] / 2)
        first.locator(".frame[data-index='20']").wait_for()
        first.locator(".responses li", has_text="event at frame 9").click()
        first.locator(".frame[data-index='9']").wait_for()
        assert (first.locator(".pos").text_content() or "").startswith("10/40 ")
        actions = first.locator(".actions li")
        assert actions.count() == 4 and first.locator(".actions li.err").count() == 2  # results, failures marked
    finally:
        cli.proc.terminate()
        cli.wait(30)
