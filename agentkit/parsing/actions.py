"""GUI actions written as text: UI-TARS calls and ShowUI action dicts, mapped to agentkit's vocabulary.

agentkit's GUI tools are ``click, double_click, right_click, type, key, scroll, drag, move, wait,
finished``; arguments carry normalized points ``{"x": .., "y": ..}`` (``drag``: ``start``/``end``,
``type``: ``text``, ``key``: ``keys`` list, ``scroll``: ``point``/``direction``/``amount``). UI-TARS
writes Python-call syntax (``click(start_box='<|box_start|>(x,y)<|box_end|>')``); it is read by a small
scanner of keyword arguments with quoted values - never by ``eval`` or ``ast``. Actions outside the
vocabulary (``call_user``, ``long_press``, ``open_app`` ...) pass through under their own name, for the
ToolBox to accept or reject.
"""

from __future__ import annotations

import re
from typing import Any

from agentkit.parsing.formats import CoordFormat, as_number
from agentkit.parsing.grounding import _snippet, numbers
from agentkit.parsing.jsonsafe import loads_strict, pyish_to_json, unescape_py
from agentkit.parsing.result import _Context
from agentkit.types import Point, ToolCall

# --- shared helpers ------------------------------------------------------------------------------


def point_arg(p: Point) -> dict[str, float]:
    """The JSON form of a normalized point in tool-call arguments."""
    return {"x": p.x, "y": p.y}


def coord_from_numbers(nums: list[Any], native: CoordFormat, ctx: _Context, where: str) -> Point | None:
    """2 numbers -> a point; 4 numbers -> the centre of that box (UI-TARS clicks box centres)."""
    if len(nums) == 2:
        return ctx.point(nums, native, where=where)
    if len(nums) == 4:
        b = ctx.box(nums, native, where=where)
        return None if b is None else b.center
    ctx.error(f"{where}expected a point (x, y) or a box (x1, y1, x2, y2), got {len(nums)} numbers")
    return None


# --- UI-TARS --------------------------------------------------------------------------------------

_UITARS_NAMES = (
    "click|left_single|left_double|right_single|double_click|right_click|middle_click|drag|select|hotkey|press|"
    "keydown|keyup|release|type|scroll|wait|finished|call_user|mouse_move|move_to|hover|long_press|open_app|"
    "press_home|press_back"
)
UITARS_ACTIONS = frozenset(_UITARS_NAMES.split("|"))
_CALL_IN_ACTION = re.compile(rf"(?<![\w.])(?P<name>{_UITARS_NAMES})\(")
_CALL_AT_LINE = re.compile(rf"(?m)^[ \t]*(?P<name>{_UITARS_NAMES})\(")
_CALL_AT_START = re.compile(rf"\s*(?:{_UITARS_NAMES})\(")
_ACTION_LABEL = re.compile(r"Action\s*[:：]")
_KEY = re.compile(r"\s*(\w+)\s*=\s*")
_COORD_ARGS = {"start_box", "end_box", "point", "start_point", "end_point"}
_UITARS_MAP = {
    "click": "click",
    "left_single": "click",
    "left_double": "double_click",
    "double_click": "double_click",
    "right_single": "right_click",
    "right_click": "right_click",
    "middle_click": "click",
    "drag": "drag",
    "select": "drag",
    "hotkey": "key",
    "press": "key",
    "type": "type",
    "scroll": "scroll",
    "wait": "wait",
    "finished": "finished",
    "mouse_move": "move",
    "move_to": "move",
    "hover": "move",
}


class _ScanError(Exception):
    pass


