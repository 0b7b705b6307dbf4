"""GUI tools: schemas, viewport validation, and real clicks/typing on a Chromium page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentkit.envs.gui.browser import BrowserConfig, BrowserSession, PlaywrightBackend
from agentkit.tools.gui import GUI_TOOLS, gui_toolbox, to_pixels
from agentkit.types import Point, ToolCall


class _Recorder:
    """Unit-test backend: records what the tools asked for."""

    kind = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def viewport(self) -> tuple[int, int]:
        return (200, 100)

    async def click(self, x, y, button="left", count=1, hold=None):
        self.calls.append(("click", x, y, button, count, hold))

    async def move(self, x, y):
        self.calls.append(("move", x, y))

    async def drag(self, x1, y1, x2, y2):
        self.calls.append(("drag", x1, y1, x2, y2))

    async def type(self, text):
        self.calls.append(("type", text))

    async def key(self, keys):
        self.calls.append(("key", keys))

    async def scroll(self, x, y, dx, dy):
        self.calls.append(("scroll", x, y, dx, dy))


def test_tool_vocabulary_and_schemas() -> None:
    box = gui_toolbox(_Recorder())
    names = [s["function"]["name"] for s in box.schemas()]
    assert names == [
        "click",
        "double_click",
        "right_click",
        "type",
        "key",
        "scroll",
        "drag",
        "move",
        "wait",
        "finished",
    ]
    assert len(GUI_TOOLS) == 10
    click = box.schemas()[0]["function"]["parameters"]
    assert "point" in click["properties"] and click["additionalProperties"] is False


def test_points_map_to_viewport_pixels_and_outside_is_rejected() -> None:
    rec = _Recorder()
    box = gui_toolbox(rec)

    async def run():
        return [
            await box.run(ToolCall("click", {"point": {"x": 0.5, "y": 0.25}})),
            await box.run(ToolCall("double_click", {"point": [1.0, 1.0]})),
            await box.run(ToolCall("click", {"point": {"x": 1.01, "y": 0.5}})),
            await box.run(ToolCall("click", {"point": {"x": -0.1, "y": 0.5}})),
            await box.run(ToolCall("drag", {"start": [0, 0], "end": [0.5, 2]})),
            await box.run(ToolCall("scroll", {"point": [0.5, 0.5], "direction": "sideways"})),
            await box.run(ToolCall("key", {"keys": "ctrl+a"})),
            await box.run(ToolCall("click", {"point": "middle"})),
            await box.run(ToolCall("click", {"point": [0.1, 0.1], "hold": ["ctrl"]})),
            await box.run(ToolCall("click", {"point": [0.1, 0.1], "hold": ["hyper"]})),
        ]

    r = asyncio.run(run())
    assert r[0].ok and r[0].output == {"x": 100.0, "y": 25.0}
    assert r[1].ok and r[1].output == {"x": 199.5, "y": 99.5}  # the edge stays inside the viewport
    assert not r[2].ok and "Point.x must be a normalized coordinate" in r[2].error
    assert not r[3].ok and not r[4].ok and not r[5].ok and not r[7].ok
    assert r[6].ok and rec.calls[2] == ("key", ["ctrl", "a"])
    assert r[8].ok and rec.calls[-1] == ("click", 20.0, 10.0, "left", 1, ["ctrl"])
    assert not r[9].ok
    assert [c[0] for c in rec.calls] == ["click", "click", "key", "click"]  # rejected calls never reached the backend
    assert to_pixels(Point(0.0, 0.0), (10, 10)) == (0.0, 0.0)


@pytest.mark.browser
def test_tools_drive_a_real_page(tmp_path: Path) -> None:
    page = tmp_path / "p.html"
    page.write_text(
        "<html><body style='margin:0'>"
        "<button id=b style='position:absolute;left:100px;top:50px;width:100px;height:40px' "
        "onclick='this.dataset.n=(+this.dataset.n||0)+1' ondblclick='document.title=\"dbl\"'>B</button>"
        "<input id=t style='position:absolute;left:0;top:150px;width:200px'>"
        "<div id=s style='position:absolute;left:250px;top:0;width:100px;height:100px;overflow:auto'>"
        "<div style='height:1000px'>tall</div></div></body></html>"
    )

    async def run():
        async with BrowserSession(BrowserConfig(width=400, height=200, allow_file_roots=[str(tmp_path)])) as s:
            await s.goto(page.as_uri())
            box = gui_toolbox(PlaywrightBackend(s))
            await box.run(ToolCall("click", {"point": {"x": 150 / 400, "y": 70 / 200}}))
            await box.run(ToolCall("double_click", {"point": {"x": 150 / 400, "y": 70 / 200}}))
            await box.run(ToolCall("click", {"point": {"x": 50 / 400, "y": 160 / 200}}))
            await box.run(ToolCall("type", {"text": "hello"}))
            await box.run(ToolCall("key", {"keys": ["shift", "Home"]}))
            await box.run(ToolCall("type", {"text": "X"}))
            await box.run(
                ToolCall("scroll", {"point": {"x": 300 / 400, "y": 50 / 200}, "direction": "down", "amount": 3})
            )
            await asyncio.sleep(0.5)
            return await s.evaluate(
                "() => [document.getElementById('b').dataset.n, document.title, "
                "document.getElementById('t').value, document.getElementById('s').scrollTop]"
            )

    clicks, title, text, scroll_top = asyncio.run(run())
    assert clicks == "3"  # one click + the two clicks of the double click
    assert title == "dbl"
    assert text == "X"  # shift+Home selected "hello", typing replaced it
    assert scroll_top > 0
