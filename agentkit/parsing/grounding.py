"""Extractors for grounding markup: boxes and points a model draws on the image it saw.

One function per family, each ``(text, ctx) -> text`` with its markup consumed: found coordinates go
into ``ctx.result`` (converted through ``ctx``), malformed markup into ``ctx.result.errors``. They run
in the order :func:`~agentkit.parsing.parse.parse_response` calls them, after tool calls and
actions, so a list inside a tool call is never mistaken for a ShowUI point.

- Qwen2-VL / OS-Atlas: ``<|object_ref_start|>cat<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`` (0-1000)
- Qwen2.5-VL: ``[{"bbox_2d": [x1, y1, x2, y2], "label": "cat"}]``, ``{"point_2d": [x, y]}`` (resized pixels)
- Molmo: ``<point x="43.0" y="58.0" alt="cat">cat</point>``, ``<points x1=.. y1=.. x2=.. y2=..>`` (percent)
- UI-TARS ``<point>x y</point>`` / ``<bbox>x1 y1 x2 y2</bbox>`` outside an action (resized pixels)
- ShowUI ``[x, y]`` and RoboPoint ``[(x, y), ...]`` (0-1)
"""

from __future__ import annotations

import re
from typing import Any

from agentkit.parsing.formats import CoordFormat
from agentkit.parsing.jsonsafe import loads_strict, raw_decode_strict
from agentkit.parsing.result import _Context

NUM = r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUM_RE = re.compile(NUM)


def numbers(s: str) -> list[str]:
    """The numeric tokens of ``s`` in order (as strings, so errors can quote them)."""
    return _NUM_RE.findall(s)


def _snippet(s: str, n: int = 40) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 3] + "..."


# --- Qwen2-VL / OS-Atlas -------------------------------------------------------------------------

_QWEN2_TOKEN = re.compile(
    r"<\|object_ref_start\|>(?P<ref>[^<]{0,500}?)<\|object_ref_end\|>"
    r"|<\|box_start\|>(?P<body>[^<]{0,400}?)<\|box_end\|>"
)
_QWEN2_STRAY = re.compile(r"<\|(?:box_start|box_end|object_ref_start|object_ref_end)\|>")


def extract_qwen2_boxes(text: str, ctx: _Context) -> str:
    """Qwen2-VL grounding: a box body of 2 numbers is a point, of 4 a box labelled by the ref before it."""
    out: list[str] = []
    pos = 0
    label: str | None = None
    for m in _QWEN2_TOKEN.finditer(text):
        between = text[pos : m.start()]
        out.append(between)
        if between.strip():
            label = None  # a label names only the boxes right after it
        if m.group("ref") is not None:
            label = m.group("ref").strip() or None
            out.append(m.group("ref"))
        else:
            body = m.group("body")
            nums = numbers(body)
            if len(nums) == 2:
                p = ctx.point(nums, CoordFormat.QWEN2_VL)
                if p is not None:
                    ctx.result.points.append(p)
            elif len(nums) == 4:
                b = ctx.box(nums, CoordFormat.QWEN2_VL, label=label)
                if b is not None:
                    ctx.result.boxes.append(b)
            else:
                ctx.error(f"malformed <|box_start|> markup {_snippet(body)!r}: expected (x,y) or (x1,y1),(x2,y2)")
        pos = m.end()
    out.append(text[pos:])
    result = "".join(out)
    if _QWEN2_STRAY.search(result):
        ctx.error("unterminated or unpaired <|box_start|>/<|object_ref_start|> markup dropped")
        result = _QWEN2_STRAY.sub("", result)
    return result


# --- Molmo ---------------------------------------------------------------------------------------

_MOLMO = re.compile(
    r"<(?P<tag>points?)(?P<attrs>\s[^<>]{0,2000}?)(?:/>|>(?P<inner>[^<]{0,2000}?)</(?P=tag)>)", re.IGNORECASE
)
_MOLMO_OPEN = re.compile(r"<points?\s+[^<>]*\bx1?\s*=", re.IGNORECASE)
_ATTR = re.compile(r"(\w+)\s*=\s*\"([^\"]*)\"")


