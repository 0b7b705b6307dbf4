"""The inverse of parsing: write a normalized point or box in a model's own markup.

Used to build training targets from recorded episodes (the target text must use the convention the
model will answer in) and to test that parsing round-trips. Precision follows each model's habit:
integers for 0-1000 and pixels, one decimal for Molmo percent, two for ShowUI, three for RoboPoint.
"""

from __future__ import annotations

import json

from agentkit.parsing.actions import UITARS_ACTIONS
from agentkit.parsing.formats import CoordFormat, check_resized_size
from agentkit.types import Box, Point, ToolCall

# Half a unit of the last written digit, in normalized units (pixels depend on the size): the
# worst-case round-trip error of format -> parse.
PRECISION: dict[CoordFormat, float] = {
    CoordFormat.QWEN2_VL: 0.5 / 1000,
    CoordFormat.UI_TARS_V1: 0.5 / 1000,
    CoordFormat.MOLMO: 0.05 / 100,
    CoordFormat.SHOWUI: 0.005,
    CoordFormat.ROBOPOINT: 0.0005,
    CoordFormat.NORMALIZED: 0.00005,
}


def _size(fmt: CoordFormat, resized_size: tuple[int, int] | None) -> tuple[int, int]:
    size = check_resized_size(resized_size)
    if size is None:
        raise ValueError(f"fmt {fmt.value!r} writes pixels of the resized image: pass resized_size=(width, height)")
    return size


def _clean_label(label: str) -> str:
    return " ".join(label.replace('"', "'").replace("<", " ").replace(">", " ").split())


def format_point(
    point: Point, fmt: CoordFormat | str, resized_size: tuple[int, int] | None = None, label: str | None = None
) -> str:
    """``point`` written the way a model of format ``fmt`` writes a point.

    Example:
        >>> format_point(Point(0.5, 0.25), "qwen2_vl")
        '<|box_start|>(500,250)<|box_end|>'
        >>> format_point(Point(0.5, 0.25), "molmo", label="cup")
        '<point x="50.0" y="25.0" alt="cup">cup</point>'
        >>> format_point(Point(0.5, 0.25), "ui_tars", resized_size=(1316, 728))
        '<point>658 182</point>'

    Raises:
        ValueError: ``fmt`` is ``"auto"`` or unknown, or a pixel fmt lacks ``resized_size``.
    """
    f = CoordFormat.coerce(fmt)
    if f in (CoordFormat.QWEN2_VL, CoordFormat.UI_TARS_V1):
        return f"<|box_start|>({round(point.x * 1000)},{round(point.y * 1000)})<|box_end|>"
    if f is CoordFormat.QWEN2_5_VL:
        w, h = _size(f, resized_size)
        d: dict[str, object] = {"point_2d": [round(point.x * w), round(point.y * h)]}
        if label:
            d["label"] = label
        return json.dumps(d)
    if f is CoordFormat.UI_TARS:
        w, h = _size(f, resized_size)
        return f"<point>{round(point.x * w)} {round(point.y * h)}</point>"
    if f is CoordFormat.MOLMO:
        alt = _clean_label(label) if label else ""
        attrs = f'x="{point.x * 100:.1f}" y="{point.y * 100:.1f}"' + (f' alt="{alt}"' if alt else "")
        return f"<point {attrs}>{alt}</point>"
    if f is CoordFormat.SHOWUI:
        return f"[{point.x:.2f}, {point.y:.2f}]"
    if f is CoordFormat.ROBOPOINT:
        return f"[({point.x:.3f}, {point.y:.3f})]"
    if f is CoordFormat.NORMALIZED:
        return f"[{point.x:.4f}, {point.y:.4f}]"
    raise ValueError("format_point needs a concrete fmt, not 'auto'")


def format_box(box: Box, fmt: CoordFormat | str, resized_size: tuple[int, int] | None = None) -> str:
    """``box`` written the way a model of format ``fmt`` writes a box (with its label where the format has one).

    Example:
        >>> format_box(Box(0.1, 0.2, 0.3, 0.4, label="cat"), "qwen2_vl")
        '<|object_ref_start|>cat<|object_ref_end|><|box_start|>(100,200),(300,400)<|box_end|>'

    Raises:
        ValueError: the format has no box markup (Molmo, RoboPoint), ``fmt`` is ``"auto"``, or a pixel fmt
            lacks ``resized_size``.
    """
    f = CoordFormat.coerce(fmt)
    if f in (CoordFormat.QWEN2_VL, CoordFormat.UI_TARS_V1):
        x1, y1, x2, y2 = (round(v * 1000) for v in (box.x1, box.y1, box.x2, box.y2))
        ref = f"<|object_ref_start|>{_clean_label(box.label)}<|object_ref_end|>" if box.label else ""
        return f"{ref}<|box_start|>({x1},{y1}),({x2},{y2})<|box_end|>"
    if f in (CoordFormat.QWEN2_5_VL, CoordFormat.UI_TARS):
        w, h = _size(f, resized_size)
        px = [round(box.x1 * w), round(box.y1 * h), round(box.x2 * w), round(box.y2 * h)]
        if f is CoordFormat.UI_TARS:
            return "<bbox>" + " ".join(str(v) for v in px) + "</bbox>"
        d: dict[str, object] = {"bbox_2d": px}
        if box.label:
            d["label"] = box.label
        return json.dumps(d)
    if f is CoordFormat.SHOWUI:
        return f"[{box.x1:.2f}, {box.y1:.2f}, {box.x2:.2f}, {box.y2:.2f}]"
    if f is CoordFormat.NORMALIZED:
        return f"[{box.x1:.4f}, {box.y1:.4f}, {box.x2:.4f}, {box.y2:.4f}]"
    if f is CoordFormat.AUTO:
        raise ValueError("format_box needs a concrete fmt, not 'auto'")
    raise ValueError(f"{f.value} has no box markup (it only points)")


