"""Score narration against labelled events: did each event get a timely Response?

Event types (label files and Responses): ``arrive`` (came in and stopped), ``enter`` (came in), ``leave``
(went out of view), ``stop`` (came to rest), ``start`` (started moving again), ``count`` (the number of things
in view changed otherwise: something put down or taken away, someone found in view who did not come in).

A Response *hits* a labelled event when one of its *slots* accepts the event's type and its ``pts`` lies in
``[t - early, t + tolerance]`` (defaults 1 s before, 3 s after the moment the event completes). A Response
has one slot per event it reports: ``"A person arrived and a person left"`` has two (``arrive``, ``leave``);
one narrated arrival has one slot that accepts ``arrive`` or ``enter`` (it did come in). Each event and each
slot is matched at most once, by a maximum bipartite matching (events in time order, each trying the earliest
fitting slot first, augmenting paths otherwise), so the figures do not depend on tie-breaking; with one
slot per Response and windows of one length this is the plain earliest-fit greedy matching.

* precision = Responses with a matched slot / all Responses (1.0 when there are no Responses)
* recall = matched events / all events (1.0 when there are no events)
* delay = Response pts - event t over the matches (negative: answered slightly before the labelled moment)

The slots of a Response come from ``meta["events"]`` (a list of event kinds, one per reported event; see
:data:`KIND_SLOTS`) when present, else from ``meta["event"]`` (``arrive``, ``leave``, ``change`` = both, or
any kind of :data:`KIND_SLOTS`), otherwise from its text ("arrived", "left", ...), so a VLM's free text can be
scored too; a Response of no known type can never match.
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

EventType = Literal["arrive", "leave", "enter", "stop", "start", "count"]
EVENT_TYPES: tuple[str, ...] = ("arrive", "leave", "enter", "stop", "start", "count")

KIND_SLOTS: dict[str, tuple[frozenset[str], ...]] = {
    # what each narrated kind of event can be scored as: one set of label types per slot
    "arrive": (frozenset({"arrive", "enter"}),),  # came in and stopped (a person arriving at the table)
    "enter": (frozenset({"enter"}),),  # came in, still moving
    "pass": (frozenset({"enter"}), frozenset({"leave"})),  # came in and left again
    "leave": (frozenset({"leave"}),),
    "stop": (frozenset({"stop"}),),
    "start": (frozenset({"start"}),),
    "move": (frozenset({"start"}), frozenset({"stop"})),  # started moving and stopped again
    "placed": (frozenset({"count"}),),  # something put down
    "removed": (frozenset({"count"}),),  # something taken away
    "present": (frozenset({"count"}),),  # someone found in view who did not come in
    "count": (frozenset({"count"}),),
    "change": (frozenset({"arrive"}), frozenset({"leave"})),  # legacy: arrivals and departures on one frame
}
"""Narrated event kinds (``meta["event"]``/``meta["events"]``) and the label types each one's slots accept."""

_START = re.compile(r"\b(start\w* (?:moving|to move)|began to move|set off)\b", re.IGNORECASE)
_STOP = re.compile(r"\b(stopp\w*|came to (?:a )?(?:halt|rest|stop)|halt\w*)\b", re.IGNORECASE)
_COUNT = re.compile(r"\b(put down|placed|taken away|picked up|removed|is in view|are in view)\b", re.IGNORECASE)
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


class EventTypes(frozenset[str]):
    """The types a Response claims (a frozenset), with the slots they come in (see the module docstring)."""

    slots: tuple[frozenset[str], ...]

    def __new__(cls, slots: tuple[frozenset[str], ...] = ()) -> EventTypes:
        obj = super().__new__(cls, frozenset().union(*slots) if slots else frozenset())
        obj.slots = tuple(slots)
        return obj


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """A Response decision reduced to what matching needs.

    ``types`` from :func:`event_types` carries its slots; a plain set means one slot per type (so a
    ``{"arrive", "leave"}`` Response may match one arrival and one departure, as before slots existed).
    """

    pts: float
    types: frozenset[str]
    text: str = ""

    @property
    def slots(self) -> tuple[frozenset[str], ...]:
        slots = getattr(self.types, "slots", None)
        if slots is not None:
            return tuple(slots)
        return tuple(frozenset({t}) for t in sorted(self.types))


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
    def matched_responses(self) -> int:
        """Responses with at least one matched slot."""
        return len({m.response_index for m in self.matches})

    @property
    def precision(self) -> float:
        return self.matched_responses / len(self.responses) if self.responses else 1.0

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
            "matched_responses": self.matched_responses,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "mean_delay_s": rnd(self.mean_delay),
            "max_delay_s": rnd(self.max_delay),
            "tolerance_s": self.tolerance,
            "early_s": self.early,
            "per_event": per_event,
            "unmatched_responses": [{"pts": r.pts, "text": r.text} for r in self.unmatched_responses],
        }


def _slots_of_kinds(kinds: list[str]) -> tuple[frozenset[str], ...]:
    out: list[frozenset[str]] = []
    for k in kinds:
        out.extend(KIND_SLOTS.get(k, ()))
    return tuple(out)


def event_types(decision: dict[str, Any]) -> EventTypes:
    """The event types a Response claims, with their slots: ``meta["events"]``, ``meta["event"]`` or its text."""
    meta = decision.get("meta") or {}
    if isinstance(meta, dict):
        evs = meta.get("events")
        if isinstance(evs, list) and all(isinstance(e, str) for e in evs):
            return EventTypes(_slots_of_kinds(evs))
        ev = meta.get("event")
        if isinstance(ev, str):
            # another kind of event (motion_start, ...) is never one of these: no slot
            return EventTypes(KIND_SLOTS.get(ev, ()))
    text = decision.get("text") or ""
    found: list[frozenset[str]] = []
    for pattern, kind in ((_ARRIVE, "arrive"), (_LEAVE, "leave"), (_START, "start"), (_STOP, "stop")):
        if pattern.search(text):
            found.append(frozenset({kind}))
    if _COUNT.search(text):
        found.append(frozenset({"count"}))
    return EventTypes(tuple(found))


def match_events(
    events: list[LabelEvent], responses: list[ResponseRecord], tolerance: float = 3.0, early: float = 1.0
) -> MatchResult:
    """Match Responses to events (see the module docstring for the rule)."""
    if tolerance < 0 or early < 0:
        raise ConfigError(f"tolerance and early must be >= 0, got tolerance={tolerance}, early={early}")
    order_e = sorted(range(len(events)), key=lambda i: events[i].t)
    order_r = sorted(range(len(responses)), key=lambda i: responses[i].pts)
    slots = [(ri, si, acc) for ri in order_r for si, acc in enumerate(responses[ri].slots)]
    fits: dict[int, list[int]] = {}
    for ei in order_e:
        ev = events[ei]
        fits[ei] = [
            k
            for k, (ri, _si, acc) in enumerate(slots)
            if ev.type in acc and ev.t - early - 1e-9 <= responses[ri].pts <= ev.t + tolerance + 1e-9
        ]
    owner: dict[int, int] = {}  # slot index -> event index

    def augment(ei: int, seen: set[int]) -> bool:
        for k in fits[ei]:
            if k in seen:
                continue
            seen.add(k)
            if k not in owner or augment(owner[k], seen):
                owner[k] = ei
                return True
        return False

    for ei in order_e:
        augment(ei, set())
    result = MatchResult(list(events), list(responses), tolerance=tolerance, early=early)
    for k, ei in owner.items():
        ri = slots[k][0]
        result.matches.append(Match(ei, ri, responses[ri].pts - events[ei].t))
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
