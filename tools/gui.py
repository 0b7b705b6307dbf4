"""GUI actions as validated tools: click, double_click, right_click, type, key, scroll, drag, move, wait, finished.

Why this module exists: a GUI policy (oracle, OCR, VLM) emits :class:`~agentkit.types.ToolCall` s in one
vocabulary (Qwen computer-use / UI-TARS names) with **normalized** points. These tools validate the call
(pydantic; a point outside ``[0, 1]`` - i.e. outside the viewport - is rejected before anything runs),
map the point to the backend's viewport pixels and perform it on a :class:`GuiBackend`: a Playwright page
(:class:`agentkit.envs.gui.browser.PlaywrightBackend`) or an X desktop
(:class:`agentkit.envs.gui.desktop.DesktopBackend`). The same tool code drives both.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentkit.tooling import NormPoint, Tool, ToolBox
from agentkit.types import Point


class GuiBackend(Protocol):
    """What a screen must offer the GUI tools. Coordinates are pixels of :meth:`viewport`."""

    kind: str

    def viewport(self) -> tuple[int, int]: ...
    async def click(
        self, x: float, y: float, button: str = "left", count: int = 1, hold: list[str] | None = None
    ) -> None: ...
    async def move(self, x: float, y: float) -> None: ...
    async def drag(self, x1: float, y1: float, x2: float, y2: float) -> None: ...
    async def type(self, text: str) -> None: ...
    async def key(self, keys: list[str]) -> None: ...
    async def scroll(self, x: float, y: float, dx: float, dy: float) -> None: ...


def to_pixels(point: Point, viewport: tuple[int, int]) -> tuple[float, float]:
    """Normalized point -> viewport pixel (the centre of the pixel it falls in, kept inside)."""
    w, h = viewport
    return min(point.x * w, w - 0.5), min(point.y * h, h - 0.5)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PointArgs(_Strict):
    point: NormPoint = Field(description="Target as normalized [x, y] in [0, 1] of the screen, origin top-left.")


class ClickArgs(PointArgs):
    button: Literal["left", "right", "middle"] = "left"
    hold: list[Literal["ctrl", "shift", "alt", "meta"]] = Field(
        default_factory=list, max_length=3, description="Modifier keys held during the click (ctrl-click)."
    )


class TypeArgs(_Strict):
    text: str = Field(max_length=2000, description="Text to type into the focused element.")


class KeyArgs(_Strict):
    keys: list[str] = Field(min_length=1, max_length=5, description='A key or chord, e.g. ["ctrl", "a"] or ["Enter"].')

    @field_validator("keys", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [k for k in v.replace(" ", "+").split("+") if k]
        return v


class ScrollArgs(PointArgs):
    direction: Literal["up", "down", "left", "right"] = "down"
    amount: int = Field(3, ge=1, le=50, description="Wheel notches (about 40 px each).")


class DragArgs(_Strict):
    start: NormPoint
    end: NormPoint


class WaitArgs(_Strict):
    seconds: float = Field(0.5, ge=0, le=10)


class FinishedArgs(_Strict):
    answer: str | None = Field(None, max_length=2000, description="Optional final answer or summary.")


class GuiTool(Tool):
    """Base for tools bound to one backend."""

    def __init__(self, backend: GuiBackend) -> None:
        self.backend = backend

    def px(self, point: Point) -> tuple[float, float]:
        return to_pixels(point, self.backend.viewport())


class Click(GuiTool):
    name: ClassVar[str] = "click"
    description: ClassVar[str] = "Click at a point of the screen."
    Args = ClickArgs

    async def run(self, args: ClickArgs) -> dict[str, Any]:
        x, y = self.px(args.point)
        if args.hold:
            await self.backend.click(x, y, button=args.button, hold=list(args.hold))
        else:
            await self.backend.click(x, y, button=args.button)
        return {"x": round(x, 1), "y": round(y, 1)}


class DoubleClick(GuiTool):
    name: ClassVar[str] = "double_click"
    description: ClassVar[str] = "Double-click at a point of the screen."
    Args = PointArgs

    async def run(self, args: PointArgs) -> dict[str, Any]:
        x, y = self.px(args.point)
        await self.backend.click(x, y, count=2)
        return {"x": round(x, 1), "y": round(y, 1)}


class RightClick(GuiTool):
    name: ClassVar[str] = "right_click"
    description: ClassVar[str] = "Right-click at a point of the screen."
    Args = PointArgs

    async def run(self, args: PointArgs) -> dict[str, Any]:
        x, y = self.px(args.point)
        await self.backend.click(x, y, button="right")
        return {"x": round(x, 1), "y": round(y, 1)}


class Move(GuiTool):
    name: ClassVar[str] = "move"
    description: ClassVar[str] = "Move the mouse pointer to a point (hover)."
    Args = PointArgs

    async def run(self, args: PointArgs) -> dict[str, Any]:
        x, y = self.px(args.point)
        await self.backend.move(x, y)
        return {"x": round(x, 1), "y": round(y, 1)}


class TypeText(GuiTool):
    name: ClassVar[str] = "type"
    description: ClassVar[str] = "Type text into the focused element."
    Args = TypeArgs

    async def run(self, args: TypeArgs) -> dict[str, Any]:
        await self.backend.type(args.text)
        return {"typed": len(args.text)}


class Key(GuiTool):
    name: ClassVar[str] = "key"
    description: ClassVar[str] = "Press a key or a chord (hotkey)."
    Args = KeyArgs

    async def run(self, args: KeyArgs) -> dict[str, Any]:
        await self.backend.key(args.keys)
        return {"keys": args.keys}


class Scroll(GuiTool):
    name: ClassVar[str] = "scroll"
    description: ClassVar[str] = "Scroll the wheel at a point."
    Args = ScrollArgs

    async def run(self, args: ScrollArgs) -> dict[str, Any]:
        x, y = self.px(args.point)
        step = 40.0 * args.amount
        dx = {"left": -step, "right": step}.get(args.direction, 0.0)
        dy = {"up": -step, "down": step}.get(args.direction, 0.0)
        await self.backend.scroll(x, y, dx, dy)
        return {"x": round(x, 1), "y": round(y, 1), "dx": dx, "dy": dy}


class Drag(GuiTool):
    name: ClassVar[str] = "drag"
    description: ClassVar[str] = "Press at start, move to end, release."
    Args = DragArgs

    async def run(self, args: DragArgs) -> dict[str, Any]:
        x1, y1 = self.px(args.start)
        x2, y2 = self.px(args.end)
        await self.backend.drag(x1, y1, x2, y2)
        return {"from": [round(x1, 1), round(y1, 1)], "to": [round(x2, 1), round(y2, 1)]}


class Wait(GuiTool):
    name: ClassVar[str] = "wait"
    description: ClassVar[str] = "Wait for the screen to change."
    Args = WaitArgs

    async def run(self, args: WaitArgs) -> dict[str, Any]:
        await asyncio.sleep(args.seconds)
        return {"waited": args.seconds}


class Finished(GuiTool):
    name: ClassVar[str] = "finished"
    description: ClassVar[str] = "Declare the task done (optionally with an answer)."
    Args = FinishedArgs

    async def run(self, args: FinishedArgs) -> dict[str, Any]:
        return {"finished": True, "answer": args.answer}


GUI_TOOLS: tuple[type[GuiTool], ...] = (
    Click,
    DoubleClick,
    RightClick,
    TypeText,
    Key,
    Scroll,
    Drag,
    Move,
    Wait,
    Finished,
)


def gui_tools(backend: GuiBackend) -> list[Tool]:
    """All GUI tools bound to ``backend``."""
    return [cls(backend) for cls in GUI_TOOLS]


def gui_toolbox(backend: GuiBackend, timeout_s: float = 10.0) -> ToolBox:
    """A :class:`ToolBox` with every GUI tool bound to ``backend``."""
    return ToolBox(gui_tools(backend), timeout_s=timeout_s)