def _scan_args(s: str, i: int) -> tuple[dict[str, str], int]:
    """Keyword arguments of a call whose ``(`` ends just before ``i``; returns (args, index after ``)``)."""
    args: dict[str, str] = {}
    n = len(s)
    while True:
        while i < n and s[i] in " \t\r\n":
            i += 1
        if i < n and s[i] == ")":
            return args, i + 1
        m = _KEY.match(s, i)
        if m is None:
            raise _ScanError("expected name=value")
        key, i = m.group(1), m.end()
        if i < n and s[i] in "'\"":
            quote, j, buf = s[i], i + 1, []
            while j < n and s[j] != quote:
                if s[j] == "\\" and j + 1 < n:
                    buf.append(s[j : j + 2])
                    j += 2
                else:
                    buf.append(s[j])
                    j += 1
            if j >= n:
                raise _ScanError("unterminated string")
            args[key] = unescape_py("".join(buf))
            i = j + 1
        else:
            m2 = re.compile(r"[^,)]*").match(s, i)
            assert m2 is not None  # [^,)]* always matches
            args[key] = m2.group(0).strip()
            i = m2.end()
        while i < n and s[i] in " \t\r\n":
            i += 1
        if i < n and s[i] == ",":
            i += 1
            continue
        if i < n and s[i] == ")":
            return args, i + 1
        raise _ScanError("expected ',' or ')'" if i < n else "unterminated call")


_CONTENT_FALLBACK = re.compile(r"\s*content\s*=\s*(['\"])(?P<content>.*)\1\s*\)", re.DOTALL)


def _uitars_call(name: str, args: dict[str, str], ctx: _Context) -> ToolCall | None:
    where = f"{name}: "
    out: dict[str, Any] = {}
    points: dict[str, Point] = {}
    for key, value in args.items():
        if key in _COORD_ARGS:
            if not value.strip():
                continue
            p = coord_from_numbers(numbers(value), CoordFormat.UI_TARS, ctx, where)
            if p is None:
                ctx.error(f"action {name}(...) dropped")
                return None
            points["start" if key in ("start_box", "start_point", "point") else "end"] = p
    tool = _UITARS_MAP.get(name, name)
    start, end = points.get("start"), points.get("end")
    if tool == "drag":
        if start is None or end is None:
            ctx.error(f"{where}drag needs start and end points; dropped")
            return None
        out = {"start": point_arg(start), "end": point_arg(end)}
    elif tool in ("click", "double_click", "right_click", "move"):
        if start is None:
            ctx.error(f"{where}no point given; dropped")
            return None
        out = {"point": point_arg(start)}
        if name == "middle_click":
            out["button"] = "middle"
    elif tool == "key":
        combo = args.get("key", args.get("hotkey", args.get("press", ""))).strip()
        if not combo:
            ctx.error(f"{where}no key given; dropped")
            return None
        out = {"keys": combo.split()}
    elif tool == "type":
        out = {"text": args.get("content", "")}
    elif tool == "scroll":
        if start is not None:
            out["point"] = point_arg(start)
        direction = args.get("direction", "").strip().lower()
        if direction not in ("up", "down", "left", "right"):
            ctx.error(f"{where}scroll direction must be up/down/left/right, got {direction!r}; dropped")
            return None
        out["direction"] = direction
        steps = args.get("steps", "").strip()
        if steps:
            n = as_number(steps)
            if n is None or n < 0:
                ctx.error(f"{where}scroll steps {_snippet(steps)!r} is not a count; ignored")
            else:
                out["amount"] = int(n)
    elif tool == "wait":
        secs = args.get("seconds", args.get("time", "")).strip()
        if secs:
            n = as_number(secs)
            if n is None or n < 0:
                ctx.error(f"{where}wait seconds {_snippet(secs)!r} is not a duration; ignored")
            else:
                out = {"seconds": n}
    elif tool == "finished":
        content = args.get("content", "")
        out = {"answer": content} if content else {}
    else:  # outside the vocabulary: pass through, coordinates converted
        out = {k: v for k, v in args.items() if k not in _COORD_ARGS}
        if start is not None:
            out["point"] = point_arg(start)
        if end is not None:
            out["end"] = point_arg(end)
    return ToolCall(tool, out)


