"""Score narration against labelled events: did each arrival/departure get a timely Response?

A Response *hits* a labelled event when it has the event's type and its ``pts`` lies in
``[t - early, t + tolerance]`` (defaults 1 s before, 3 s after the moment the event completes). Each event
and each Response is matched at most once. Because every event has a window of the same length, matching
events in time order to the earliest unused fitting Response is a maximum matching (the classic greedy
argument for intervals), so the figures do not depend on tie-breaking.

* precision = matched Responses / all Responses (1.0 when there are no Responses: nothing wrong was said)
* recall = matched events / all events (1.0 when there are no events)
* delay = Response pts - event t over the matches (negative: answered slightly before the labelled moment)

The type of a Response comes from ``meta["event"]`` when present (``arrive``, ``leave``, ``change`` = both),
otherwise from its text ("arrived", "left", ...); a Response of no known type can never match.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.benchmarks.report import Report
from agentkit.errors import ConfigError

EventType = Literal["arrive", "leave"]
EVENT_TYPES: tuple[str, ...] = ("arrive", "leave")

_ARRIVE = re.compile(r"\b(arriv\w*|enter\w*|came in|comes in|walk\w* in|appear\w*)\b", re.IGNORECASE)
_LEAVE = re.compile(r"\b(left|leav\w*|exit\w*|went out|goes out|walk\w* out|disappear\w*|gone)\b", re.IGNORECASE)


class LabelEvent(BaseModel):
    """One labelled event: its type and the stream time at which it is complete."""

    model_config = ConfigDict(extra="forbid")

    t: float = Field(ge=0)
    type: EventType
    note: str = ""


class Labels(BaseModel):
    """A label file: ``{"video": ..., "credit": ..., "events": [{"t": ..., "type": ..., "note": ...}]}``."""

    model_config = ConfigDict(extra="allow")

    video: str
    credit: str = ""
    events: list[LabelEvent]


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """A Response decision reduced to what matching needs."""

    pts: float
    types: frozenset[str]
    text: str = ""


@dataclass(frozen=True, slots=True)
class Match:
    event_index: int
    response_index: int
    delay: float


@dataclass
class MatchResult:
    """The outcome of :func:`match_events`."""

    events: list[LabelEvent]
    responses: list[ResponseRecord]
    matches: list[Match] = field(default_factory=list)
    tolerance: float = 3.0
    early: float = 1.0

    @property
    def precision(self) -> float:
        return len(self.matches) / len(self.responses) if self.responses else 1.0

    @property
    def recall(self) -> float:
        return len(self.matches) / len(self.events) if self.events else 1.0

    @property
    def delays(self) -> list[float]:
        return [m.delay for m in self.matches]

    @property
    def mean_delay(self) -> float | None:
        return statistics.fmean(self.delays) if self.matches else None

    @property
    def max_delay(self) -> float | None:
        return max(self.delays) if self.matches else None

    def matched_response(self, event_index: int) -> Match | None:
        return next((m for m in self.matches if m.event_index == event_index), None)

    @property
    def unmatched_responses(self) -> list[ResponseRecord]:
        used = {m.response_index for m in self.matches}
        return [r for i, r in enumerate(self.responses) if i not in used]

    def report(self, config: dict[str, Any] | None = None) -> Report:
        """The project's report: precision/recall/delay as ``overall``, one row per labelled event."""
        d = self.to_dict()
        rows = d.pop("per_event")
        return Report(benchmark="narration", overall=d, rows=rows, config=dict(config or {}))

    def to_dict(self) -> dict[str, Any]:
        def rnd(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        per_event = []
        for i, e in enumerate(self.events):
            m = self.matched_response(i)
            per_event.append(
                {
                    "t": e.t,
                    "type": e.type,
                    "response_pts": None if m is None else self.responses[m.response_index].pts,
                    "delay_s": None if m is None else round(m.delay, 3),
                }
            )
        return {
            "events": len(self.events),
            "responses": len(self.responses),
            "matched": len(self.matches),
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "mean_delay_s": rnd(self.mean_delay),
            "max_delay_s": rnd(self.max_delay),
            "tolerance_s": self.tolerance,
            "early_s": self.early,
            "per_event": per_event,
            "unmatched_responses": [{"pts": r.pts, "text": r.text} for r in self.unmatched_responses],
        }


def event_types(decision: dict[str, Any]) -> frozenset[str]:
    """The event types a Response claims: from ``meta["event"]`` if set, else parsed from its text."""
    meta = decision.get("meta") or {}
    ev = meta.get("event") if isinstance(meta, dict) else None
    if isinstance(ev, str):
        if ev in EVENT_TYPES:
            return frozenset({ev})
        if ev == "change":
            return frozenset(EVENT_TYPES)
        return frozenset()  # another kind of event (motion_start, ...): never an arrival or departure
    text = decision.get("text") or ""
    found = set()
    if _ARRIVE.search(text):
        found.add("arrive")
    if _LEAVE.search(text):
        found.add("leave")
    return frozenset(found)


def match_events(
    events: list[LabelEvent], responses: list[ResponseRecord], tolerance: float = 3.0, early: float = 1.0
) -> MatchResult:
    """Match Responses to events (see the module docstring for the rule)."""
    if tolerance < 0 or early < 0:
        raise ConfigError(f"tolerance and early must be >= 0, got tolerance={tolerance}, early={early}")
    order_e = sorted(range(len(events)), key=lambda i: events[i].t)
    order_r = sorted(range(len(responses)), key=lambda i: responses[i].pts)
    used: set[int] = set()
    result = MatchResult(list(events), list(responses), tolerance=tolerance, early=early)
    for ei in order_e:
        ev = events[ei]
        for ri in order_r:
            r = responses[ri]
            if ri in used or ev.type not in r.types:
                continue
            if r.pts < ev.t - early - 1e-9:
                continue
            if r.pts > ev.t + tolerance + 1e-9:
                break
            used.add(ri)
            result.matches.append(Match(ei, ri, r.pts - ev.t))
            break
    result.matches.sort(key=lambda m: m.event_index)
    return result


def load_labels(path: str | Path) -> Labels:
    """Read and validate a label file; raises ``ConfigError`` with the file and the problem."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"label file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"label file {path} is not JSON: {e}") from None
    try:
        return Labels.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        raise ConfigError(f"label file {path}: {loc}={err.get('input')!r}: {err.get('msg')}") from None


def load_responses(path: str | Path) -> list[ResponseRecord]:
    """Response decisions of a ``decisions.jsonl`` (one JSON object per processed frame).

    Raises:
        ConfigError: the file is missing, a line is not a JSON object, or lacks ``pts``/``kind``.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"decisions file not found: {path}")
    out: list[ResponseRecord] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{n}: not JSON ({e.msg})") from None
            if not isinstance(d, dict) or "pts" not in d or "kind" not in d:
                raise ConfigError(f"{path}:{n}: a decision needs 'pts' and 'kind'")
            if d["kind"] != "response":
                continue
            try:
                pts = float(d["pts"])
            except (TypeError, ValueError):
                raise ConfigError(f"{path}:{n}: pts={d['pts']!r} is not a number") from None
            out.append(ResponseRecord(pts, event_types(d), str(d.get("text") or "")))
    return out


def evaluate_files(
    decisions: str | Path, labels: str | Path, tolerance: float = 3.0, early: float = 1.0
) -> MatchResult:
    """:func:`match_events` on a ``decisions.jsonl`` and a label file."""
    return match_events(load_labels(labels).events, load_responses(decisions), tolerance, early)