def extract_molmo(text: str, ctx: _Context) -> str:
    """Molmo percent points; the tag is replaced by its inner text (the phrase it points at)."""

    def repl(m: re.Match[str]) -> str:
        attrs = {k.lower(): v for k, v in _ATTR.findall(m.group("attrs"))}
        inner = m.group("inner") or ""
        if "x" in attrs or "y" in attrs:
            pairs = [(attrs.get("x"), attrs.get("y"))]
        else:
            idx = sorted({int(k[1:]) for k in attrs if re.fullmatch(r"[xy]\d{1,4}", k)})
            pairs = [(attrs.get(f"x{i}"), attrs.get(f"y{i}")) for i in idx]
        if not pairs:
            ctx.error(f"Molmo <{m.group('tag')}> tag without coordinates: {_snippet(m.group(0))!r}")
            return inner
        for x, y in pairs:
            if x is None or y is None:
                ctx.error(f"Molmo <{m.group('tag')}> tag with an unpaired coordinate: {_snippet(m.group(0))!r}")
                continue
            p = ctx.point([x, y], CoordFormat.MOLMO)
            if p is not None:
                ctx.result.points.append(p)
        return inner

    text = _MOLMO.sub(repl, text)
    if _MOLMO_OPEN.search(text):
        ctx.error("unterminated Molmo <point> tag dropped")
        text = re.sub(r"<points?\s+[^<>]*>?", "", text, flags=re.IGNORECASE)
    return text


# --- UI-TARS style <point>x y</point> / <bbox>..</bbox> -----------------------------------------

_POINT_TAG = re.compile(r"<(?P<tag>point|bbox)>(?P<body>[^<]{0,200}?)</(?P=tag)>")


def extract_point_tags(text: str, ctx: _Context) -> str:
    """``<point>x y</point>`` and ``<bbox>x1 y1 x2 y2</bbox>`` outside actions (UI-TARS-1.5 pixels)."""

    def repl(m: re.Match[str]) -> str:
        nums = numbers(m.group("body"))
        # OS-Atlas writes <point>[[x, y]]</point> on its 0-1000 grid; UI-TARS writes <point>x y</point> in pixels
        native = CoordFormat.QWEN2_VL if "[" in m.group("body") else CoordFormat.UI_TARS
        if len(nums) == 2:
            p = ctx.point(nums, native)
            if p is not None:
                ctx.result.points.append(p)
        elif len(nums) == 4:
            b = ctx.box(nums, native)
            if b is not None:
                ctx.result.boxes.append(b)
        else:
            ctx.error(f"malformed <{m.group('tag')}> markup {_snippet(m.group('body'))!r}")
        return ""

    return _POINT_TAG.sub(repl, text)


# --- Qwen2.5-VL JSON grounding -------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w-]*)[ \t]*\n?(?P<body>.*?)```", re.DOTALL)
_GROUNDING_KEY = re.compile(r"\"(?:bbox_2d|point_2d)\"")
_JSON_START = re.compile(r"[\[{]")
_MAX_JSON_TRIES = 256


def _grounding_items(value: Any, depth: int = 0) -> list[dict[str, Any]]:
    """Objects holding ``bbox_2d`` / ``point_2d``, at the top level or nested (``{"waypoints": [...]}``)."""
    if depth > 8:
        return []
    if isinstance(value, dict):
        if "bbox_2d" in value or "point_2d" in value:
            return [value]
        value = list(value.values())
    if isinstance(value, list):
        return [it for v in value for it in _grounding_items(v, depth + 1)]
    return []


def _take_grounding(items: list[dict[str, Any]], ctx: _Context) -> None:
    for it in items:
        label = it.get("label") if isinstance(it.get("label"), str) else None
        if "bbox_2d" in it:
            raw = it["bbox_2d"]
            if isinstance(raw, list):
                b = ctx.box(raw, CoordFormat.QWEN2_5_VL, label=label)
                if b is not None:
                    ctx.result.boxes.append(b)
            else:
                ctx.error(f"bbox_2d is not a list: {_snippet(repr(raw))!r}")
        if "point_2d" in it:
            raw = it["point_2d"]
            if isinstance(raw, list):
                p = ctx.point(raw, CoordFormat.QWEN2_5_VL)
                if p is not None:
                    ctx.result.points.append(p)
            else:
                ctx.error(f"point_2d is not a list: {_snippet(repr(raw))!r}")