def extract_uitars(text: str, ctx: _Context) -> str:
    """UI-TARS ``Thought: ... Action: click(...)``. After an ``Action:`` label every call counts; without
    one only calls at the start of a line (so prose about "click(" is left alone).
    """
    # The first "Action:" followed directly by a call (typed content may itself contain "Action:");
    # with none, calls count only at the start of a line.
    label = next((m for m in _ACTION_LABEL.finditer(text) if _CALL_AT_START.match(text, m.end())), None)
    if label is not None:
        start = label.end()
        pattern = _CALL_IN_ACTION
    else:
        start = 0
        pattern = _CALL_AT_LINE
    if not pattern.search(text, start):
        return text
    out = [text[:start]]
    pos = start
    while True:
        m = pattern.search(text, pos)
        if m is None:
            break
        name = m.group("name")
        try:
            args, end = _scan_args(text, m.end())
        except _ScanError as e:
            fb = _CONTENT_FALLBACK.match(text, m.end()) if name in ("type", "finished") else None
            if fb is None:
                ctx.error(f"malformed action {_snippet(text[m.start() :], 60)!r}: {e}")
                out.append(text[pos : m.end()])
                pos = m.end()
                continue
            args, end = {"content": unescape_py(fb.group("content"))}, fb.end()  # unescaped quote inside content
        out.append(text[pos : m.start()])
        call = _uitars_call(name, args, ctx)
        if call is not None:
            ctx.result.tool_calls.append(call)
        pos = end
    out.append(text[pos:])
    result = "".join(out)
    if label is not None and not result[start:].strip():
        result = result[: label.start()]  # nothing but the calls followed "Action:"
    return result


# --- ShowUI ---------------------------------------------------------------------------------------

_SHOWUI_DICT = re.compile(r"\{[^{}]{0,2000}?['\"]action['\"]\s*:[^{}]{0,2000}?\}")
_SHOWUI_MAP = {"CLICK": "click", "TAP": "click", "HOVER": "move", "ANSWER": "finished"}


def _showui_points(position: Any, ctx: _Context, where: str) -> list[Point] | None:
    if position is None:
        return []
    if isinstance(position, list) and len(position) == 2 and all(isinstance(v, list) for v in position):
        pts = [coord_from_numbers(v, CoordFormat.SHOWUI, ctx, where) for v in position]
        return None if any(p is None for p in pts) else pts  # type: ignore[return-value]
    if isinstance(position, list):
        p = coord_from_numbers(position, CoordFormat.SHOWUI, ctx, where)
        return None if p is None else [p]
    ctx.error(f"{where}position is not a list: {_snippet(repr(position))!r}")
    return None


def _showui_call(d: dict[str, Any], ctx: _Context) -> list[ToolCall] | None:
    action = d.get("action")
    if not isinstance(action, str) or not action.strip():
        ctx.error(f"ShowUI action without a name: {_snippet(repr(d))!r}")
        return None
    action = action.strip().upper()
    where = f"ShowUI {action}: "
    pts = _showui_points(d.get("position"), ctx, where)
    if pts is None:
        ctx.error(f"ShowUI action {action} dropped")
        return None
    value = d.get("value")
    value = None if value is None else str(value)
    if action in ("CLICK", "TAP", "HOVER"):
        if len(pts) != 1:
            ctx.error(f"{where}needs one position; dropped")
            return None
        return [ToolCall(_SHOWUI_MAP[action], {"point": point_arg(pts[0])})]
    if action == "INPUT":
        calls = [ToolCall("click", {"point": point_arg(pts[0])})] if len(pts) == 1 else []
        return [*calls, ToolCall("type", {"text": value or ""})]
    if action == "ENTER":
        return [ToolCall("key", {"keys": ["enter"]})]
    if action == "SCROLL":
        direction = (value or "").strip().lower()
        if direction not in ("up", "down", "left", "right"):
            ctx.error(f"{where}direction must be up/down/left/right, got {value!r}; dropped")
            return None
        return [ToolCall("scroll", {"direction": direction})]
    if action in ("SWIPE", "SELECT_TEXT") and len(pts) == 2:
        return [ToolCall("drag", {"start": point_arg(pts[0]), "end": point_arg(pts[1])})]
    if action == "ANSWER":
        return [ToolCall("finished", {"answer": value} if value else {})]
    args: dict[str, Any] = {}
    if len(pts) == 1:
        args["point"] = point_arg(pts[0])
    elif len(pts) == 2:
        args["start"], args["end"] = point_arg(pts[0]), point_arg(pts[1])
    if value is not None:
        args["value"] = value
    return [ToolCall(action.lower(), args)]


