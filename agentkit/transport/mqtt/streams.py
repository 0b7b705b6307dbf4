"""Streams served by a pool of workers over MQTT: topics, messages, and the decision log's bookkeeping.

Why: ``agentkit serve --mqtt`` runs several worker processes (on one or many machines) on the streams of one
broker; a camera publishes frames without knowing which worker answers, a consumer records decisions
without knowing which worker made them, and a worker that dies hands its streams to another. This module
is what all of them agree on, byte for byte; the ownership rule is :mod:`.ownership`, the worker itself is
``agentkit.apps.serve.mqtt_worker``. Protocol and guarantees: ``docs/scale-out.md``.

Topics (``stream``: 1-128 of ``A-Z a-z 0-9 . _ : @ -``, starting with a letter or digit, the stream names of
``agentkit serve``; ``worker``: 1-64 of ``A-Z a-z 0-9 _ -``; neither can be an MQTT wildcard or a level):

====================================  ==========  ====  ========  ==============================================
topic                                 from        QoS   retained  payload
====================================  ==========  ====  ========  ==============================================
agentkit/streams/<stream>/frame       camera      1     no        ``u32`` + JSON :class:`StreamFrameHeader` + JPEG
agentkit/streams/<stream>/config      camera      1     yes       JSON :class:`StreamConfigMsg` (the sink)
agentkit/streams/<stream>/decision/   worker      1     yes       JSON :class:`StreamDecisionMsg`
<worker>
agentkit/workers/<worker>/status      worker      1     yes       JSON :class:`WorkerStatusMsg`; last will: offline
====================================  ==========  ====  ========  ==============================================

The worker's id is a level of its decision topic, so a broker ACL can let each worker publish only its own
decisions (``configs/mosquitto/acl``); receivers check that the message names the same stream and worker
as its topic. Every payload is size-checked before it is parsed and validated by a strict pydantic model
(the guards of :mod:`.wire`); a bad one is a :class:`~agentkit.transport.mqtt.wire.WireError`.

**The decision log.** Frames of a stream are numbered by the camera (``session``: one camera run, ``seq``:
increasing). A decision message answers frame ``seq`` and *accounts* for the frames between the last frame
its worker knew to be accounted for (``after``) and ``seq``: each of those is listed in ``skipped`` with a
reason (``dropped``: replaced by a newer frame while the worker was busy, the latest-wins rule; ``takeover``:
not answered by a dead owner and too old when its successor took over; ``rejected``: malformed or stale;
``not_received``: never reached the worker). :class:`DecisionBook` turns the messages into records, one
per frame: the first message to account for a frame wins, later ones are counted as duplicates, and any
frame between a session's first and last record that no message accounted for is a *gap*.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from agentkit.transport.mqtt.auth import MqttAuth, resolve_auth
from agentkit.transport.mqtt.ownership import Membership
from agentkit.transport.mqtt.wire import (
    MAX_FRAME_BYTES,
    MAX_JSON_BYTES,
    MAX_PIXELS,
    NAME_RE,
    Pixels,
    Rejections,
    Seq,
    Session,
    Stamp,
    Time,
    WireError,
    check_size,
    decode_jpeg,
    dumps,
    encode_jpeg,
    image_size,
    loads,
    pack,
    parse,
    parse_spec,
    unpack,
)

log = logging.getLogger(__name__)

PREFIX = "agentkit"
STREAM_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
STREAM_RE = re.compile(STREAM_PATTERN)
ALL_FRAMES = f"{PREFIX}/streams/+/frame"
ALL_CONFIGS = f"{PREFIX}/streams/+/config"
ALL_DECISIONS = f"{PREFIX}/streams/+/decision/+"
ALL_STATUSES = f"{PREFIX}/workers/+/status"
MAX_SKIP_RANGES = 512  # a decision message stays well under MAX_JSON_BYTES
MAX_LISTED = 1024  # streams listed in a worker status (owned; released); a worker cuts them to fit MAX_JSON_BYTES


def check_stream(name: str) -> str:
    """A stream name usable as one topic level; ``ValueError`` naming the value otherwise."""
    if not isinstance(name, str) or not STREAM_RE.fullmatch(name):
        raise ValueError(f"bad stream name {name!r}: expected 1-128 of A-Z a-z 0-9 . _ : @ - (first: a letter/digit)")
    return name


def check_worker(name: str) -> str:
    """A worker id usable as one topic level (and as its broker username); ``ValueError`` otherwise."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError(f"bad worker id {name!r}: expected 1-64 characters of A-Z a-z 0-9 _ -")
    return name


