"""Live state of a run for the dashboard: what the loop hands over, and what the server makes of it.

Two sides, two threads:

* :class:`DashboardSink` is a loop sink. ``on_decision`` and ``on_action`` run on the run's event-loop thread
  and only copy references (the decision, the frame, the result) into a :class:`StreamState` under a lock
  held for a few assignments: a bounded ring of recent decisions and actions, the latest frame (latest
  wins), and exact counters. Nothing is drawn, encoded or sent there, so the loop never waits on the
  dashboard, whatever its clients do.
* :class:`StreamView` lives on the server's thread. It polls the state, turns new decisions into JSON
  records, bins them into one-second points for the plots, keeps a whole-run latency sketch, and draws
  plus JPEG-encodes the newest frame (:meth:`StreamView.render`, run in a worker thread at a capped rate).
  Frames the cap or a busy encoder skipped are counted, never queued. Each client reads the view through
  its own :class:`Cursor`, so a slow client gets bigger batches and skips frames; it never holds up
  another client, the view, or the run.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from agentkit.annotate import draw_decision
from agentkit.metrics import QuantileSketch
from agentkit.sinks import Sink
from agentkit.types import ActionResult, Decision, DecisionKind, Frame

RING = 512  # decisions and actions held per stream on the loop side (about 50 s at 10 fps)
RECORDS = 2000  # JSON decision records held per stream on the server side (what a new client is sent)
SERIES = 600  # one-second plot points held per stream (10 minutes)
CAPTION_HOLD_S = 3.0  # a Response's text stays on the frame this long, as in the annotated video


def stream_slug(name: str) -> str:
    """A stream name safe in a URL path and a CSS selector: ``A-Z a-z 0-9 . _ -``, at most 48 characters."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:48]
    return slug or "stream"


