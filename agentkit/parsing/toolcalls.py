"""Hermes / Qwen ``<tool_call>{"name": .., "arguments": {..}}</tool_call>`` blocks, strict JSON only.

Three kinds of call come out of these blocks:

- Qwen computer-use (``computer_use`` / ``mobile_use`` with an ``action`` argument) is mapped to agentkit's
  GUI vocabulary; its ``coordinate`` values are resized-image pixels for Qwen2.5-VL (the fmt overrides).
- Anything else - robot primitives ``pick, place, push, go_to, open_gripper, close_gripper, home``, GUI
  tools called by name, user tools - passes through with its name and arguments, except that arguments
  that hold coordinates (``point``, ``coordinate``, ``start``, ``end``, ``bbox`` ...) are converted to
  normalized ``{"x": .., "y": ..}`` (or ``{"x1", "y1", "x2", "y2"}``) in the fmt's space.
- Broken JSON, a missing name, or a coordinate out of range drops the call and records why.
"""

from __future__ import annotations

import re
from typing import Any

from agentkit.parsing.actions import coord_from_numbers, point_arg
from agentkit.parsing.formats import CoordFormat, as_number
from agentkit.parsing.grounding import _snippet, numbers
from agentkit.parsing.jsonsafe import loads_strict
from agentkit.parsing.result import _Context
from agentkit.types import ToolCall

_BLOCK = re.compile(r"<tool_call>(?P<body>.*?)</tool_call>", re.DOTALL)
_OPEN = "<tool_call>"

POINT_KEYS = frozenset(
    {
        "point",
        "coordinate",
        "coordinate2",
        "start",
        "end",
        "start_point",
        "end_point",
        "start_coordinate",
        "end_coordinate",
        "position",
        "target",
        "location",
        "point_2d",
        "point_from",  # agentkit's robot push
        "point_to",
    }
)
BOX_KEYS = frozenset({"box", "bbox", "bbox_2d"})
POINT_LIST_KEYS = frozenset({"points", "path", "waypoints"})

_COMPUTER_TOOLS = ("computer_use", "mobile_use")
_CU_CLICKS = {
    "left_click": "click",
    "click": "click",
    "right_click": "right_click",
    "double_click": "double_click",
    "middle_click": "click",
    "mouse_move": "move",
}


class _Drop(Exception):
    """A coordinate argument failed: the whole call is dropped (a click without its point is meaningless)."""


def _coord(value: Any, native: CoordFormat, ctx: _Context, where: str) -> dict[str, float]:
    if isinstance(value, dict) and "x" in value and "y" in value:
        nums: list[Any] = [value["x"], value["y"]]
    elif isinstance(value, (list, tuple)):
        nums = list(value)
    elif isinstance(value, str):
        nums = numbers(value)
    else:
        ctx.error(f"{where}not a point: {_snippet(repr(value))!r}")
        raise _Drop
    if any(isinstance(v, (list, dict)) for v in nums):
        ctx.error(f"{where}not a point: {_snippet(repr(value))!r}")
        raise _Drop
    p = coord_from_numbers(nums, native, ctx, where)
    if p is None:
        raise _Drop
    return point_arg(p)


def _box(value: Any, native: CoordFormat, ctx: _Context, where: str) -> dict[str, float]:
    if isinstance(value, dict) and all(k in value for k in ("x1", "y1", "x2", "y2")):
        nums: list[Any] = [value[k] for k in ("x1", "y1", "x2", "y2")]
    elif isinstance(value, (list, tuple)):
        nums = list(value)
    elif isinstance(value, str):
        nums = numbers(value)
    else:
        nums = []
    b = ctx.box(nums, native, where=where) if len(nums) == 4 else None
    if b is None:
        if len(nums) != 4:
            ctx.error(f"{where}not a box: {_snippet(repr(value))!r}")
        raise _Drop
    return {"x1": b.x1, "y1": b.y1, "x2": b.x2, "y2": b.y2}


def _is_point_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, (list, dict)) for v in value)


def _convert_args(name: str, args: dict[str, Any], native: CoordFormat, ctx: _Context) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in args.items():
        where = f"tool call {name!r} argument {key!r}: "
        if key in POINT_KEYS:
            out[key] = _coord(value, native, ctx, where)
        elif key in BOX_KEYS:
            out[key] = _box(value, native, ctx, where)
        elif key in POINT_LIST_KEYS and _is_point_list(value):
            out[key] = [_coord(v, native, ctx, where) for v in value]
        else:
            out[key] = value
    return out