def extract_showui(text: str, ctx: _Context) -> str:
    """ShowUI navigation dicts ``{'action': 'CLICK', 'value': None, 'position': [0.49, 0.42]}`` (0-1)."""
    if "action" not in text:
        return text

    def repl(m: re.Match[str]) -> str:
        raw = m.group(0)
        if "position" not in raw:
            return raw
        value, err = loads_strict(pyish_to_json(raw))
        if err is not None or not isinstance(value, dict):
            ctx.error(f"malformed ShowUI action {_snippet(raw, 60)!r}: {err or 'not an object'}")
            return ""
        calls = _showui_call(value, ctx)
        if calls:
            ctx.result.tool_calls.extend(calls)
        return ""

    return _SHOWUI_DICT.sub(repl, text)


# --- OS-Atlas -------------------------------------------------------------------------------------

_OSATLAS = re.compile(
    r"(?m)^[ \t]*(?P<name>CLICK|LONG_PRESS|TYPE|SCROLL|OPEN_APP|PRESS_BACK|PRESS_HOME|PRESS_RECENT|ENTER|COMPLETE|"
    r"WAIT|IMPOSSIBLE)\b[ \t]*(?:<point>(?P<point>[^<\n]{0,200})</point>|\[(?P<arg>[^\n]{0,2000})\])?[ \t]*$"
)
_OSATLAS_PLAIN = {"ENTER": ("key", {"keys": ["enter"]}), "COMPLETE": ("finished", {}), "WAIT": ("wait", {})}


def extract_osatlas(text: str, ctx: _Context) -> str:
    """OS-Atlas-Pro actions, one per line: ``CLICK <point>[[x, y]]</point>`` (0-1000), ``TYPE [text]``,
    ``SCROLL [UP]``, ``OPEN_APP [name]``, ``PRESS_BACK``, ``COMPLETE`` ... (upper case at a line start only)."""

    def repl(m: re.Match[str]) -> str:
        name, arg = m.group("name"), m.group("arg")
        where = f"{name}: "
        if name in ("CLICK", "LONG_PRESS"):
            if m.group("point") is None:
                ctx.error(f"{where}no <point>[[x, y]]</point>; dropped")
                return ""
            p = coord_from_numbers(numbers(m.group("point")), CoordFormat.QWEN2_VL, ctx, where)
            if p is not None:
                tool = "click" if name == "CLICK" else "long_press"
                ctx.result.tool_calls.append(ToolCall(tool, {"point": point_arg(p)}))
        elif name == "TYPE":
            ctx.result.tool_calls.append(ToolCall("type", {"text": arg or ""}))
        elif name == "SCROLL":
            direction = (arg or "").strip().lower()
            if direction not in ("up", "down", "left", "right"):
                ctx.error(f"{where}direction must be UP/DOWN/LEFT/RIGHT, got {arg!r}; dropped")
            else:
                ctx.result.tool_calls.append(ToolCall("scroll", {"direction": direction}))
        elif name == "OPEN_APP":
            ctx.result.tool_calls.append(ToolCall("open_app", {"name": (arg or "").strip()}))
        elif name in _OSATLAS_PLAIN:
            tool, args = _OSATLAS_PLAIN[name]
            ctx.result.tool_calls.append(ToolCall(tool, dict(args)))
        else:  # PRESS_BACK, PRESS_HOME, PRESS_RECENT, IMPOSSIBLE
            ctx.result.tool_calls.append(ToolCall(name.lower(), {}))
        return ""

    return _OSATLAS.sub(repl, text)