@dataclass
class Counters:
    """Exact per-stream figures, updated by the sink (one integer operation each)."""

    processed: int = 0
    responses: int = 0
    standbys: int = 0
    gated: int = 0
    errors: int = 0  # decisions carrying errors
    dropped: int = 0  # frames the policy never saw: gaps in the source's sequence numbers
    actions: int = 0
    action_errors: int = 0

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class StreamState:
    """One stream's hand-over point between the run's thread (writer) and the server's thread (reader)."""

    def __init__(
        self, name: str, *, ring: int = RING, hold_response: bool = False, point_labels: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.hold_response = hold_response  # keep the latest Response's points and calls drawn (robot plans)
        self.point_labels = point_labels
        self.lock = threading.Lock()
        self.decisions: deque[tuple[int, float, Decision]] = deque(maxlen=ring)  # (n, monotonic time, decision)
        self.actions: deque[tuple[int, float, ActionResult]] = deque(maxlen=ring)
        self.n_decisions = 0
        self.n_actions = 0
        self.counters = Counters()
        self.latest: tuple[int, Decision, Frame, Decision | None] | None = None  # (n, decision, frame, last Response)
        self.last_response: Decision | None = None
        self.last_seq: int | None = None
        self.started: float | None = None  # monotonic time of the first decision
        self.ended = False


class DashboardSink(Sink):
    """The loop side of the dashboard: reference copies into a :class:`StreamState`, nothing else.

    Example:
        >>> state = StreamState("camera")
        >>> sink = DashboardSink(state)
        >>> # StreamLoop(source, policy, sinks=[sink]) ...; the server reads ``state``
    """

    def __init__(self, state: StreamState) -> None:
        self.state = state

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        st = self.state
        now = time.monotonic()
        with st.lock:
            st.n_decisions += 1
            n = st.n_decisions
            st.decisions.append((n, now, decision))
            c = st.counters
            c.processed += 1
            kind = decision.kind
            if kind is DecisionKind.RESPONSE:
                c.responses += 1
                st.last_response = decision
            elif kind is DecisionKind.STANDBY:
                c.standbys += 1
            if decision.gated:
                c.gated += 1
            if decision.errors:
                c.errors += 1
            if st.last_seq is not None and decision.seq > st.last_seq + 1:
                c.dropped += decision.seq - st.last_seq - 1
            st.last_seq = decision.seq
            if st.started is None:
                st.started = now
            st.latest = (n, decision, frame, st.last_response)

    def on_action(self, result: ActionResult) -> None:
        st = self.state
        now = time.monotonic()
        with st.lock:
            st.n_actions += 1
            st.actions.append((st.n_actions, now, result))
            st.counters.actions += 1
            if not result.ok:
                st.counters.action_errors += 1

    def close(self) -> None:
        with self.state.lock:
            self.state.ended = True


@dataclass
class Cursor:
    """What one client has been sent of one stream."""

    decisions: int = 0  # last record number sent
    actions: int = 0
    series: int = 0  # plot points sent
    frame_id: int = 0
    status: str = ""
    counters_version: int = -1
    decisions_missed: int = 0  # records that left the view's ring before this client got them
    frames_skipped: int = 0  # encoded frames this client never got (it was busy with an earlier one)


@dataclass
class EncodedFrame:
    """The newest annotated JPEG of a stream, as the server sends it."""

    id: int  # 1, 2, ... per stream
    jpeg: bytes
    header: dict[str, Any]


@dataclass
class _Bin:
    """One second of decisions, for the plots."""

    t: int
    count: int = 0
    latencies: list[float] = field(default_factory=list)
    max_seq: int | None = None
    dropped: int = 0


def decision_record(n: int, t: float, d: Decision) -> dict[str, Any]:
    """The JSON a client gets for one decision: ``Decision.to_dict()`` plus its number ``n`` and time ``t``."""
    rec = d.to_dict()
    rec["n"] = n
    rec["t"] = round(t, 3)
    return rec


def action_record(n: int, t: float, r: ActionResult) -> dict[str, Any]:
    rec = r.to_dict()
    rec["n"] = n
    rec["t"] = round(t, 3)
    return rec


def series_point(b: _Bin, prev_seq: int | None, dropped_total: int) -> dict[str, Any]:
    lat = np.asarray(b.latencies, dtype=np.float64) if b.latencies else None
    in_fps = None
    if b.max_seq is not None and prev_seq is not None:
        in_fps = b.max_seq - prev_seq  # frames the source produced in this second
    return {
        "t": b.t,
        "fps": b.count,
        "in_fps": in_fps,
        "p50": None if lat is None else round(float(np.percentile(lat, 50)), 2),
        "p95": None if lat is None else round(float(np.percentile(lat, 95)), 2),
        "dropped": dropped_total,
    }


def annotated_jpeg(
    image: np.ndarray,
    decision: Decision,
    last_response: Decision | None,
    actions: list[ActionResult],
    *,
    busy: bool = False,
    hold_response: bool = False,
    point_labels: tuple[str, ...] = (),
    max_width: int = 640,
    quality: int = 75,
    annotate: bool = True,
) -> tuple[bytes, tuple[int, int]]:
    """``image`` (RGB) scaled to at most ``max_width`` and drawn by :func:`~agentkit.annotate.draw_decision`
    the way the annotated video draws it (the latest Response's text held for a few seconds, its points and
    calls kept with ``hold_response``, the last two action results), as JPEG bytes and (width, height)."""
    h, w = image.shape[:2]
    if w > max_width:
        image = cv2.resize(image, (max_width, int(round(h * max_width / w))), interpolation=cv2.INTER_AREA)
    if annotate:
        caption = None
        if last_response is not None and last_response.text and decision.pts - last_response.pts <= CAPTION_HOLD_S:
            caption = last_response.text
        shown = decision
        if hold_response and last_response is not None and decision.kind is not DecisionKind.RESPONSE:
            shown = Decision(
                decision.kind,
                decision.seq,
                decision.pts,
                points=last_response.points,
                tool_calls=last_response.tool_calls,
                errors=decision.errors,
                latency_ms=decision.latency_ms,
            )
        lines = [f"{r.call.name}: {'ok' if r.ok else f'error: {r.error}'}"[:80] for r in actions[-2:]]
        image = draw_decision(image, shown, caption, lines, status="busy" if busy else "", point_labels=point_labels)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes(), (int(image.shape[1]), int(image.shape[0]))


def frame_header(stream: str, decision: Decision, width: int, height: int) -> dict[str, Any]:
    """What travels with a JPEG: the stream, the decision it shows, the image size."""
    return {
        "stream": stream,
        "seq": decision.seq,
        "pts": round(decision.pts, 3),
        "kind": decision.kind.value,
        "width": width,
        "height": height,
    }


class StreamView:
    """The server side of one stream: JSON records, plot points, the latest JPEG. Server thread only."""

    def __init__(
        self, state: StreamState, *, jpeg_width: int = 640, jpeg_quality: int = 75, records: int = RECORDS
    ) -> None:
        self.state = state
        self.name = state.name
        self.jpeg_width = jpeg_width
        self.jpeg_quality = jpeg_quality
        self.records: deque[dict[str, Any]] = deque(maxlen=records)
        self.action_records: deque[dict[str, Any]] = deque(maxlen=records)
        self.series: deque[dict[str, Any]] = deque(maxlen=SERIES)
        self.series_n = 0  # points ever made
        self.latency = QuantileSketch()
        self.counters: dict[str, Any] = {}
        self.counters_version = 0
        self.status = "waiting"
        self.frame: EncodedFrame | None = None
        self.frames_encoded = 0
        self.frames_skipped = 0  # decisions whose frame was never drawn (rate cap, busy encoder)
        self.encode_ms = QuantileSketch()
        self.clients_frames_skipped = 0  # over all clients
        self._seen = 0  # last decision number taken from the state
        self._seen_actions = 0
        self._missed = 0  # decisions that left the state's ring before the view took them
        self._bin: _Bin | None = None
        self._prev_seq: int | None = None
        self._last_rendered = 0  # decision number of the frame last encoded

    # ----------------------------------------------------------------- records and plots
    def poll(self) -> bool:
        """Take what the sink added since the last call; True when anything changed."""
        st = self.state
        with st.lock:  # reference copies only: the sink never waits long for this lock
            n_dec, n_act = st.n_decisions, st.n_actions
            new = [e for e in st.decisions if e[0] > self._seen] if n_dec > self._seen else []
            new_actions = [e for e in st.actions if e[0] > self._seen_actions] if n_act > self._seen_actions else []
            counters: dict[str, Any] = st.counters.to_dict()
            ended, started = st.ended, st.started
        changed = False
        if new:
            if new[0][0] > self._seen + 1:
                self._missed += new[0][0] - self._seen - 1
            self._seen = new[-1][0]
            for n, t, d in new:
                rel = t - (started or t)
                self.records.append(decision_record(n, rel, d))
                if d.latency_ms is not None:
                    self.latency.add(d.latency_ms)
                self._add_to_bins(rel, d, counters)
            changed = True
        if new_actions:
            self._seen_actions = new_actions[-1][0]
            for n, t, r in new_actions:
                self.action_records.append(action_record(n, t - (started or t), r))
            changed = True
        status = "ended" if ended else ("live" if n_dec else "waiting")
        if ended and self._bin is not None:  # the last, partial second
            self._close_bin(counters["dropped"])
        if changed or status != self.status:
            self.status = status
            counters["latency_ms"] = self.latency.percentiles((50, 95))
            counters["dashboard"] = {
                "frames_encoded": self.frames_encoded,
                "frames_skipped": self.frames_skipped,
                "encode_ms": self.encode_ms.percentiles((50, 95)),
                "decisions_missed": self._missed,
                "client_frames_skipped": self.clients_frames_skipped,
            }
            last = self.series[-1] if self.series else None
            counters["fps"] = last["fps"] if last else None
            self.counters = counters
            self.counters_version += 1
            changed = True
        return changed

    def _add_to_bins(self, rel: float, d: Decision, counters: dict[str, Any]) -> None:
        second = int(rel)
        if self._bin is not None and second > self._bin.t:
            self._close_bin(counters["dropped"])
            for gap in range(self.series[-1]["t"] + 1 if self.series else second, second):  # idle seconds
                self._push({"t": gap, "fps": 0, "in_fps": 0, "p50": None, "p95": None, "dropped": counters["dropped"]})
        if self._bin is None:
            self._bin = _Bin(second)
        b = self._bin
        b.count += 1
        if d.latency_ms is not None:
            b.latencies.append(d.latency_ms)
        b.max_seq = d.seq if b.max_seq is None else max(b.max_seq, d.seq)

    def _close_bin(self, dropped_total: int) -> None:
        assert self._bin is not None
        self._push(series_point(self._bin, self._prev_seq, dropped_total))
        if self._bin.max_seq is not None:
            self._prev_seq = self._bin.max_seq
        self._bin = None

    def _push(self, point: dict[str, Any]) -> None:
        self.series.append(point)
        self.series_n += 1

    # ----------------------------------------------------------------- frames
    def pending_frame(self) -> tuple[int, Decision, Frame, Decision | None] | None:
        """The newest frame not yet encoded (a reference), or None."""
        latest = self.state.latest  # one atomic read of a tuple the sink replaces whole
        if latest is None or latest[0] <= self._last_rendered:
            return None
        return latest

    def render(self, item: tuple[int, Decision, Frame, Decision | None]) -> EncodedFrame:
        """Draw and encode one frame. Runs in the encoder's worker thread (OpenCV releases the GIL)."""
        t0 = time.perf_counter()
        n, decision, frame, last_response = item
        with self.state.lock:
            recent = [r for _, _, r in list(self.state.actions)[-2:]]
        busy = frame.status is not None and frame.status.busy
        jpeg, (w, h) = annotated_jpeg(
            frame.image,
            decision,
            last_response,
            recent,
            busy=busy,
            hold_response=self.state.hold_response,
            point_labels=self.state.point_labels,
            max_width=self.jpeg_width,
            quality=self.jpeg_quality,
        )
        header = frame_header(self.name, decision, w, h)
        header["n"] = n
        header["encode_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
        return EncodedFrame(0, jpeg, header)

    def skip(self, item_n: int) -> None:
        """Give up on the frame of decision ``item_n`` (it could not be drawn); counted as skipped."""
        self.frames_skipped += max(0, item_n - self._last_rendered)
        self._last_rendered = max(self._last_rendered, item_n)

    def rendered(self, item_n: int, encoded: EncodedFrame) -> None:
        """Publish a frame :meth:`render` made (server loop thread)."""
        skipped = item_n - self._last_rendered - 1
        if skipped > 0:
            self.frames_skipped += skipped
        self._last_rendered = item_n
        self.frames_encoded += 1
        self.encode_ms.add(encoded.header["encode_ms"])
        encoded.id = self.frames_encoded
        encoded.header["id"] = encoded.id
        self.frame = encoded

    # ----------------------------------------------------------------- what a client gets
    def delta(self, cur: Cursor) -> dict[str, Any] | None:
        """The update message for a client at ``cur`` (and advance it), or None when it has everything."""
        msg: dict[str, Any] = {"type": "update", "stream": self.name}
        if self.records and self.records[-1]["n"] > cur.decisions:
            oldest = self.records[0]["n"]
            if cur.decisions + 1 < oldest:
                msg["missed"] = oldest - cur.decisions - 1
                cur.decisions_missed += msg["missed"]
            msg["decisions"] = [r for r in self.records if r["n"] > cur.decisions]
            cur.decisions = self.records[-1]["n"]
        if self.action_records and self.action_records[-1]["n"] > cur.actions:
            msg["actions"] = [r for r in self.action_records if r["n"] > cur.actions]
            cur.actions = self.action_records[-1]["n"]
        if self.series_n > cur.series:
            fresh = min(self.series_n - cur.series, len(self.series))
            msg["series"] = list(self.series)[-fresh:]
            cur.series = self.series_n
        if self.counters_version != cur.counters_version or self.status != cur.status:
            msg["counters"] = dict(self.counters, client={"frames_skipped": cur.frames_skipped})
            msg["status"] = self.status
            cur.counters_version, cur.status = self.counters_version, self.status
        return msg if len(msg) > 2 else None

    def snapshot(self) -> dict[str, Any]:
        """Everything held, for ``GET /api/streams/{name}/state`` (polling clients and tests)."""
        return {
            "stream": self.name,
            "status": self.status,
            "counters": self.counters,
            "decisions": list(self.records)[-200:],
            "actions": list(self.action_records)[-200:],
            "series": list(self.series),
            "frame": None if self.frame is None else self.frame.header,
        }


class LiveHub:
    """The streams of one live run, keyed by name; the server reads it, the apps add sinks to it."""

    mode = "live"

    def __init__(self, *, title: str = "", max_fps: float = 15.0, jpeg_width: int = 640, jpeg_quality: int = 75):
        if not max_fps > 0:
            raise ValueError(f"max_fps must be positive, got {max_fps!r}")
        self.title = title
        self.max_fps = max_fps
        self.jpeg_width = jpeg_width
        self.jpeg_quality = jpeg_quality
        self._lock = threading.Lock()
        self._states: dict[str, StreamState] = {}

    def sink(
        self, name: str, *, hold_response: bool = False, point_labels: tuple[str, ...] | list[str] = ()
    ) -> DashboardSink:
        """A sink for a new stream ``name`` (made unique: ``camera``, ``camera-2``, ...)."""
        base = stream_slug(name)
        with self._lock:
            slug, k = base, 1
            while slug in self._states:
                k += 1
                slug = f"{base}-{k}"
            state = StreamState(slug, hold_response=hold_response, point_labels=tuple(point_labels))
            self._states[slug] = state
        return DashboardSink(state)

    def states(self) -> list[StreamState]:
        with self._lock:
            return list(self._states.values())