def extract_qwen25_json(text: str, ctx: _Context) -> str:
    """Qwen2.5-VL JSON grounding, fenced (```json) or bare; strict ``json.loads``, errors recorded."""
    if not _GROUNDING_KEY.search(text):
        return text

    def fence(m: re.Match[str]) -> str:
        body = m.group("body")
        if not _GROUNDING_KEY.search(body):
            return m.group(0)
        value, err = loads_strict(body)
        if err is not None:
            ctx.error(f"malformed grounding JSON in ``` block: {err}")
        elif not (items := _grounding_items(value)):
            ctx.error("``` block mentions bbox_2d/point_2d but holds no grounding objects")
        else:
            _take_grounding(items, ctx)
        return ""

    text = _FENCE.sub(fence, text)
    # Bare JSON (no fence): try a strict decode at each '[' / '{' that could open a grounding value.
    out: list[str] = []
    pos = tries = 0
    while _GROUNDING_KEY.search(text, pos) and tries < _MAX_JSON_TRIES:
        m = _JSON_START.search(text, pos)
        if m is None:
            break
        tries += 1
        got = raw_decode_strict(text, m.start())
        items = _grounding_items(got[0]) if got is not None else []
        if got is not None and items:
            _take_grounding(items, ctx)
            out.append(text[pos : m.start()])
            pos = got[1]
        else:
            out.append(text[pos : m.end()])
            pos = m.end()
    out.append(text[pos:])
    text = "".join(out)
    if _GROUNDING_KEY.search(text):
        ctx.error("malformed grounding JSON (bbox_2d/point_2d outside a valid JSON value)")
        text = re.sub(r"```[ \t]*json.*", "", text, flags=re.DOTALL)  # an unterminated fence: drop the rest
    return text


# --- ShowUI / RoboPoint / normalized lists -------------------------------------------------------

_TUPLE = rf"\(\s*({NUM})\s*,\s*({NUM})\s*\)"
_ROBO = re.compile(rf"\[\s*{_TUPLE}(?:\s*,\s*{_TUPLE})*\s*,?\s*\]")
_LIST = re.compile(rf"\[\s*({NUM})\s*,\s*({NUM})\s*(?:,\s*({NUM})\s*,\s*({NUM})\s*)?\]")
_LIST_FORMATS = (CoordFormat.SHOWUI, CoordFormat.ROBOPOINT, CoordFormat.NORMALIZED)


def _looks_normalized(nums: list[str]) -> bool:
    """In auto mode a bare list is a coordinate only if it is plainly 0-1 (some decimal point, all in range)."""
    try:
        vals = [float(n) for n in nums]
    except ValueError:
        return False
    return any("." in n for n in nums) and all(0.0 <= v <= 1.0 for v in vals)


def extract_lists(text: str, ctx: _Context) -> str:
    """RoboPoint ``[(x, y), ...]`` and ShowUI ``[x, y]`` / ``[x1, y1, x2, y2]`` in 0-1.

    With an explicit list format every such list is a coordinate (out of range -> error). In auto mode
    only lists that are plainly normalized count; ``[1, 2]`` in prose stays text.
    """
    if ctx.fmt is not CoordFormat.AUTO and ctx.fmt not in _LIST_FORMATS:
        return text
    auto = ctx.fmt is CoordFormat.AUTO
    native = CoordFormat.ROBOPOINT

    def robo(m: re.Match[str]) -> str:
        pairs = re.findall(_TUPLE, m.group(0))
        if auto and not _looks_normalized([v for pair in pairs for v in pair]):
            return m.group(0)
        for pair in pairs:
            p = ctx.point(list(pair), native)
            if p is not None:
                ctx.result.points.append(p)
        return ""

    def plain(m: re.Match[str]) -> str:
        nums = [g for g in m.groups() if g is not None]
        if auto and not _looks_normalized(nums):
            return m.group(0)
        if len(nums) == 2:
            p = ctx.point(nums, CoordFormat.SHOWUI)
            if p is not None:
                ctx.result.points.append(p)
        else:
            b = ctx.box(nums, CoordFormat.SHOWUI)
            if b is not None:
                ctx.result.boxes.append(b)
        return ""

    text = _ROBO.sub(robo, text)
    return _LIST.sub(plain, text)