# --- tool calls ------------------------------------------------------------------------------------

_UITARS_NAMES = {"double_click": "left_double", "right_click": "right_single", "move": "mouse_move", "key": "hotkey"}


def _uitars_name(name: str) -> str:
    return _UITARS_NAMES.get(name, name)


def _scale(f: CoordFormat, resized_size: tuple[int, int] | None) -> tuple[float, float, int | None]:
    """Multipliers from normalized to ``f``'s raw numbers, and the decimals to write (None: integers)."""
    if f in (CoordFormat.QWEN2_VL, CoordFormat.UI_TARS_V1):
        return 1000.0, 1000.0, None
    if f.needs_resized_size:
        w, h = _size(f, resized_size)
        return float(w), float(h), None
    if f is CoordFormat.MOLMO:
        return 100.0, 100.0, 1
    if f is CoordFormat.SHOWUI:
        return 1.0, 1.0, 2
    if f is CoordFormat.ROBOPOINT:
        return 1.0, 1.0, 3
    if f is CoordFormat.NORMALIZED:
        return 1.0, 1.0, 4
    raise ValueError("format_tool_call needs a concrete fmt, not 'auto'")


def _raw(v: float, s: float, decimals: int | None) -> float | int:
    return round(v * s) if decimals is None else round(v * s, decimals)


def _is_point(v: object) -> bool:
    return isinstance(v, Point) or (isinstance(v, dict) and set(v) == {"x", "y"})


def _is_box(v: object) -> bool:
    return isinstance(v, Box) or (isinstance(v, dict) and {"x1", "y1", "x2", "y2"} <= set(v))


def _xy(v: Point | dict) -> tuple[float, float]:
    return (v.x, v.y) if isinstance(v, Point) else (float(v["x"]), float(v["y"]))


def _args_in_space(value: object, sx: float, sy: float, decimals: int | None) -> object:
    """Normalized point/box dicts inside arguments -> raw lists in the target space."""
    if _is_point(value):
        x, y = _xy(value)  # type: ignore[arg-type]
        return [_raw(x, sx, decimals), _raw(y, sy, decimals)]
    if isinstance(value, Box):
        value = value.to_dict()
    if isinstance(value, dict) and _is_box(value):
        x1, y1, x2, y2 = (float(value[k]) for k in ("x1", "y1", "x2", "y2"))
        return [_raw(x1, sx, decimals), _raw(y1, sy, decimals), _raw(x2, sx, decimals), _raw(y2, sy, decimals)]
    if isinstance(value, dict):
        return {k: _args_in_space(v, sx, sy, decimals) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_args_in_space(v, sx, sy, decimals) for v in value]
    return value


def _tool_call_json(name: str, arguments: dict) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "\n</tool_call>"


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _uitars_action(call: ToolCall, f: CoordFormat, resized_size: tuple[int, int] | None) -> str:
    sx, sy, _ = _scale(f, resized_size)

    def pt(v: Point | dict) -> str:
        x, y = _xy(v)
        if f is CoordFormat.UI_TARS_V1:
            return f"'<|box_start|>({round(x * sx)},{round(y * sy)})<|box_end|>'"
        return f"'<point>{round(x * sx)} {round(y * sy)}</point>'"

    key = "start_box" if f is CoordFormat.UI_TARS_V1 else "point"
    a = call.arguments
    name = _uitars_name(call.name)
    if call.name == "click" and a.get("button") in ("right", "middle"):
        name, a = ("right_single" if a["button"] == "right" else "middle_click"), {"point": a["point"]}
    parts: list[str] = []
    if call.name == "drag":
        s_key, e_key = ("start_box", "end_box") if f is CoordFormat.UI_TARS_V1 else ("start_point", "end_point")
        parts = [f"{s_key}={pt(a['start'])}", f"{e_key}={pt(a['end'])}"]
    elif call.name == "key":
        parts = [f"key={_quote(' '.join(a.get('keys', [])))}"]
    elif call.name == "type":
        parts = [f"content={_quote(str(a.get('text', '')))}"]
    elif call.name == "finished":
        parts = [f"content={_quote(str(a['answer']))}"] if a.get("answer") else []
    elif call.name == "wait":
        parts = [f"seconds={a['seconds']!r}"] if "seconds" in a else []
    else:
        for k, v in a.items():
            if k == "point" and _is_point(v):
                parts.append(f"{key}={pt(v)}")
            elif k == "end" and _is_point(v):
                parts.append(f"{'end_box' if f is CoordFormat.UI_TARS_V1 else 'end_point'}={pt(v)}")
            elif k == "amount":
                parts.append(f"steps='{int(v)}'")
            else:
                parts.append(f"{k}={_quote(str(v))}")
    return f"{name}({', '.join(parts)})"


