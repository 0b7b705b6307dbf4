"""The inverse of parsing: write a normalized point or box in a model's own markup.

Used to build training targets from recorded episodes (the target text must use the convention the
model will answer in) and to test that parsing round-trips. Precision follows each model's habit:
integers for 0-1000 and pixels, one decimal for Molmo percent, two for ShowUI, three for RoboPoint.
"""

from __future__ import annotations

import json

from agentkit.policies.parsing.formats import CoordFormat, check_resized_size
from agentkit.types import Box, Point

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