def frame_topic(stream: str) -> str:
    return f"{PREFIX}/streams/{check_stream(stream)}/frame"


def config_topic(stream: str) -> str:
    return f"{PREFIX}/streams/{check_stream(stream)}/config"


def decision_topic(stream: str, worker: str) -> str:
    return f"{PREFIX}/streams/{check_stream(stream)}/decision/{check_worker(worker)}"


def status_topic(worker: str) -> str:
    return f"{PREFIX}/workers/{check_worker(worker)}/status"


@dataclass(frozen=True)
class Topic:
    """A parsed stream-pool topic: ``kind`` is ``frame``, ``config``, ``decision`` or ``status``."""

    kind: str
    stream: str | None = None
    worker: str | None = None


def parse_topic(topic: str) -> Topic | None:
    """The kind, stream and worker of a stream-pool topic; ``None`` for anything else (or bad names)."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != PREFIX:
        return None
    if parts[1] == "workers" and len(parts) == 4 and parts[3] == "status" and NAME_RE.fullmatch(parts[2]):
        return Topic("status", worker=parts[2])
    if parts[1] != "streams" or not STREAM_RE.fullmatch(parts[2]):
        return None
    if len(parts) == 4 and parts[3] in ("frame", "config"):
        return Topic(parts[3], stream=parts[2])
    if len(parts) == 5 and parts[3] == "decision" and NAME_RE.fullmatch(parts[4]):
        return Topic("decision", stream=parts[2], worker=parts[4])
    return None


# -- messages ------------------------------------------------------------------------------------------------
StreamName = Annotated[str, StringConstraints(pattern=STREAM_PATTERN)]
WorkerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Text = Annotated[str, StringConstraints(max_length=16384)]
Ms = Annotated[float, Field(ge=0.0)]
SkipReason = Literal["dropped", "takeover", "rejected", "not_received"]
SKIP_REASONS: tuple[str, ...] = ("dropped", "takeover", "rejected", "not_received")


class _Open(BaseModel):
    """Read by the other side: unknown fields are ignored (a newer sender may add one)."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=True)


