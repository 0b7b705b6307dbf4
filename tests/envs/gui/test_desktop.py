"""The same GUI tools on a real X display (Xvfb) through the desktop backend (pyautogui and xdotool)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from agentkit.envs.gui.desktop import DesktopBackend, XvfbDisplay, grab_screen
from agentkit.tools.gui import gui_toolbox
from agentkit.types import ToolCall

pytestmark = pytest.mark.browser

# A tiny Tk window filling the screen: prints every click and key it receives, one per line.
_TK_APP = r"""
import sys, tkinter as tk
root = tk.Tk(); root.geometry('320x240+0+0'); root.overrideredirect(True)
c = tk.Canvas(root, width=320, height=240, bg='white'); c.pack()
c.bind('<Button-1>', lambda e: print('click', e.x, e.y, flush=True))
c.bind('<Button-3>', lambda e: print('right', e.x, e.y, flush=True))
root.bind('<Key>', lambda e: print('key', e.char, flush=True))
root.after(100, lambda: (root.focus_force(), c.focus_set(), print('ready', flush=True)))
root.after(20000, root.destroy)
root.mainloop()
"""


@pytest.fixture(scope="module")
def display():
    with XvfbDisplay(320, 240) as disp:
        yield disp


def _run_with_app(display: XvfbDisplay, driver: str, calls: list[ToolCall]) -> tuple[list[str], list]:
    app = subprocess.Popen(
        [sys.executable, "-c", _TK_APP],
        stdout=subprocess.PIPE,
        text=True,
        env={"DISPLAY": display.name, "PATH": "/usr/bin:/bin"},
    )
    try:
        assert app.stdout is not None
        assert app.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        backend = DesktopBackend(display.name, driver=driver)
        box = gui_toolbox(backend)

        async def run():
            return [await box.run(c) for c in calls]

        results = asyncio.run(run())
        time.sleep(0.5)
    finally:
        app.terminate()
    out = app.communicate(timeout=5)[0].splitlines()
    return out, results


@pytest.mark.parametrize("driver", ["pyautogui", "xdotool"])
def test_desktop_click_and_type_on_xvfb(display: XvfbDisplay, driver: str) -> None:
    lines, results = _run_with_app(
        display,
        driver,
        [
            ToolCall("click", {"point": {"x": 0.25, "y": 0.5}}),
            ToolCall("right_click", {"point": {"x": 0.75, "y": 0.25}}),
            ToolCall("type", {"text": "ok"}),
            ToolCall("click", {"point": {"x": 1.5, "y": 0.5}}),  # outside the screen: rejected
        ],
    )
    assert [r.ok for r in results] == [True, True, True, False]
    assert "click 80 120" in lines
    assert "right 240 60" in lines
    assert "key o" in lines and "key k" in lines


def test_desktop_screenshot_size(display: XvfbDisplay) -> None:
    img = grab_screen(display.name)
    assert img.shape == (240, 320, 3)
    assert DesktopBackend(display.name, driver="xdotool").viewport() == (320, 240)
