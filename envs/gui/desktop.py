"""The X desktop as a GUI-tool backend: pyautogui (or xdotool) for input, mss for screenshots.

Why this module exists: the same GUI tools that drive a browser page must drive a desktop (a native app
under Xvfb, a remote desktop). :class:`DesktopBackend` implements the tools' backend interface on an X
display; :class:`XvfbDisplay` starts a private virtual display for tests and headless machines.

Input drivers: ``pyautogui`` (needs tkinter, an ``XAUTHORITY`` file - an empty one is created if none
exists - and opens the display named by ``DISPLAY`` when first imported) or ``xdotool`` (a subprocess per
action; no Python dependencies). Screenshots always use ``mss``, which needs none of pyautogui's extras.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from agentkit.errors import SourceError, ToolError
from agentkit.types import Frame


class XvfbDisplay:
    """Start ``Xvfb`` on a free display number; ``DISPLAY`` is set while it runs.

    Example:
        >>> with XvfbDisplay(640, 480) as disp:  # doctest: +SKIP
        ...     print(disp.name)  # ":57"
    """

    def __init__(self, width: int = 1024, height: int = 768, depth: int = 24, set_env: bool = True) -> None:
        self.width, self.height, self.depth = width, height, depth
        self.set_env = set_env
        self.number: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._old: dict[str, str | None] = {}

    @property
    def name(self) -> str:
        return f":{self.number}"

    @staticmethod
    def _free_number(start: int = 50) -> int:
        for n in range(start, start + 200):
            if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
                return n
        raise SourceError("no free X display number in :50-:249")

    def start(self) -> XvfbDisplay:
        if shutil.which("Xvfb") is None:
            raise SourceError("Xvfb not found (apt-get install xvfb)")
        for _ in range(5):
            self.number = self._free_number()
            self.proc = subprocess.Popen(
                ["Xvfb", self.name, "-screen", "0", f"{self.width}x{self.height}x{self.depth}", "-nolisten", "tcp"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if Path(f"/tmp/.X11-unix/X{self.number}").exists():
                    break
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            if self.proc.poll() is None:
                break
        else:
            raise SourceError("Xvfb failed to start")
        if self.set_env:
            xauth = os.environ.get("XAUTHORITY")
            if not xauth or not Path(xauth).exists():
                fd, path = tempfile.mkstemp(prefix="agentkit-xauth-")
                os.close(fd)
                self._old["XAUTHORITY"] = os.environ.get("XAUTHORITY")
                os.environ["XAUTHORITY"] = path
            self._old["DISPLAY"] = os.environ.get("DISPLAY")
            os.environ["DISPLAY"] = self.name
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
        for k, v in self._old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._old = {}

    def __enter__(self) -> XvfbDisplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def grab_screen(display: str | None = None) -> np.ndarray:
    """Screenshot of the whole X screen as RGB uint8 (via mss)."""
    import mss

    factory = getattr(mss, "MSS", None) or mss.mss  # mss >= 10 renamed the class
    with factory(display=display or os.environ.get("DISPLAY")) as sct:
        shot = sct.grab(sct.monitors[0])
        return np.ascontiguousarray(np.asarray(shot)[:, :, 2::-1])


_XDO_KEYS = {
    "ctrl": "ctrl",
    "control": "ctrl",
    "alt": "alt",
    "shift": "shift",
    "cmd": "super",
    "meta": "super",
    "enter": "Return",
    "return": "Return",
    "tab": "Tab",
    "esc": "Escape",
    "escape": "Escape",
    "space": "space",
    "backspace": "BackSpace",
    "delete": "Delete",
    "up": "Up",
    "down": "Down",
    "left": "Left",
    "right": "Right",
    "home": "Home",
    "end": "End",
    "pageup": "Prior",
    "pagedown": "Next",
}


class DesktopBackend:
    """GUI-tool backend for an X display (pixels of the whole screen).

    Args:
        display: X display name (default: ``$DISPLAY``).
        driver: ``"pyautogui"`` or ``"xdotool"``.
    """

    kind = "desktop"

    def __init__(self, display: str | None = None, driver: str = "pyautogui") -> None:
        self.display = display or os.environ.get("DISPLAY")
        if not self.display:
            raise SourceError("no X display: set DISPLAY or start one with XvfbDisplay")
        if driver not in ("pyautogui", "xdotool"):
            raise ValueError(f"driver must be 'pyautogui' or 'xdotool', got {driver!r}")
        self.driver = driver
        self._size: tuple[int, int] | None = None
        self._pag: Any = None
        self._seq = 0
        self._t0 = time.monotonic()
        if driver == "pyautogui":
            os.environ["DISPLAY"] = self.display  # pyautogui opens $DISPLAY when imported
            import pyautogui

            pyautogui.FAILSAFE = False  # a corner of a virtual screen is not an emergency
            pyautogui.PAUSE = 0.02
            self._pag = pyautogui
        elif shutil.which("xdotool") is None:
            raise SourceError("xdotool not found (apt-get install xdotool)")

    def viewport(self) -> tuple[int, int]:
        if self._size is None:
            img = grab_screen(self.display)
            self._size = (img.shape[1], img.shape[0])
        return self._size

    def screenshot(self) -> Frame:
        """The screen as a :class:`Frame`."""
        img = grab_screen(self.display)
        now = time.monotonic()
        self._seq += 1
        return Frame(img, t=now, pts=now - self._t0, seq=self._seq - 1, source=f"desktop{self.display}")

    async def _xdo(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            "xdotool",
            *args,
            env={**os.environ, "DISPLAY": str(self.display)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode:
            raise ToolError(f"xdotool {' '.join(args)} failed: {err.decode().strip()[:200]}")

    async def _pyag(self, fn: str, *args: Any, **kw: Any) -> None:
        await asyncio.to_thread(getattr(self._pag, fn), *args, **kw)

    async def click(
        self, x: float, y: float, button: str = "left", count: int = 1, hold: list[str] | None = None
    ) -> None:
        hold = list(hold or [])
        if self.driver == "xdotool":
            b = {"left": "1", "middle": "2", "right": "3"}[button]
            mods = [_XDO_KEYS.get(k, k) for k in hold]
            down = [a for m in mods for a in ("keydown", m)]
            up = [a for m in reversed(mods) for a in ("keyup", m)]
            await self._xdo(*down, "mousemove", str(int(x)), str(int(y)), "click", "--repeat", str(count), b, *up)
        else:
            for k in hold:
                await self._pyag("keyDown", k)
            try:
                await self._pyag("click", int(x), int(y), clicks=count, button=button)
            finally:
                for k in reversed(hold):
                    await self._pyag("keyUp", k)

    async def move(self, x: float, y: float) -> None:
        if self.driver == "xdotool":
            await self._xdo("mousemove", str(int(x)), str(int(y)))
        else:
            await self._pyag("moveTo", int(x), int(y))

    async def drag(self, x1: float, y1: float, x2: float, y2: float) -> None:
        if self.driver == "xdotool":
            await self._xdo(
                "mousemove",
                str(int(x1)),
                str(int(y1)),
                "mousedown",
                "1",
                "mousemove",
                str(int(x2)),
                str(int(y2)),
                "mouseup",
                "1",
            )
        else:
            await self._pyag("moveTo", int(x1), int(y1))
            await self._pyag("dragTo", int(x2), int(y2), duration=0.2, button="left")

    async def type(self, text: str) -> None:
        if self.driver == "xdotool":
            await self._xdo("type", "--delay", "5", "--", text)
        else:
            await self._pyag("write", text, interval=0.005)

    async def key(self, keys: list[str]) -> None:
        if self.driver == "xdotool":
            await self._xdo("key", "+".join(_XDO_KEYS.get(k.lower(), k) for k in keys))
        else:
            await self._pyag("hotkey", *[k.lower() if len(k) > 1 else k for k in keys])

    async def scroll(self, x: float, y: float, dx: float, dy: float) -> None:
        notches = int(round(dy / 40)) or int(round(dx / 40))
        if self.driver == "xdotool":
            b = "5" if dy > 0 else "4" if dy < 0 else "7" if dx > 0 else "6"
            await self._xdo("mousemove", str(int(x)), str(int(y)), "click", "--repeat", str(abs(notches) or 1), b)
        else:
            await self._pyag("moveTo", int(x), int(y))
            if dy:
                await self._pyag("scroll", -notches)
            else:
                await self._pyag("hscroll", notches)
