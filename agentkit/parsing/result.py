"""What parsing one model answer produces, and the small context every extractor shares.

:class:`ParseResult` is the policy-boundary form: free text plus normalized points, boxes and tool
calls, and the errors met on the way (recorded, never raised). :class:`_Context` carries the requested
format and the resized image size so that each extractor converts coordinates the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agentkit.parsing.formats import CoordFormat, Space, space_of, to_box, to_point
from agentkit.types import Box, Point, ToolCall


@dataclass(slots=True)
class ParseResult:
    """Model text split into its canonical parts.

    Attributes:
        text: the free text with the recognised markup stripped (a Molmo ``<point>`` keeps its inner
            text, a Qwen ``<|object_ref_start|>`` phrase stays, tool calls and coordinates go).
        points: grounding points (normalized), in the order found per format.
        boxes: grounding boxes (normalized, ``x1 <= x2``, ``y1 <= y2``), labelled where the model named them.
        tool_calls: actions in agentkit's vocabulary; point arguments are ``{"x": .., "y": ..}`` normalized.
        errors: one line per thing that could not be parsed or converted (and was dropped).
    """

    text: str = ""
    points: list[Point] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was dropped."""
        return not self.errors


MAX_ERRORS = 32


@dataclass(slots=True)
class _Context:
    """The requested format, the resized size and the result being filled."""

    fmt: CoordFormat
    resized_size: tuple[int, int] | None
    result: ParseResult

    def space(self, native: CoordFormat) -> Space | str:
        """The space for markup whose own convention is ``native`` (the explicit fmt wins over it)."""
        return space_of(native if self.fmt is CoordFormat.AUTO else self.fmt, self.resized_size)

    suppressed: int = 0

    def error(self, msg: str) -> None:
        """Record one error; past :data:`MAX_ERRORS` they are only counted (a garbage answer must not flood logs)."""
        if len(self.result.errors) < MAX_ERRORS:
            self.result.errors.append(msg)
        else:
            self.suppressed += 1

    def point(self, raw: Sequence[object], native: CoordFormat, where: str = "") -> Point | None:
        """Convert or record why not. ``where`` prefixes the error (e.g. ``"click: "``)."""
        space = self.space(native)
        if isinstance(space, str):
            if self.fmt is CoordFormat.AUTO and native is CoordFormat.UI_TARS:
                space += " (or fmt='ui_tars_v1' if the model answers in 0-1000)"
            self.error(f"{where}point {_raw(raw)} dropped: {space}")
            return None
        p = to_point(raw, space)
        if isinstance(p, str):
            self.error(where + p)
            return None
        return p

    def box(self, raw: Sequence[object], native: CoordFormat, label: str | None = None, where: str = "") -> Box | None:
        space = self.space(native)
        if isinstance(space, str):
            self.error(f"{where}box {_raw(raw)} dropped: {space}")
            return None
        b = to_box(raw, space, label)
        if isinstance(b, str):
            self.error(where + b)
            return None
        return b


def _raw(raw: Sequence[object]) -> str:
    return "(" + ", ".join(str(v).strip()[:24] for v in raw) + ")"
