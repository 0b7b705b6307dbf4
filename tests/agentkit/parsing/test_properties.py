"""Property-based tests: parsing never raises, never returns an out-of-range coordinate, and round-trips."""

from __future__ import annotations

import math
import os
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agentkit.parsing import (
    CoordFormat,
    ParseResult,
    format_box,
    format_point,
    format_tool_call,
    parse_response,
)
from agentkit.parsing.formatting import PRECISION
from agentkit.types import Box, Point, ToolCall

# PARSING_MAX_EXAMPLES=5000 for a longer hunt; 300 keeps the suite a few seconds.
SETTINGS = settings(
    max_examples=int(os.environ.get("PARSING_MAX_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SIZE = (1316, 728)
ALL_FMTS = [f for f in CoordFormat]


def _points_in_args(value: Any) -> list[dict]:
    """Every point/box dict inside tool-call arguments."""
    if isinstance(value, dict):
        found = [value] if {"x", "y"} <= set(value) or {"x1", "y1", "x2", "y2"} <= set(value) else []
        return found + [p for v in value.values() for p in _points_in_args(v)]
    if isinstance(value, list):
        return [p for v in value for p in _points_in_args(v)]
    return []


def assert_valid(r: ParseResult) -> None:
    assert isinstance(r, ParseResult) and isinstance(r.text, str)
    assert not [e for e in r.errors if e.startswith("internal parser error")], r.errors
    for p in r.points:
        assert isinstance(p, Point) and 0 <= p.x <= 1 and 0 <= p.y <= 1
    for b in r.boxes:
        assert isinstance(b, Box) and 0 <= b.x1 <= b.x2 <= 1 and 0 <= b.y1 <= b.y2 <= 1
    for c in r.tool_calls:
        assert isinstance(c.name, str) and c.name and isinstance(c.arguments, dict)
        for d in _points_in_args(c.arguments):
            for k in ("x", "y", "x1", "y1", "x2", "y2"):
                if k in d and isinstance(d[k], float):
                    assert math.isfinite(d[k]) and 0 <= d[k] <= 1, c


def parse_all_ways(text: str) -> None:
    for fmt in ALL_FMTS:
        assert_valid(parse_response(text, fmt, resized_size=SIZE))
    assert_valid(parse_response(text))  # auto, no size: pixel markup must become errors, not guesses


# --- never raises --------------------------------------------------------------------------------


@SETTINGS
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises(text: str) -> None:
    parse_all_ways(text)


FRAGMENTS = [
    "<|box_start|>",
    "<|box_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "(",
    ")",
    ",",
    "[",
    "]",
    "{",
    "}",
    "<tool_call>",
    "</tool_call>",
    '{"name": "click", "arguments": {"point": ',
    '"point_2d": ',
    '"bbox_2d": ',
    '{"action": "left_click", "coordinate": ',
    '"computer_use"',
    "```json\n",
    "```",
    "<point>",
    "</point>",
    '<point x="',
    '" y="',
    '">',
    "</points>",
    '<points x1="',
    '" y1="',
    '" x2="',
    "<bbox>",
    "</bbox>",
    "Thought: ",
    "Action: ",
    "click(",
    "start_box='",
    "point='",
    "')",
    "type(content='",
    "drag(",
    "end_point='",
    "hotkey(key='",
    "scroll(",
    "direction='down'",
    "finished(",
    "wait()",
    "{'action': 'CLICK', 'value': None, ",
    "'position': ",
    "\nCLICK <point>[[",
    "]]</point>\n",
    "\nTYPE [",
    "\nSCROLL [",
    "None",
    "NaN",
    "Infinity",
    "-",
    ".",
    "e",
    "\\",
    "'",
    '"',
    "\n",
    " ",
    "1e400",
    "9" * 5000,
]
number = st.one_of(
    st.integers(-2000, 3000).map(str),
    st.floats(-2, 1200, allow_nan=False).map(lambda f: f"{f:.3f}"),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
soup = st.lists(st.one_of(st.sampled_from(FRAGMENTS), number, st.text(max_size=4)), max_size=40).map("".join)


@SETTINGS
@given(soup)
def test_markup_soup_never_raises_and_never_out_of_range(text: str) -> None:
    parse_all_ways(text)


def _dec(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


raw_num = st.one_of(st.integers(-50, 1500), st.floats(-1, 1500, allow_nan=False, allow_infinity=False))


LIST_KIND = 7


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[int, str]:
    """Syntactically valid markup of every kind with arbitrary (often out-of-range) numbers."""
    a, b, c, d = (_dec(draw(raw_num)) for _ in range(4))
    kind = draw(st.integers(0, 10))
    return kind, [
        f"<|box_start|>({a},{b}),({c},{d})<|box_end|>",
        f"<|box_start|>({a},{b})<|box_end|>",
        f'```json\n[{{"bbox_2d": [{a}, {b}, {c}, {d}], "label": "x"}}]\n```',
        f'{{"point_2d": [{a}, {b}]}}',
        f"Thought: t\nAction: click(start_box='<|box_start|>({a},{b})<|box_end|>')",
        f"Action: drag(start_point='<point>{a} {b}</point>', end_point='<point>{c} {d}</point>')",
        f'<point x="{a}" y="{b}" alt="o">o</point>',
        f"[({a}, {b}), ({c}, {d})]",
        f'<tool_call>{{"name": "computer_use", "arguments": {{"action": "left_click", "coordinate": [{a}, {b}]}}}}'
        "</tool_call>",
        f'<tool_call>{{"name": "pick", "arguments": {{"point": [{a}, {b}]}}}}</tool_call>',
        f"actions:\nCLICK <point>[[{a}, {b}]]</point>",
    ][kind]


@SETTINGS
@given(well_formed(), st.sampled_from(ALL_FMTS))
def test_well_formed_markup_gives_valid_coordinates_or_errors(case: tuple[int, str], fmt: CoordFormat) -> None:
    kind, text = case
    r = parse_response(text, fmt, resized_size=SIZE)
    assert_valid(r)
    # every coordinate-bearing markup is accounted for: converted, or an error says why not. Bare lists
    # are coordinates only under a list format (in auto mode only when plainly 0-1, so not checked here).
    if kind != LIST_KIND or fmt in (CoordFormat.SHOWUI, CoordFormat.ROBOPOINT, CoordFormat.NORMALIZED):
        assert r.points or r.boxes or r.tool_calls or r.errors, (text, fmt)


# --- round trips ---------------------------------------------------------------------------------

unit = st.floats(0, 1, allow_nan=False)
sizes = st.tuples(st.integers(28, 4000), st.integers(28, 4000))
POINT_FMTS = [f for f in CoordFormat if f is not CoordFormat.AUTO]
BOX_FMTS = [f for f in POINT_FMTS if f not in (CoordFormat.MOLMO, CoordFormat.ROBOPOINT)]


def tolerance(fmt: CoordFormat, size: tuple[int, int]) -> float:
    if fmt in PRECISION:
        return PRECISION[fmt] + 1e-9
    return 0.5 / min(size) + 1e-9


@SETTINGS
@given(unit, unit, st.sampled_from(POINT_FMTS), sizes, st.sampled_from(["", "Point: ", "The target is "]))
def test_point_round_trip(x: float, y: float, fmt: CoordFormat, size: tuple[int, int], prefix: str) -> None:
    text = prefix + format_point(Point(x, y), fmt, resized_size=size)
    r = parse_response(text, fmt, resized_size=size)
    assert r.errors == [] and len(r.points) == 1, (text, r)
    tol = tolerance(fmt, size)
    assert abs(r.points[0].x - x) <= tol and abs(r.points[0].y - y) <= tol
    assert r.text == prefix.strip()


@SETTINGS
@given(st.lists(unit, min_size=4, max_size=4), st.sampled_from(BOX_FMTS), sizes)
def test_box_round_trip(v: list[float], fmt: CoordFormat, size: tuple[int, int]) -> None:
    box = Box(min(v[0], v[2]), min(v[1], v[3]), max(v[0], v[2]), max(v[1], v[3]), label="thing")
    r = parse_response(format_box(box, fmt, resized_size=size), fmt, resized_size=size)
    assert r.errors == [] and len(r.boxes) == 1 and r.points == []
    tol = tolerance(fmt, size)
    got = r.boxes[0]
    pairs = zip((got.x1, got.y1, got.x2, got.y2), (box.x1, box.y1, box.x2, box.y2), strict=True)
    assert all(abs(a - b) <= tol for a, b in pairs)


@SETTINGS
@given(unit, unit, sizes)
def test_auto_mode_round_trip_for_self_describing_formats(x: float, y: float, size: tuple[int, int]) -> None:
    """In auto mode each markup carries its own convention: no fmt needed."""
    for fmt in (CoordFormat.QWEN2_VL, CoordFormat.MOLMO, CoordFormat.QWEN2_5_VL, CoordFormat.UI_TARS):
        text = format_point(Point(x, y), fmt, resized_size=size)
        r = parse_response(text, resized_size=size)
        assert len(r.points) == 1 and r.errors == [], (fmt, text, r)
        assert abs(r.points[0].x - x) <= tolerance(fmt, size)


@SETTINGS
@given(unit, unit, sizes)
def test_uitars_action_round_trip(x: float, y: float, size: tuple[int, int]) -> None:
    action = f"Thought: go\nAction: click(point='{format_point(Point(x, y), 'ui_tars', resized_size=size)}')"
    r = parse_response(action, "ui_tars", resized_size=size)
    (call,) = r.tool_calls
    assert call.name == "click" and abs(call.arguments["point"]["x"] - x) <= tolerance(CoordFormat.UI_TARS, size)


# --- out of range is never clamped ---------------------------------------------------------------


@SETTINGS
@given(
    st.sampled_from(
        [
            ("qwen2_vl", "<|box_start|>({x},{y})<|box_end|>", 1000),
            ("molmo", '<point x="{x}" y="{y}" alt="a">a</point>', 100),
            ("showui", "[{x}, {y}]", 1),
            ("robopoint", "[({x}, {y})]", 1),
            ("ui_tars", "<point>{x} {y}</point>", SIZE[0]),
            ("qwen2_5_vl", '{{"point_2d": [{x}, {y}]}}', SIZE[0]),
        ]
    ),
    st.floats(1.0001, 50, allow_nan=False),
    st.booleans(),
)
def test_out_of_range_is_dropped_with_an_error(case: tuple[str, str, float], factor: float, negative: bool) -> None:
    fmt, template, scale = case
    bad = -factor if negative else scale * factor
    assume(f"{bad:.3f}" not in (f"{scale:.3f}", "-0.000", "0.000"))
    r = parse_response(template.format(x=f"{bad:.3f}", y="0"), fmt, resized_size=SIZE)
    assert r.points == [] and len(r.errors) == 1 and "outside" in r.errors[0], r


def test_pathological_inputs() -> None:
    for text in [
        "[" * 5000,
        "{" * 5000,
        "<tool_call>" + "[" * 5000 + "</tool_call>",
        '{"point_2d": ' + "[" * 3000,
        "(" * 10000,
        "<|box_start|>" * 2000,
        "9" * 20000,
        "click(" * 2000,
        "Action: " + "click(" * 500,
    ]:
        parse_all_ways(text)


@pytest.mark.parametrize("fmt", POINT_FMTS)
def test_precision_table_covers_every_fixed_scale_format(fmt: CoordFormat) -> None:
    assert fmt.needs_resized_size or fmt in PRECISION


# --- tool-call round trips (training targets) ------------------------------------------------------

pt = st.builds(lambda x, y: {"x": x, "y": y}, unit, unit)
word = st.text(string.ascii_letters + string.digits + "-_+[]/.,;=`", min_size=1, max_size=8)  # key names
tool_calls = st.one_of(
    st.builds(
        lambda n, p: ToolCall(n, {"point": p}), st.sampled_from(["click", "double_click", "right_click", "move"]), pt
    ),
    st.builds(lambda s, e: ToolCall("drag", {"start": s, "end": e}), pt, pt),
    st.builds(lambda t: ToolCall("type", {"text": t}), st.text(max_size=40)),
    st.builds(lambda k: ToolCall("key", {"keys": k}), st.lists(word, min_size=1, max_size=3)),
    st.builds(
        lambda p, d, a: ToolCall("scroll", {"point": p, "direction": d, "amount": a}),
        pt,
        st.sampled_from(["up", "down", "left", "right"]),
        st.integers(1, 50),
    ),
    st.builds(lambda s: ToolCall("wait", {"seconds": s}), st.sampled_from([0.5, 1.0, 2.0, 5.0])),
    st.builds(lambda t: ToolCall("finished", {"answer": t}), st.text(min_size=1, max_size=40)),
    st.just(ToolCall("finished", {})),
    st.builds(lambda p, o: ToolCall("pick", {"object": o, "point": p}), pt, st.text(max_size=10)),
    st.builds(lambda s, e: ToolCall("push", {"point_from": s, "point_to": e}), pt, pt),
    st.just(ToolCall("home", {})),
)


def assert_same(got: Any, want: Any, tol: float) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), (got, want)
        for k in want:
            assert_same(got[k], want[k], tol)
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (got, want)
        for g, w in zip(got, want, strict=True):
            assert_same(g, w, tol)
    elif isinstance(want, float):
        assert abs(float(got) - want) <= tol, (got, want)
    else:
        assert got == want, (got, want)


@SETTINGS
@given(tool_calls, st.sampled_from(POINT_FMTS), sizes, st.sampled_from(["", "Thought: acting now.\nAction: "]))
def test_tool_call_round_trip(call: ToolCall, fmt: CoordFormat, size: tuple[int, int], prefix: str) -> None:
    text = format_tool_call(call, fmt, resized_size=size)
    r = parse_response(prefix + text, fmt, resized_size=size)
    assert r.errors == [] and len(r.tool_calls) == 1, (text, r)
    assert r.tool_calls[0].name == call.name, text
    assert_same(r.tool_calls[0].arguments, call.arguments, tolerance(fmt, size))
    assert r.text == prefix.split("\n")[0].strip()