class _Closed(BaseModel):
    """Acted upon (it sets a stream's prompt): unknown fields are errors, a typo must not pass silently."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class StreamFrameHeader(Stamp):
    """The JSON header of a stream frame: the camera run (``session``), ``seq``, ``t``, the size, stream time.

    ``pts``: seconds of stream time (default: ``t`` minus the session's first ``t`` at the receiver).
    """

    w: Pixels
    h: Pixels
    pts: Annotated[float, Field(ge=0.0)] | None = None


class StreamConfigMsg(_Closed):
    """Retained ``{"t", "prompt"?, "instruction"?}``: the stream's sink (system prompt and task).

    Whoever owns the stream prefills it; a worker taking the stream over rebuilds its cache from it and the
    recent frames. A change restarts the stream's cache with the new sink.
    """

    t: Time
    prompt: Text | None = None
    instruction: Text | None = None


class Released(_Open):
    """A stream a live worker has let go of, and the last frame it accounted for (``-1``: none)."""

    stream: StreamName
    session: Session
    seq: Annotated[int, Field(ge=-1, le=2**63 - 1)]


class WorkerStatusMsg(_Open):
    """Retained ``{"online", "session", "t", "owned", "released"}``; the last will says ``online: false``.

    A live worker republishes it whenever it takes or lets go of streams: ``owned`` lists its streams,
    ``released`` the streams it has let go of (most recent last) with the last frame it accounted for. A
    worker taking a stream from a live owner (it joined and outranks it) waits until that owner's status no
    longer lists the stream, so the handover neither skips nor repeats a frame.
    """

    online: bool
    session: Session
    t: Time
    owned: Annotated[list[StreamName], Field(max_length=MAX_LISTED)] = Field(default_factory=list)
    released: Annotated[list[Released], Field(max_length=MAX_LISTED)] = Field(default_factory=list)


class SkipRange(_Open):
    """Frames ``first..last`` (inclusive) of a session not answered, and why."""

    first: Seq
    last: Seq
    reason: SkipReason

    @model_validator(mode="after")
    def _ordered(self) -> SkipRange:
        if self.last < self.first:
            raise ValueError(f"skip range {self.first}..{self.last} is reversed")
        return self


class StreamDecisionMsg(_Open):
    """One decision of a worker on frame ``seq`` of ``stream``; it also accounts for frames ``after+1 .. seq-1``.

    ``skipped`` covers exactly ``after+1 .. seq-1`` (sorted, contiguous, each with a reason). ``takeover``:
    made by a worker that took the stream over, on a frame its previous owner had not answered.
    """

    stream: StreamName
    worker: WorkerId
    worker_session: Session
    session: Session
    seq: Seq
    after: Annotated[int, Field(ge=-1, le=2**63 - 1)]
    skipped: Annotated[list[SkipRange], Field(max_length=MAX_SKIP_RANGES)] = Field(default_factory=list)
    t: Time
    frame_t: Time
    pts: Annotated[float, Field(ge=0.0)] | None = None
    kind: Literal["silence", "standby", "response"]
    text: Text | None = None
    points: Annotated[list[dict[str, Any]], Field(max_length=256)] = Field(default_factory=list)
    boxes: Annotated[list[dict[str, Any]], Field(max_length=256)] = Field(default_factory=list)
    tool_calls: Annotated[list[dict[str, Any]], Field(max_length=64)] = Field(default_factory=list)
    errors: Annotated[list[Text], Field(max_length=16)] = Field(default_factory=list)
    model_ms: Ms | None = None
    latency_ms: float | None = None
    takeover: bool = False

    @model_validator(mode="after")
    def _accounts_exactly(self) -> StreamDecisionMsg:
        if self.after >= self.seq:
            raise ValueError(f"after={self.after} must be below seq={self.seq}")
        nxt = self.after + 1
        for r in self.skipped:
            if r.first != nxt:
                want = f"{self.after + 1}..{self.seq - 1}"
                raise ValueError(f"skipped must cover {want} in order; {r.first} is out of place")
            nxt = r.last + 1
        if nxt != self.seq:
            raise ValueError(f"skipped must cover {self.after + 1}..{self.seq - 1} exactly (stops before {nxt})")
        return self


def skip_ranges(after: int, seq: int, reasons: Callable[[int], str]) -> list[SkipRange]:
    """The :class:`SkipRange` list covering ``after+1 .. seq-1``, adjacent frames of one reason merged.

    ``reasons(s)`` gives frame ``s``'s reason. Ranges beyond :data:`MAX_SKIP_RANGES` are folded into the last
    one (its reason then is that of its first frame): the accounting stays exact, the reasons approximate.
    """
    out: list[list[Any]] = []
    s = after + 1
    while s < seq:
        r = reasons(s)
        if out and out[-1][2] == r and out[-1][1] == s - 1:
            out[-1][1] = s
        elif len(out) >= MAX_SKIP_RANGES:
            out[-1][1] = s
        else:
            out.append([s, s, r])
        s += 1
    return [SkipRange(first=a, last=b, reason=r) for a, b, r in out]


# -- codecs ----------------------------------------------------------------------------------------------
def encode_frame(rgb: np.ndarray, session: str, seq: int, pts: float | None = None, quality: int = 85) -> bytes:
    """An RGB frame as a stream frame message (JPEG); ``ValueError`` if it would exceed the frame limit."""
    jpeg = encode_jpeg(rgb, quality)
    header: dict[str, Any] = {"session": session, "seq": seq, "t": time.time(), "w": rgb.shape[1], "h": rgb.shape[0]}
    if pts is not None:
        header["pts"] = round(float(pts), 6)
    payload = pack(header, jpeg)
    if len(payload) > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    return payload


def decode_frame_header(payload: bytes) -> tuple[StreamFrameHeader, bytes]:
    """The validated header and the JPEG bytes of a frame message (not decoded: only its owner decodes it).

    The JPEG's own header must state the size the message header says, within :data:`MAX_PIXELS`.

    Raises:
        WireError: too large, malformed, or an image that does not match.
    """
    check_size(payload, MAX_FRAME_BYTES, "frame")
    raw, body = unpack(payload)
    header = parse(StreamFrameHeader, raw)
    w, h = image_size(body)
    if w * h > MAX_PIXELS:
        raise WireError("too_large", f"image of {w}x{h} pixels (max {MAX_PIXELS})")
    if (w, h) != (header.w, header.h):
        raise WireError("invalid", f"image is {w}x{h}, header says {header.w}x{header.h}")
    return header, body


def decode_frame_image(body: bytes, header: StreamFrameHeader) -> np.ndarray:
    """The RGB pixels of a frame whose header :func:`decode_frame_header` accepted."""
    return decode_jpeg(body, (header.w, header.h))


def decode_json(model: type[Any], payload: bytes) -> Any:
    """A JSON message of at most :data:`MAX_JSON_BYTES` validated by ``model``; ``WireError`` otherwise."""
    return parse(model, loads(payload, MAX_JSON_BYTES))


def encode_json(msg: BaseModel) -> bytes:
    payload = dumps(msg.model_dump(mode="json", exclude_none=True))
    check_size(payload, MAX_JSON_BYTES, type(msg).__name__)
    return payload


# -- the decision log --------------------------------------------------------------------------------------
class Coverage:
    """A set of integers kept as sorted, merged closed intervals (frames accounted for, per session)."""

    def __init__(self) -> None:
        self.spans: list[list[int]] = []

    def __contains__(self, x: object) -> bool:
        return isinstance(x, int) and any(a <= x <= b for a, b in self.spans)

    def claim(self, first: int, last: int) -> list[tuple[int, int]]:
        """Mark ``first..last`` covered; returns the parts that were not covered before, in order."""
        new: list[tuple[int, int]] = []
        cur = first
        for a, b in self.spans:
            if b < cur:
                continue
            if a > last:
                break
            if a > cur:
                new.append((cur, a - 1))
            cur = max(cur, b + 1)
            if cur > last:
                break
        if cur <= last:
            new.append((cur, last))
        if new:
            merged = sorted([*self.spans, *[[a, b] for a, b in new]])
            self.spans = []
            for a, b in merged:
                if self.spans and a <= self.spans[-1][1] + 1:
                    self.spans[-1][1] = max(self.spans[-1][1], b)
                else:
                    self.spans.append([a, b])
        return new

    def gaps(self) -> list[tuple[int, int]]:
        """The holes between the first and the last covered integer."""
        return [(self.spans[i][1] + 1, self.spans[i + 1][0] - 1) for i in range(len(self.spans) - 1)]

    @property
    def count(self) -> int:
        return sum(b - a + 1 for a, b in self.spans)


@dataclass
class BookStats:
    messages: int = 0
    decisions: int = 0  # frames recorded with a decision
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))  # frames, by reason
    duplicates: int = 0  # decision messages for a frame already accounted for (dropped)
    duplicate_skips: int = 0  # skipped frames already accounted for (dropped)


class DecisionBook:
    """Decision messages -> records, exactly one per (stream, session, frame): the first to account wins.

    Example:
        >>> book = DecisionBook()
        >>> msg = StreamDecisionMsg(stream="cam1", worker="w1", worker_session="a", session="s", seq=3, after=0,
        ...     skipped=[SkipRange(first=1, last=2, reason="dropped")], t=1.0, frame_t=1.0, kind="silence")
        >>> [(r["seq"], r["kind"]) for r in book.add(msg)]
        [(1, 'skipped'), (3, 'silence')]
        >>> book.add(msg), book.stats.duplicates
        ([], 1)
    """

    def __init__(self) -> None:
        self.coverage: dict[tuple[str, str], Coverage] = {}
        self.stats = BookStats()

    def add(self, msg: StreamDecisionMsg) -> list[dict[str, Any]]:
        """The new records ``msg`` brings (skipped ranges first, then the decision), in frame order."""
        self.stats.messages += 1
        cover = self.coverage.setdefault((msg.stream, msg.session), Coverage())
        out: list[dict[str, Any]] = []
        for r in msg.skipped:
            fresh = cover.claim(r.first, r.last)
            n_new = sum(b - a + 1 for a, b in fresh)
            self.stats.duplicate_skips += r.last - r.first + 1 - n_new
            self.stats.skipped[r.reason] += n_new
            for a, b in fresh:
                out.append(
                    {"stream": msg.stream, "session": msg.session, "seq": a, "last": b, "kind": "skipped",
                     "reason": r.reason, "worker": msg.worker}
                )  # fmt: skip
        if cover.claim(msg.seq, msg.seq):
            self.stats.decisions += 1
            rec = {"stream": msg.stream, "session": msg.session, "seq": msg.seq, "kind": msg.kind, "worker": msg.worker}
            body = msg.model_dump(
                exclude={"stream", "session", "seq", "kind", "worker", "after", "skipped", "worker_session"},
                exclude_defaults=True,
            )
            out.append({**rec, **body})
        else:
            self.stats.duplicates += 1
        return out

    def gaps(self) -> dict[tuple[str, str], list[tuple[int, int]]]:
        """Frames no message accounted for, between each (stream, session)'s first and last record."""
        return {k: c.gaps() for k, c in self.coverage.items() if c.gaps()}


# -- clients -----------------------------------------------------------------------------------------------
def mqtt_client(broker: str, *, auth: MqttAuth | None = None, **kw: Any) -> Any:
    """An ``aiomqtt.Client`` for ``mqtt[s]://host:port`` with the login and TLS of ``auth`` (see :mod:`.auth`).

    Raises:
        ValueError: a malformed address.
        ConfigError: TLS files with a plain address, an unreadable password file...
    """
    import aiomqtt

    spec = parse_spec(broker, name="agentkit")
    return aiomqtt.Client(spec.host, spec.port, **resolve_auth(auth).client_options(spec), **kw)


class StreamPublisher:
    """A camera's side of a stream: retained config, then numbered frames, on an open ``aiomqtt`` client.

    Args:
        client: a connected client (:func:`mqtt_client`); one client may carry several streams.
        stream: the stream's name.
        qos: of the frames (1: the broker re-sends a frame a worker did not acknowledge).

    Example:
        >>> async with mqtt_client("mqtt://127.0.0.1:1883") as c:  # doctest: +SKIP
        ...     cam = StreamPublisher(c, "cam1")
        ...     await cam.configure(instruction="Say when someone enters.")
        ...     await cam.publish(rgb)
    """

    def __init__(self, client: Any, stream: str, *, qos: int = 1, jpeg_quality: int = 85) -> None:
        self.client = client
        self.stream = check_stream(stream)
        self.qos = qos
        self.jpeg_quality = jpeg_quality
        self.session = uuid.uuid4().hex[:12]
        self.seq = 0
        self.t0 = time.monotonic()
        self.published: dict[int, float] = {}  # seq -> time.time() it was published (bounded)

    async def configure(self, prompt: str | None = None, instruction: str | None = None) -> None:
        """Publish the stream's sink (retained): every worker that owns or inherits the stream prefills it."""
        msg = StreamConfigMsg(t=time.time(), prompt=prompt, instruction=instruction)
        await self.client.publish(config_topic(self.stream), encode_json(msg), qos=1, retain=True)

    async def publish(self, rgb: np.ndarray, pts: float | None = None) -> int:
        """Publish the next frame; returns its ``seq`` (1, 2, ...)."""
        self.seq += 1
        pts = round(time.monotonic() - self.t0, 3) if pts is None else pts
        payload = encode_frame(rgb, self.session, self.seq, pts, self.jpeg_quality)
        self.published[self.seq] = time.time()
        while len(self.published) > 100_000:
            self.published.pop(next(iter(self.published)))
        await self.client.publish(frame_topic(self.stream), payload, qos=self.qos)
        return self.seq


class DecisionRecorder:
    """The consumer's side: records every stream's decisions once, in ``decisions.jsonl`` (one line per record).

    Subscribes to ``agentkit/streams/<stream or +>/decision/+`` (QoS 1) and to the workers' statuses, checks
    each message (size, schema, the stream and worker of its topic), and passes it through a
    :class:`DecisionBook`: duplicates (two workers answering one frame around a handover) are dropped and
    counted, skipped frames are written as ``{"kind": "skipped", "seq", "last", "reason"}`` lines.

    Args:
        broker: ``mqtt[s]://host:port``.
        out: the JSONL file (appended to, flushed per line); ``None``: keep records in memory only.
        streams: only these streams (default: all).
        auth: login and TLS (``None``: the ``AGENTKIT_MQTT_*`` environment, else anonymous).
        client_id: a fixed MQTT client id makes the session persistent: the broker keeps the decisions
            published while the recorder is disconnected (up to its queue limit) and delivers them on reconnect.
        include_retained: also record the retained last decision of each (stream, worker) found on subscribing
            (decisions made before this recorder started).
        on_record: called with each new record (and the receive time), for live consumers.
    """

    def __init__(
        self,
        broker: str,
        out: Path | None = None,
        *,
        streams: Iterable[str] | None = None,
        auth: MqttAuth | None = None,
        client_id: str | None = None,
        include_retained: bool = False,
        on_record: Callable[[dict[str, Any], float], None] | None = None,
    ) -> None:
        self.broker = broker
        self.out = out
        self.streams = None if streams is None else [check_stream(s) for s in streams]
        self.auth = auth
        self.client_id = client_id
        self.include_retained = include_retained
        self.on_record = on_record
        self.book = DecisionBook()
        self.records: list[dict[str, Any]] = []
        self.workers = Membership()
        self.rejected = Rejections(log, "decision recorder")
        self.connected = asyncio.Event()
        self._file: IO[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe (returns once the subscriptions are in place)."""
        if self.out is not None and self._file is None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.out.open("a", encoding="utf-8")
        self._task = asyncio.create_task(self._run(), name="decision-recorder")
        try:
            await asyncio.wait_for(self.connected.wait(), timeout_s)
        except TimeoutError:
            await self.close()
            raise ConnectionError(f"decision recorder: cannot reach the MQTT broker at {self.broker}") from None

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._file is not None:
            self._file.close()
            self._file = None

    async def _run(self) -> None:
        import aiomqtt

        backoff = 0.1
        persistent = self.client_id is not None
        ident = self.client_id or f"agentkit-recorder-{uuid.uuid4().hex[:8]}"
        topics = [f"{PREFIX}/streams/{s}/decision/+" for s in self.streams] if self.streams else [ALL_DECISIONS]
        while not self._closed:
            try:
                async with mqtt_client(
                    self.broker, auth=self.auth, identifier=ident, clean_session=not persistent, keepalive=5, timeout=5
                ) as client:
                    await client.subscribe(ALL_STATUSES, qos=1)
                    for topic in topics:
                        await client.subscribe(topic, qos=1)
                    self.connected.set()
                    backoff = 0.1
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
                        self.handle(str(message.topic), bytes(payload), retained=bool(message.retain))
            except aiomqtt.MqttError as e:
                log.warning("decision recorder: broker lost (%s); retry in %.1f s", e, backoff)
            finally:
                self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def handle(self, topic: str, payload: bytes, retained: bool = False) -> list[dict[str, Any]]:
        """One message: the new records it brings (written and returned). Never raises."""
        now = time.time()
        where = parse_topic(topic)
        try:
            if where is None:
                raise WireError("invalid", f"not a stream-pool topic: {topic[:80]!r}")
            if where.kind == "status":
                st = decode_json(WorkerStatusMsg, payload) if payload else None
                if st is None:
                    self.workers.remove(str(where.worker))
                else:
                    self.workers.update(str(where.worker), st.online, st.session, st.t)
                return []
            if where.kind != "decision" or (retained and not self.include_retained):
                return []
            decision = decode_json(StreamDecisionMsg, payload)
            if (decision.stream, decision.worker) != (where.stream, where.worker):
                said, topic_says = f"{decision.stream}/{decision.worker}", f"{where.stream}/{where.worker}"
                raise WireError("mismatch", f"message names {said}, its topic {topic_says}")
        except WireError as e:
            self.rejected(e.reason, str(e))
            return []
        records = self.book.add(decision)
        for rec in records:
            rec["received_t"] = round(now, 6)
            self.records.append(rec)
            if self._file is not None:
                self._file.write(json.dumps(rec, separators=(",", ":")) + "\n")
                self._file.flush()
            if self.on_record is not None:
                self.on_record(rec, now)
        return records


__all__ = [
    "ALL_CONFIGS",
    "ALL_DECISIONS",
    "ALL_FRAMES",
    "ALL_STATUSES",
    "SKIP_REASONS",
    "Coverage",
    "DecisionBook",
    "DecisionRecorder",
    "Released",
    "SkipRange",
    "StreamConfigMsg",
    "StreamDecisionMsg",
    "StreamFrameHeader",
    "StreamPublisher",
    "Topic",
    "WorkerStatusMsg",
    "check_stream",
    "check_worker",
    "config_topic",
    "decision_topic",
    "decode_frame_header",
    "decode_frame_image",
    "decode_json",
    "encode_frame",
    "encode_json",
    "frame_topic",
    "mqtt_client",
    "parse_topic",
    "skip_ranges",
    "status_topic",
]