def _computer_use(call: ToolCall, resized_size: tuple[int, int] | None) -> str | None:
    sx, sy, _ = _scale(CoordFormat.QWEN2_5_VL, resized_size)
    a = call.arguments

    def px(v: Point | dict) -> list[int]:
        x, y = _xy(v)
        return [round(x * sx), round(y * sy)]

    cu = {"click": "left_click", "right_click": "right_click", "double_click": "double_click", "move": "mouse_move"}
    if call.name in cu:
        action = cu[call.name]
        if call.name == "click" and a.get("button") in ("right", "middle"):
            action = f"{a['button']}_click"
        args: dict[str, object] = {"action": action}
        if "point" in a:
            args["coordinate"] = px(a["point"])
        return _tool_call_json("computer_use", args)
    if call.name == "drag":
        args = {"action": "left_click_drag", "coordinate": px(a["end"])}
        if a.get("start") is not None:
            args["start_coordinate"] = px(a["start"])  # beyond Qwen's schema: the drag start, when known
        return _tool_call_json("computer_use", args)
    if call.name == "type":
        return _tool_call_json("computer_use", {"action": "type", "text": str(a.get("text", ""))})
    if call.name == "key":
        return _tool_call_json("computer_use", {"action": "key", "keys": list(a.get("keys", []))})
    if call.name == "scroll" and a.get("direction") in ("up", "down", "left", "right"):
        amount = abs(round(float(a.get("amount", 1))))
        sign = 1 if a["direction"] in ("up", "right") else -1
        args = {"action": "scroll" if a["direction"] in ("up", "down") else "hscroll", "pixels": sign * amount}
        if "point" in a:
            args["coordinate"] = px(a["point"])
        return _tool_call_json("computer_use", args)
    if call.name == "wait":
        return _tool_call_json("computer_use", {"action": "wait", **({"time": a["seconds"]} if "seconds" in a else {})})
    if call.name == "finished":
        if a.get("answer"):
            return _tool_call_json("computer_use", {"action": "answer", "text": str(a["answer"])})
        return _tool_call_json("computer_use", {"action": "terminate", "status": "success"})
    return None


def format_tool_call(call: ToolCall, fmt: CoordFormat | str, resized_size: tuple[int, int] | None = None) -> str:
    """``call`` (agentkit vocabulary, normalized points) written as a model of format ``fmt`` would write it.

    - ``ui_tars`` / ``ui_tars_v1``: a UI-TARS action, e.g. ``click(point='<point>658 364</point>')``;
      names UI-TARS has no action for (``pick`` ...) as generic ``<tool_call>`` JSON in the same space.
    - ``qwen2_5_vl``: GUI calls as Qwen ``computer_use`` tool calls in resized pixels (a ``drag`` with a
      known start adds ``start_coordinate``, which Qwen's own schema lacks); other calls as generic
      ``<tool_call>`` JSON with pixel points.
    - other formats: generic ``<tool_call>`` JSON with points as ``[x, y]`` in the format's space.

    :func:`parse_response` with the same ``fmt`` reads the text back to ``call`` (within rounding).

    Example:
        >>> format_tool_call(ToolCall("click", {"point": {"x": 0.5, "y": 0.5}}), "ui_tars", (1316, 728))
        "click(point='<point>658 364</point>')"
        >>> format_tool_call(ToolCall("pick", {"point": {"x": 0.25, "y": 0.5}}), "qwen2_vl")
        '<tool_call>\\n{"name": "pick", "arguments": {"point": [250, 500]}}\\n</tool_call>'

    Raises:
        ValueError: ``fmt`` is ``"auto"`` or unknown, or a pixel fmt lacks ``resized_size``.
    """
    f = CoordFormat.coerce(fmt)
    sx, sy, decimals = _scale(f, resized_size)
    if f in (CoordFormat.UI_TARS, CoordFormat.UI_TARS_V1) and _uitars_name(call.name) in UITARS_ACTIONS:
        return _uitars_action(call, f, resized_size)
    if f is CoordFormat.QWEN2_5_VL:
        text = _computer_use(call, resized_size)
        if text is not None:
            return text
    return _tool_call_json(call.name, _args_in_space(call.arguments, sx, sy, decimals))  # type: ignore[arg-type]
