"""Coordinate formats models emit, and the one conversion from each to normalized :class:`Point` / :class:`Box`.

Mixing up coordinate conventions is the most common GUI-agent bug: the same ``(500, 300)`` is a 0-1000
grid cell for Qwen2-VL, a pixel of the *resized* image for Qwen2.5-VL and UI-TARS-1.5, and nonsense for
Molmo (percent). This module names each convention once (:class:`CoordFormat`), maps it to a
:class:`Space` (what to divide by), and converts raw numbers with a range check. An out-of-range value is
never clamped: the caller gets an error string to record, so a wrong convention shows up in the logs
instead of as a click in a corner of the screen.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

from agentkit.types import Box, Point


class CoordFormat(str, enum.Enum):
    """Which coordinate convention a model's text uses.

    ``AUTO`` detects the convention from the markup (each markup has a native one); the others force
    one convention for every coordinate found in the text, whatever markup carries it.
    """

    AUTO = "auto"
    QWEN2_VL = "qwen2_vl"  # 0-1000 grid (Qwen2-VL, OS-Atlas, Qwen3-VL)
    QWEN2_5_VL = "qwen2_5_vl"  # absolute pixels of the smart_resize'd image
    UI_TARS = "ui_tars"  # UI-TARS-1.5: pixels of the resized image
    UI_TARS_V1 = "ui_tars_v1"  # UI-TARS v1 (Qwen2-VL based): 0-1000 grid
    MOLMO = "molmo"  # 0-100 percent
    SHOWUI = "showui"  # 0-1
    ROBOPOINT = "robopoint"  # 0-1
    NORMALIZED = "normalized"  # 0-1

    @classmethod
    def coerce(cls, fmt: CoordFormat | str) -> CoordFormat:
        """``fmt`` as a :class:`CoordFormat`; raises ``ValueError`` naming the allowed values."""
        if isinstance(fmt, CoordFormat):
            return fmt
        try:
            return cls(str(fmt).strip().lower().replace("-", "_").replace(".", "_"))
        except ValueError:
            allowed = ", ".join(repr(f.value) for f in cls)
            raise ValueError(f"fmt must be one of {allowed}, got {fmt!r}") from None

    @property
    def needs_resized_size(self) -> bool:
        return self in (CoordFormat.QWEN2_5_VL, CoordFormat.UI_TARS)


@dataclass(frozen=True, slots=True)
class Space:
    """A coordinate space: raw ``x`` lies in ``[0, sx]`` and raw ``y`` in ``[0, sy]``."""

    sx: float
    sy: float
    label: str  # how errors name the range, e.g. "0-1000 range"

    def to_unit(self, x: float, y: float) -> tuple[float, float]:
        return x / self.sx, y / self.sy


_GRID = Space(1000.0, 1000.0, "0-1000 range")
_PERCENT = Space(100.0, 100.0, "0-100 percent range")
_UNIT = Space(1.0, 1.0, "0-1 range")


def check_resized_size(resized_size: object) -> tuple[int, int] | None:
    """Validate ``resized_size`` = ``(width, height)`` of the image the model saw; ``None`` passes."""
    if resized_size is None:
        return None
    bad = ValueError(f"resized_size must be (width, height) in positive whole pixels, got {resized_size!r}")
    if not isinstance(resized_size, (tuple, list)) or len(resized_size) != 2:
        raise bad
    sides: list[int] = []
    for v in resized_size:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):  # numpy ints welcome
            raise bad
        f = float(v)
        if not (math.isfinite(f) and f > 0 and f.is_integer()):
            raise bad
        sides.append(int(f))
    return sides[0], sides[1]


def space_of(fmt: CoordFormat, resized_size: tuple[int, int] | None) -> Space | str:
    """The :class:`Space` of a concrete (non-auto) format, or an error string if it cannot be known."""
    if fmt in (CoordFormat.QWEN2_VL, CoordFormat.UI_TARS_V1):
        return _GRID
    if fmt is CoordFormat.MOLMO:
        return _PERCENT
    if fmt in (CoordFormat.SHOWUI, CoordFormat.ROBOPOINT, CoordFormat.NORMALIZED):
        return _UNIT
    if fmt.needs_resized_size:
        if resized_size is None:
            return f"{fmt.value} coordinates are pixels of the resized image; pass resized_size to convert them"
        w, h = resized_size
        return Space(float(w), float(h), f"{w}x{h} resized image")
    raise ValueError(f"no coordinate space for {fmt!r}")


def as_number(v: object) -> float | None:
    """A finite float from a number or a numeric string; ``None`` for anything else (bools included)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    return f if math.isfinite(f) else None


def _fmt_raw(values: Sequence[object]) -> str:
    out = []
    for v in values:
        s = v.strip() if isinstance(v, str) else repr(v)
        out.append(s if len(s) <= 24 else s[:21] + "...")
    return "(" + ", ".join(out) + ")"


def to_point(raw: Sequence[object], space: Space) -> Point | str:
    """Convert raw ``(x, y)`` in ``space`` to a :class:`Point`, or return the error to record."""
    if len(raw) != 2:
        return f"point {_fmt_raw(raw)} needs 2 numbers, got {len(raw)}"
    x, y = (as_number(v) for v in raw)
    if x is None or y is None:
        return f"point {_fmt_raw(raw)} is not numeric"
    if not (0.0 <= x <= space.sx and 0.0 <= y <= space.sy):
        return f"point {_fmt_raw(raw)} outside {space.label}"
    ux, uy = space.to_unit(x, y)
    return Point(min(ux, 1.0), min(uy, 1.0))


def to_box(raw: Sequence[object], space: Space, label: str | None = None) -> Box | str:
    """Convert raw ``(x1, y1, x2, y2)`` in ``space`` to a :class:`Box` (corners reordered), or an error."""
    if len(raw) != 4:
        return f"box {_fmt_raw(raw)} needs 4 numbers, got {len(raw)}"
    nums = [as_number(v) for v in raw]
    if any(v is None for v in nums):
        return f"box {_fmt_raw(raw)} is not numeric"
    x1, y1, x2, y2 = (float(v) for v in nums)  # type: ignore[arg-type]
    if not all(0.0 <= v <= space.sx for v in (x1, x2)) or not all(0.0 <= v <= space.sy for v in (y1, y2)):
        return f"box {_fmt_raw(raw)} outside {space.label}"
    ax1, ay1 = space.to_unit(min(x1, x2), min(y1, y2))
    ax2, ay2 = space.to_unit(max(x1, x2), max(y1, y2))
    return Box(min(ax1, 1.0), min(ay1, 1.0), min(ax2, 1.0), min(ay2, 1.0), label=label)
