"""The canonical data types that flow through agentkit.

Every source produces :class:`Frame`; every policy answers with :class:`Decision`. Coordinates are
always :class:`Point` / :class:`Box` in normalized ``[0, 1]`` floats of the frame the policy saw, origin
top-left. Model-specific formats (0-1000 boxes, resized-image pixels, percent points) are converted at
the policy boundary and nowhere else, so the executor never has to guess which convention it holds.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _check_unit(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0.0 or value > 1.0:
        raise ValueError(f"{name} must be a normalized coordinate in [0, 1], got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Point:
    """A point in normalized image coordinates (``0 <= x, y <= 1``, origin top-left)."""

    x: float
    y: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", _check_unit("Point.x", self.x))
        object.__setattr__(self, "y", _check_unit("Point.y", self.y))

    def to_pixels(self, width: int, height: int) -> tuple[int, int]:
        """Pixel column/row of this point in an image of ``width`` x ``height`` (clamped inside)."""
        return (min(int(self.x * width), width - 1), min(int(self.y * height), height - 1))

    @classmethod
    def from_pixels(cls, px: float, py: float, width: int, height: int) -> Point:
        """The normalized point of pixel ``(px, py)``; raises ``ValueError`` if it is off the image."""
        return cls(px / width, py / height)

    def to_dict(self) -> dict[str, float]:
        return {"x": round(self.x, 6), "y": round(self.y, 6)}


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in normalized image coordinates, ``x1 <= x2`` and ``y1 <= y2``."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str | None = None
    score: float | None = None

    def __post_init__(self) -> None:
        for name in ("x1", "y1", "x2", "y2"):
            object.__setattr__(self, name, _check_unit(f"Box.{name}", getattr(self, name)))
        if self.x1 > self.x2 or self.y1 > self.y2:
            raise ValueError(f"Box corners out of order: ({self.x1}, {self.y1}) > ({self.x2}, {self.y2})")

    @property
    def center(self) -> Point:
        return Point((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    @property
    def area(self) -> float:
        return (self.x2 - self.x1) * (self.y2 - self.y1)

    def to_pixels(self, width: int, height: int) -> tuple[int, int, int, int]:
        return (
            int(round(self.x1 * width)),
            int(round(self.y1 * height)),
            int(round(self.x2 * width)),
            int(round(self.y2 * height)),
        )

    @classmethod
    def from_pixels(
        cls,
        x1: float,
        y1: float,
        x2: float,
        y2: float,
        width: int,
        height: int,
        label: str | None = None,
        score: float | None = None,
    ) -> Box:
        """Normalize a pixel box, clamping it to the image (detectors overshoot by a pixel or two)."""

        def clamp(v: float, hi: int) -> float:
            return min(max(v / hi, 0.0), 1.0)

        return cls(clamp(x1, width), clamp(y1, height), clamp(x2, width), clamp(y2, height), label, score)

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x2, other.x2) - max(self.x1, other.x1))
        iy = max(0.0, min(self.y2, other.y2) - max(self.y1, other.y1))
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: round(getattr(self, k), 6) for k in ("x1", "y1", "x2", "y2")}
        if self.label is not None:
            d["label"] = self.label
        if self.score is not None:
            d["score"] = round(self.score, 4)
        return d


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A request to run a named tool. Arguments are validated against the tool's schema before it runs."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "arguments": _jsonable(self.arguments)}
        if self.id is not None:
            d["id"] = self.id
        return d


def _jsonable(value: Any) -> Any:
    if isinstance(value, (Point, Box)):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class DecisionKind(str, enum.Enum):
    """What the policy chose for a frame (the Streamo protocol)."""

    SILENCE = "silence"  # nothing relevant
    STANDBY = "standby"  # something relevant has started: wait for it to complete
    RESPONSE = "response"  # answer now


@dataclass(frozen=True, slots=True)
class ActorStatus:
    """What the acting side (a robot, a browser page) reports with each frame, so a policy knows whether
    its last plan is still running: ``episode`` (a new number re-arms a policy), ``busy`` (an action is
    running), ``actions`` (tool calls finished so far), ``steps`` (control steps of the episode)."""

    episode: int = 0
    busy: bool = False
    actions: int = 0
    steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"episode": self.episode, "busy": self.busy, "actions": self.actions, "steps": self.steps}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActorStatus:
        """Build from a dict (a wire header); ``ValueError`` for missing or ill-typed fields."""
        try:
            return cls(int(d["episode"]), bool(d["busy"]), int(d["actions"]), int(d["steps"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"bad actor status {d!r}: {e}") from None


@dataclass(slots=True)
class Frame:
    """One RGB image from a source, decoded and colour-converted once at the source.

    ``t`` is the capture time on the monotonic clock (``time.monotonic()``), used for latency;
    ``pts`` is the time in the stream (seconds since the stream started), used for subtitles and labels.
    ``status`` is the actor's report (robots, pages); ``privileged`` holds what only a privileged policy
    may read (a page's DOM, a simulator's scene state) and is filled only for such policies.
    """

    image: np.ndarray
    t: float
    pts: float
    seq: int
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    status: ActorStatus | None = None
    privileged: Any = None

    def __post_init__(self) -> None:
        img = self.image
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"Frame.image must be HxWx3 uint8 RGB, got shape {img.shape} dtype {img.dtype}")

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    def __repr__(self) -> str:  # never dump pixels into a log
        return f"Frame(seq={self.seq}, pts={self.pts:.3f}, {self.width}x{self.height}, source={self.source!r})"


@dataclass(slots=True)
class Decision:
    """A policy's answer to one frame.

    ``points``/``boxes`` are normalized to the frame the policy saw. ``errors`` holds anything the policy
    could not parse or validate (recorded, never raised). Timings are filled by the policy and the loop.
    """

    kind: DecisionKind
    seq: int = -1
    pts: float = 0.0
    text: str | None = None
    points: list[Point] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    model_ms: float | None = None
    latency_ms: float | None = None  # capture -> decided
    gated: bool = False  # decided by the cheap gate, the model never saw the frame
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def silence(cls, **kw: Any) -> Decision:
        return cls(DecisionKind.SILENCE, **kw)

    @classmethod
    def standby(cls, **kw: Any) -> Decision:
        return cls(DecisionKind.STANDBY, **kw)

    @classmethod
    def response(cls, text: str | None = None, **kw: Any) -> Decision:
        return cls(DecisionKind.RESPONSE, text=text, **kw)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "seq": self.seq,
            "pts": round(self.pts, 4),
            "kind": self.kind.value,
            "text": self.text,
        }
        if self.points:
            d["points"] = [p.to_dict() for p in self.points]
        if self.boxes:
            d["boxes"] = [b.to_dict() for b in self.boxes]
        if self.tool_calls:
            d["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.errors:
            d["errors"] = list(self.errors)
        if self.model_ms is not None:
            d["model_ms"] = round(self.model_ms, 3)
        if self.latency_ms is not None:
            d["latency_ms"] = round(self.latency_ms, 3)
        if self.gated:
            d["gated"] = True
        if self.meta:
            d["meta"] = _jsonable(self.meta)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Decision:
        return cls(
            kind=DecisionKind(d["kind"]),
            seq=int(d.get("seq", -1)),
            pts=float(d.get("pts", 0.0)),
            text=d.get("text"),
            points=[Point(p["x"], p["y"]) for p in d.get("points", [])],
            boxes=[Box(**b) for b in d.get("boxes", [])],
            tool_calls=[ToolCall(c["name"], c.get("arguments", {}), c.get("id")) for c in d.get("tool_calls", [])],
            errors=list(d.get("errors", [])),
            model_ms=d.get("model_ms"),
            latency_ms=d.get("latency_ms"),
            gated=bool(d.get("gated", False)),
            meta=dict(d.get("meta", {})),
        )


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What running one tool call produced: success, an error string, and how long it took."""

    call: ToolCall
    ok: bool
    seq: int = -1
    output: Any = None
    error: str | None = None
    started: float = 0.0
    duration_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "call": self.call.to_dict(),
            "ok": self.ok,
            "output": _jsonable(self.output),
            "error": self.error,
            "duration_ms": round(self.duration_ms, 3),
        }