def _computer_use(args: dict[str, Any], ctx: _Context) -> ToolCall:
    """Qwen computer-use / mobile-use ``{"action": .., "coordinate": [x, y]}`` -> agentkit GUI vocabulary."""
    native = CoordFormat.QWEN2_5_VL
    action = args.get("action")
    if not isinstance(action, str) or not action:
        ctx.error(f"computer_use call without an action: {_snippet(repr(args))!r}")
        raise _Drop
    where = f"computer_use {action}: "

    def pt(key: str) -> dict[str, float] | None:
        return _coord(args[key], native, ctx, where) if args.get(key) is not None else None

    if action in _CU_CLICKS:
        p = pt("coordinate")
        out: dict[str, Any] = {"point": p} if p else {}
        if action == "middle_click":
            out["button"] = "middle"
        return ToolCall(_CU_CLICKS[action], out)
    if action in ("left_click_drag", "swipe"):
        if action == "swipe":  # mobile_use: from coordinate to coordinate2
            start, end = pt("coordinate"), pt("coordinate2")
        else:  # computer_use: from the cursor (or start_coordinate) to coordinate
            start, end = pt("start_coordinate"), pt("coordinate")
        if end is None:
            ctx.error(f"{where}no end coordinate; dropped")
            raise _Drop
        return ToolCall("drag", {"start": start, "end": end} if start else {"end": end})
    if action == "type":
        return ToolCall("type", {"text": str(args.get("text", ""))})
    if action == "key":
        keys = args.get("keys", args.get("text"))
        if isinstance(keys, str):
            keys = keys.replace("+", " ").split()
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            ctx.error(f"{where}keys must be a list of strings, got {_snippet(repr(keys))!r}; dropped")
            raise _Drop
        return ToolCall("key", {"keys": keys})
    if action == "system_button":
        return ToolCall("key", {"keys": [str(args.get("button", "")).lower()]})
    if action in ("scroll", "hscroll"):
        pixels = as_number(args.get("pixels"))
        if pixels is None:
            ctx.error(f"{where}pixels must be a number; dropped")
            raise _Drop
        if action == "scroll":
            direction = "up" if pixels > 0 else "down"  # Qwen: positive scrolls up
        else:
            direction = "right" if pixels > 0 else "left"
        # OSWorld's Qwen agent runs pyautogui.scroll(pixels): the unit is wheel clicks, i.e. agentkit notches
        out = {"direction": direction, "amount": round(abs(pixels))}
        p = pt("coordinate")
        if p:
            out["point"] = p
        return ToolCall("scroll", out)
    if action == "wait":
        secs = as_number(args.get("time"))
        return ToolCall("wait", {"seconds": secs} if secs is not None and secs >= 0 else {})
    if action == "terminate":
        status = str(args.get("status", "success"))  # "finished" means success; anything else is said
        return ToolCall("finished", {} if status == "success" else {"answer": status})
    if action == "answer":
        return ToolCall("finished", {"answer": str(args.get("text", ""))})
    rest = {k: v for k, v in args.items() if k != "action"}
    return ToolCall(action, _convert_args(action, rest, native, ctx))


def _one_call(body: str, ctx: _Context) -> ToolCall | None:
    value, err = loads_strict(body.strip())
    if err is not None:
        ctx.error(f"malformed <tool_call> JSON: {err}")
        return None
    if not isinstance(value, dict):
        ctx.error(f"<tool_call> must hold a JSON object, got {type(value).__name__}")
        return None
    name = value.get("name")
    if not isinstance(name, str) or not name.strip():
        ctx.error(f"<tool_call> without a name: {_snippet(body)!r}")
        return None
    name = name.strip()
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):  # OpenAI style: arguments as a JSON string
        args, err = loads_strict(args)
        if err is not None:
            ctx.error(f"<tool_call> {name!r}: malformed arguments JSON: {err}")
            return None
    if args is None:
        args = {}
    if not isinstance(args, dict):
        ctx.error(f"<tool_call> {name!r}: arguments must be an object, got {type(args).__name__}")
        return None
    call_id = value.get("id") if isinstance(value.get("id"), str) else None
    try:
        if name in _COMPUTER_TOOLS and "action" in args:
            call = _computer_use(args, ctx)
            return ToolCall(call.name, call.arguments, call_id)
        return ToolCall(name, _convert_args(name, args, CoordFormat.NORMALIZED, ctx), call_id)
    except _Drop:
        hint = ""
        if ctx.fmt is CoordFormat.AUTO and name not in _COMPUTER_TOOLS:
            hint = " (in auto mode tool-call coordinates must already be 0-1; pass fmt= to name the model's space)"
        ctx.error(f"tool call {name!r} dropped{hint}")
        return None


def extract_tool_calls(text: str, ctx: _Context) -> str:
    """Every ``<tool_call>`` block; an unterminated last block is accepted if its JSON is complete
    (servers often stop generation at ``</tool_call>`` and drop it)."""
    if _OPEN not in text:
        return text

    def repl(m: re.Match[str]) -> str:
        call = _one_call(m.group("body"), ctx)
        if call is not None:
            ctx.result.tool_calls.append(call)
        return ""

    if "</tool_call>" in text:  # guard: the lazy block regex is quadratic on many unclosed openings
        text = _BLOCK.sub(repl, text)
    i = text.find(_OPEN)
    if i >= 0:
        rest = text[i + len(_OPEN) :]
        if _OPEN in rest:
            ctx.error("nested or repeated unterminated <tool_call> dropped")
        else:
            _, err = loads_strict(rest.strip())
            if err is not None:
                ctx.error(f"unterminated <tool_call> dropped: {err}")
            else:
                call = _one_call(rest, ctx)
                if call is not None:
                    ctx.result.tool_calls.append(call)
        text = text[:i]
    text = text.replace("</tool_call>", "")
    return text
