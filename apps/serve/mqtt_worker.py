"""``agentkit serve --mqtt``: one worker of a pool that shares the streams of an MQTT broker.

Why: one process holds the KV caches of the streams it serves; to serve more streams, or to survive a
process dying, several workers (on one or many machines) share the streams of one broker. Each stream is
owned by exactly one live worker at a time, its cache lives there, and when the owner dies (the broker
publishes its last will) or leaves, another worker takes the stream over and rebuilds the cache.

* **Ownership** (:mod:`agentkit.transport.mqtt.ownership`): every worker sees the retained statuses of all
  workers; the owner of a stream is the live worker with the highest rendezvous weight for it. No claims,
  no consensus: a change of the live set moves only the streams of the worker that came or went.
* **Frames**: every worker subscribes to every stream's frames (``agentkit/streams/+/frame``) and keeps
  the last ``ring`` frames (the JPEG bytes, not decoded) of the streams it owns or would inherit (rank
  below ``keep_rank``). The owner runs the frames through :class:`~agentkit.apps.serve.service.StreamService`
  (the same engine, scheduler and cross-stream batching as ``agentkit serve``), latest-wins per stream.
* **Decisions**: one message per answered frame on ``agentkit/streams/<stream>/decision/<worker>``
  (retained: the last one per stream and worker), which also accounts for the frames skipped since the
  last accounted one (:class:`~agentkit.transport.mqtt.streams.StreamDecisionMsg`). Every worker reads all
  decisions, so it knows, per stream, the last frame accounted for by anyone.
* **Takeover**: the new owner prefills the sink (the stream's retained ``config``: prompt and instruction),
  replays the last ``rebuild_frames`` answered frames of its ring with the decisions their owner published
  (teacher forcing: no decoding, one forward per frame; :func:`replay_turns`), answers the frames the old
  owner had not (if younger than ``catchup_s``; older ones are accounted as skipped, reason ``takeover``),
  then goes on live.
* **Leaving cleanly** (SIGTERM): the worker stops taking frames, finishes and publishes the turns in
  flight, then publishes its retained status as offline; its successors see the last decisions first.

Protocol, guarantee and measurements: ``docs/scale-out.md``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agentkit.apps.serve.errors import ServeError
from agentkit.apps.serve.service import StreamService
from agentkit.apps.serve.sessions import Stream
from agentkit.errors import AgentkitError
from agentkit.transport.mqtt.auth import MqttAuth, connect_refused
from agentkit.transport.mqtt.ownership import Membership, owner, rank
from agentkit.transport.mqtt.streams import (
    ALL_CONFIGS,
    ALL_DECISIONS,
    ALL_FRAMES,
    ALL_STATUSES,
    MAX_LISTED,
    Released,
    StreamConfigMsg,
    StreamDecisionMsg,
    StreamFrameHeader,
    WorkerStatusMsg,
    check_worker,
    decision_topic,
    decode_frame_header,
    decode_frame_image,
    decode_json,
    encode_json,
    mqtt_client,
    parse_topic,
    skip_ranges,
    status_topic,
)
from agentkit.transport.mqtt.wire import Freshness, Rejections, WireError, parse_spec
from agentkit.types import DecisionKind, Frame

log = logging.getLogger(__name__)


class WorkerFailed(AgentkitError):
    """The worker stopped because the broker refused its login."""


class MqttWorkerConfig(BaseModel):
    """Settings of one pool worker.

    Attributes:
        broker: ``mqtt://host:port`` (``mqtts://`` for TLS).
        worker_id: this worker's id, unique in the pool: a topic level, and with the shipped ACL its broker
            username (1-64 of ``A-Z a-z 0-9 _ -``).
        ring: recent frames kept per stream this worker owns or would inherit.
        rebuild_frames: answered frames replayed into the cache after the sink on a takeover.
        catchup_s: on a takeover, frames the old owner left unanswered are answered if younger than this;
            older ones are accounted as skipped (``takeover``).
        keep_rank: keep frames of a stream when this worker is among its first ``keep_rank`` in the
            rendezvous ranking (1: the owner only; 2: the owner and its successor).
        max_age_s: frames older than this (camera clock) on arrival are rejected as stale.
        keepalive_s: MQTT keepalive: a worker that vanishes without closing its connection (power cut,
            network) is declared dead by the broker after 1.5 times this.
        warmup_s: after subscribing, how long the worker only listens (frames into its rings, decisions,
            statuses) before it says online and takes streams: a stream it takes from a live owner then
            finds the owner's unanswered frames in its ring.
        handoff_s: taking a stream from a live owner (this worker joined and outranks it), how long to wait
            for that owner to finish its turn in flight and say it let go (its status); then it goes on anyway.
        idle_s: a stream without frames for this long is forgotten (its cache freed).
    """

    model_config = ConfigDict(extra="forbid")

    broker: str
    worker_id: str
    ring: int = Field(16, ge=1, le=1024)
    rebuild_frames: int = Field(4, ge=0, le=256)
    catchup_s: float = Field(2.0, ge=0.0)
    keep_rank: int = Field(2, ge=1)
    max_age_s: float = Field(5.0, gt=0.0)
    keepalive_s: int = Field(2, ge=1, le=600)
    warmup_s: float = Field(1.0, ge=0.0)
    handoff_s: float = Field(3.0, ge=0.0)
    idle_s: float = Field(600.0, gt=0.0)

    @field_validator("worker_id")
    @classmethod
    def _worker_id(cls, value: str) -> str:
        return check_worker(value)

    @field_validator("broker")
    @classmethod
    def _broker(cls, value: str) -> str:
        parse_spec(value, name="agentkit")
        return value


@dataclass
class _Frame:
    header: StreamFrameHeader
    jpeg: bytes
    received: float  # monotonic
    pts: float

    @property
    def seq(self) -> int:
        return self.header.seq


@dataclass
class _Session:
    """What is known of one camera run of a stream."""

    accounted: int = -1  # highest frame accounted for by any decision seen (-1: none)
    first_seq: int | None = None  # first frame this worker received
    max_seq: int = -1  # newest frame this worker received
    t0: float | None = None  # that frame's camera time (default stream time is measured from it)
    held: list[int] = field(default_factory=list)  # claims ahead of the frames seen, applied once they are

    def claim(self, seq: int, slack: int) -> bool:
        """A decision accounts up to ``seq``: applied if no further ahead of the newest frame seen than ``slack``
        (a decision follows its frame; a claim far ahead would silence the stream), else held."""
        if seq <= self.max_seq + slack:
            self.accounted = max(self.accounted, seq)
            return True
        self.held = sorted({*self.held, seq})[:8]
        return False

    def saw(self, seq: int, slack: int) -> None:
        self.max_seq = max(self.max_seq, seq)
        ready = [c for c in self.held if c <= self.max_seq + slack]
        if ready:
            self.accounted = max(self.accounted, *ready)
            self.held = [c for c in self.held if c > self.max_seq + slack]


@dataclass
class _StreamState:
    name: str
    ring: collections.deque[_Frame]
    session: str | None = None
    sessions: collections.OrderedDict[str, _Session] = field(default_factory=collections.OrderedDict)
    reasons: collections.OrderedDict[int, str] = field(default_factory=collections.OrderedDict)
    decided: collections.OrderedDict[int, tuple[str, str | None]] = field(default_factory=collections.OrderedDict)
    config: StreamConfigMsg | None = None
    freshness: Freshness | None = None
    rank: int | None = None
    last_frame: float = -1e18  # monotonic time of the last admitted frame
    owned: bool = False
    slot: _Frame | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    sink_changed: bool = False
    owner_since: float = 0.0
    gen: int = 0  # ownership generation: a task serves the stream only while its generation is current

    def book(self, session: str) -> _Session:
        b = self.sessions.get(session)
        if b is None:
            b = self.sessions[session] = _Session()
            while len(self.sessions) > 4:
                self.sessions.popitem(last=False)
        return b

    def accounted(self, session: str | None = None) -> int:
        s = session or self.session
        b = self.sessions.get(s) if s is not None else None
        return b.accounted if b is not None else -1

    def note(self, seq: int, reason: str) -> None:
        self.reasons[seq] = reason
        while len(self.reasons) > 4096:
            self.reasons.popitem(last=False)

    def sink(self) -> tuple[str | None, str | None]:
        c = self.config
        return (c.prompt, c.instruction) if c is not None else (None, None)


def replay_turns(policy: Any, turns: Sequence[tuple[Frame, str | None, str | None]]) -> int:
    """Rebuild a stream's cache from frames and the decisions published for them (teacher forcing).

    Runs in the model thread. Each frame is appended as :meth:`VLMPolicy.step` would append it (its user
    turn, then the assistant turn), but the assistant turn holds the *given* decision instead of one chosen
    from the logits: Silence/Standby as their state token (exactly what the old owner's cache held), a
    Response as its state token and its published text re-tokenized (the text after parsing, so tool-call
    markup may differ from the old owner's tokens). No decoding: one forward per frame. A frame whose
    decision is unknown is replayed as Silence.

    Returns:
        The number of frames replayed (a frame the image processor rejects is left out).
    """
    n = 0
    for frame, kind_name, text in turns:
        try:
            kind = DecisionKind(kind_name) if kind_name is not None else DecisionKind.SILENCE
        except ValueError:
            kind = DecisionKind.SILENCE
        n += bool(policy.teacher_force(frame, kind, text))
    return n


class MqttWorker:
    """One worker of a stream pool. Run with ``await worker.run()``; :meth:`stop` hands its streams over.

    Args:
        service: the engine (model, scheduler, stream table) this worker runs its streams on.
        config: the worker's settings.
        auth: login and TLS (``None``: the ``AGENTKIT_MQTT_*`` environment, else anonymous).
    """

    def __init__(self, service: StreamService, config: MqttWorkerConfig, auth: MqttAuth | None = None) -> None:
        self.service = service
        self.config = config
        self.id = config.worker_id
        self.auth = auth
        mqtt_client(config.broker, auth=auth)  # bad TLS files or password file fail here, not later
        self.session = uuid.uuid4().hex[:12]  # per connection
        self.members = Membership()
        self.streams: dict[str, _StreamState] = {}
        self.client: Any = None
        self.connected = asyncio.Event()
        self.ready = asyncio.Event()  # our own online status came back: we take part in ownership
        self.rejected = Rejections(log, f"worker {self.id}")
        self.counters: collections.Counter[str] = collections.Counter()
        self.takeover_ms: list[float] = []
        self.failure: WorkerFailed | None = None
        self._stop = asyncio.Event()
        self._stopping = False
        self._restore: asyncio.Task[None] | None = None
        self._restored_at = -1e9
        self._connects = 0
        self._statuses: dict[str, WorkerStatusMsg] = {}  # the other workers' latest statuses
        self._status_seen = asyncio.Event()  # set on every status of another worker
        self._released: collections.OrderedDict[str, Released] = collections.OrderedDict()
        self._status_task: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Leave the pool cleanly (hand the streams over); :meth:`run` returns once done."""
        self._stop.set()

    async def run(self) -> None:
        """Serve until :meth:`stop`.

        Raises:
            WorkerFailed: the broker refused the login, or the connection loop failed (a bug); the worker has
                left the pool by then (its status offline, or never online).
        """
        conn = asyncio.create_task(self._connection(), name=f"worker-{self.id}-mqtt")
        janitor = asyncio.create_task(self._janitor(), name=f"worker-{self.id}-janitor")
        stop = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait([conn, stop], return_when=asyncio.FIRST_COMPLETED)
            error = conn.exception() if conn in done and not conn.cancelled() else None
            if isinstance(error, WorkerFailed):
                self.failure = error
            elif error is not None:  # a bug in the connection loop: say so, leave cleanly, exit non-zero
                log.error("worker %s: the connection loop failed: %s", self.id, error, exc_info=error)
                self.failure = WorkerFailed(
                    f"worker {self.id}: the connection loop failed: {type(error).__name__}: {error}"
                )
        finally:
            await self._leave()
            for t in (conn, janitor, stop):
                t.cancel()
            await asyncio.gather(conn, janitor, stop, return_exceptions=True)
            await self.service.close()
        if self.failure is not None:
            raise self.failure

    async def _leave(self) -> None:
        """Hand the streams over: finish and publish the turns in flight, then say offline."""
        self._stopping = True
        t0 = time.monotonic()
        for st in self.streams.values():
            self._release(st)
        tasks = [st.task for st in self.streams.values() if st.task is not None and not st.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=10.0)
        log.info("worker %s: leaving; turns in flight finished in %.0f ms", self.id, (time.monotonic() - t0) * 1e3)
        client = self.client
        if client is not None and self.connected.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    client.publish(status_topic(self.id), self._status(False), qos=1, retain=True), 2.0
                )

    def _status(self, online: bool) -> bytes:
        """Our status: online with the streams we own and those we let go of, or offline (the will, goodbye)."""
        if not online:
            return encode_json(WorkerStatusMsg(online=False, session=self.session, t=time.time()))
        owned = sorted(st.name for st in self.streams.values() if st.owned)[:MAX_LISTED]
        released = list(self._released.values())[-MAX_LISTED:]
        while True:  # cut the lists until the message fits (long stream names)
            msg = WorkerStatusMsg(online=True, session=self.session, t=time.time(), owned=owned, released=released)
            try:
                return encode_json(msg)
            except WireError:
                owned, released = owned[: len(owned) // 2], released[len(released) // 2 :]

    def _publish_status_soon(self) -> None:
        """Republish our online status shortly (one message for a burst of ownership changes)."""
        if self._stopping or not self.ready.is_set():
            return
        if self._status_task is None or self._status_task.done():
            self._status_task = asyncio.create_task(self._publish_status())

    async def _publish_status(self) -> None:
        await asyncio.sleep(0.02)
        if not self._stopping and self.ready.is_set():
            await self._publish(status_topic(self.id), self._status(True), retain=True)

    async def _connection(self) -> None:
        import aiomqtt

        backoff = 0.1
        while not self._stop.is_set():
            self.session = uuid.uuid4().hex[:12]
            will = aiomqtt.Will(status_topic(self.id), self._status(False), qos=1, retain=True)
            try:
                async with mqtt_client(
                    self.config.broker,
                    auth=self.auth,
                    identifier=f"agentkit-worker-{self.id}-{self.session}",
                    will=will,
                    keepalive=self.config.keepalive_s,
                    timeout=5,
                ) as client:
                    self.client = client
                    # what others said before we joined (retained): statuses, last decisions, sinks
                    for topic in (ALL_STATUSES, ALL_DECISIONS, ALL_CONFIGS, ALL_FRAMES):
                        await client.subscribe(topic, qos=1)
                    self._connects += 1
                    self.connected.set()
                    backoff = 0.1
                    log.info("worker %s connected to %s", self.id, self.config.broker)
                    announce = asyncio.create_task(self._announce(client))
                    try:
                        async for message in client.messages:
                            payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
                            self._on_message(str(message.topic), bytes(payload))
                    finally:
                        announce.cancel()
            except aiomqtt.MqttError as e:
                if connect_refused(e) and self._connects == 0:
                    raise WorkerFailed(
                        f"worker {self.id}: the broker at {self.config.broker} refused the login ({e}); "
                        "check --username and the password"
                    ) from None
                log.warning("worker %s: broker lost (%s); retry in %.1f s", self.id, e, backoff)
            finally:
                self.connected.clear()
                self.ready.clear()
                self.client = None
                self.members.clear()
                self._rebalance()  # not ready: every stream is released (the others took them over)
            if self._stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, 5.0)

    async def _announce(self, client: Any) -> None:
        """After the warm-up, say online (retained); once it comes back, the worker is ready and takes streams."""
        await asyncio.sleep(self.config.warmup_s)
        if client is self.client and not self._stopping:
            with contextlib.suppress(Exception):
                await client.publish(status_topic(self.id), self._status(True), qos=1, retain=True)

    async def _janitor(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.config.idle_s / 2))
            now = time.monotonic()
            for name, st in list(self.streams.items()):
                if now - st.last_frame > self.config.idle_s:
                    if st.owned:
                        self._release(st)
                    elif st.task is None or st.task.done():
                        del self.streams[name]

    # -- incoming -------------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes) -> None:
        """One message; taken or rejected and counted. Never raises."""
        where = parse_topic(topic)
        if where is None:
            return
        try:
            if where.kind == "frame":
                self._on_frame(str(where.stream), payload)
            elif where.kind == "decision":
                self._on_decision(str(where.stream), str(where.worker), payload)
            elif where.kind == "config":
                self._on_config(str(where.stream), payload)
            elif where.kind == "status":
                self._on_status(str(where.worker), payload)
        except WireError as e:
            self.rejected(e.reason, f"{where.kind} of {where.stream or where.worker}: {e}")
        except Exception as e:  # a bug: counted and logged, the worker goes on
            self.rejected("internal", f"{where.kind}: {type(e).__name__}: {e}", exc_info=e)

    def _state(self, name: str) -> _StreamState:
        st = self.streams.get(name)
        if st is None:
            st = self.streams[name] = _StreamState(name, collections.deque(maxlen=self.config.ring))
            st.freshness = Freshness(self.config.max_age_s)
            st.rank = self._rank(name)
        return st

    def _rank(self, name: str) -> int | None:
        """This worker's place in the stream's ranking, counting itself live unless it is leaving (so that a
        warming-up worker already keeps the frames of the streams it is about to own)."""
        if self._stopping:
            return None
        return rank(name, self.members.live() | {self.id}, self.id)

    def _on_frame(self, name: str, payload: bytes) -> None:
        header, jpeg = decode_frame_header(payload)
        st = self._state(name)
        assert st.freshness is not None
        if not st.freshness.admit(header, time.time()):
            if header.session == st.session:
                st.note(header.seq, "rejected")
            self.counters["frames_stale"] += 1
            return
        now = time.monotonic()
        book = st.book(header.session)
        if header.session != st.session:  # a new camera run: a new history
            st.session = header.session
            st.ring.clear()
            st.reasons.clear()
            st.decided.clear()
            st.slot = None
            st.sink_changed = st.owned  # the owner restarts the cache from the sink
        if book.first_seq is None:
            book.first_seq, book.t0 = header.seq, header.t
        book.saw(header.seq, self.config.ring)
        pts = header.pts if header.pts is not None else max(0.0, header.t - (book.t0 or header.t))
        frame = _Frame(header, jpeg, now, pts)
        st.note(header.seq, "dropped")  # the reason it is skipped if nobody answers it
        self.counters["frames_in"] += 1
        active = now - st.last_frame <= self.config.idle_s
        st.last_frame = now
        if st.owned or (st.rank is not None and st.rank < self.config.keep_rank):
            st.ring.append(frame)
        if st.owned:
            if st.slot is not None:
                self.counters["frames_dropped"] += 1
            st.slot = frame
            st.wake.set()
        if not active:  # a stream (re)appeared: someone must own it
            self._rebalance([st])

    def _on_decision(self, name: str, worker: str, payload: bytes) -> None:
        if not payload:
            return  # a retained decision cleared
        msg = decode_json(StreamDecisionMsg, payload)
        if (msg.stream, msg.worker) != (name, worker):
            raise WireError("mismatch", f"message names {msg.stream}/{msg.worker}, its topic {name}/{worker}")
        st = self._state(name)
        if not st.book(msg.session).claim(msg.seq, self.config.ring):
            self.counters["claims_ahead"] += 1
        if st.session is None or msg.session == st.session:
            st.decided[msg.seq] = (msg.kind, msg.text)
            while len(st.decided) > 4 * self.config.ring:
                st.decided.popitem(last=False)

    def _on_config(self, name: str, payload: bytes) -> None:
        st = self._state(name)
        config = decode_json(StreamConfigMsg, payload) if payload else None
        before = st.sink()
        st.config = config
        if st.owned and st.sink() != before:
            st.sink_changed = True
            st.wake.set()

    def _on_status(self, worker: str, payload: bytes) -> None:
        msg = decode_json(WorkerStatusMsg, payload) if payload else None
        if worker == self.id:
            if msg is not None and msg.session == self.session and msg.online:
                if not self.ready.is_set():
                    changed = self.members.update(worker, True, msg.session, msg.t)
                    self.ready.set()
                    log.info("worker %s: ready (%d workers live)", self.id, len(self.members.live()))
                    if changed:
                        self._rebalance()
                return
            # someone else wrote our status (a forged "offline", our previous connection's late last will);
            # before we have announced ourselves, it is just the last run's retained status
            if not self._stopping and self.connected.is_set() and self.ready.is_set():
                self.rejected("status", "another client wrote this worker's status; publishing ours again")
                if self._restore is None or self._restore.done():
                    self._restore = asyncio.create_task(self._restore_status())
            return
        if msg is None:
            changed = self.members.remove(worker)
            self._statuses.pop(worker, None)
        else:
            changed = self.members.update(worker, msg.online, msg.session, msg.t)
            if msg.online or self.members.session(worker) == msg.session:
                self._statuses[worker] = msg
        self._status_seen.set()
        if changed and self.ready.is_set():
            log.info("worker %s: live workers now %s", self.id, sorted(self.members.live()))
            self._rebalance()

    async def _restore_status(self) -> None:
        await asyncio.sleep(max(0.0, self._restored_at + 1.0 - time.monotonic()))
        client = self.client
        if client is not None and not self._stopping:
            with contextlib.suppress(Exception):
                await client.publish(status_topic(self.id), self._status(True), qos=1, retain=True)
                self._restored_at = time.monotonic()

    # -- ownership ------------------------------------------------------------------------------------
    def _rebalance(self, streams: Sequence[_StreamState] | None = None) -> None:
        """Own exactly the active streams that hash to this worker among the live ones."""
        live = self.members.live()
        taking_part = self.ready.is_set() and not self._stopping and self.id in live
        now = time.monotonic()
        for st in list(self.streams.values()) if streams is None else streams:
            st.rank = self._rank(st.name)
            active = now - st.last_frame <= self.config.idle_s
            mine = taking_part and active and owner(st.name, live) == self.id
            if mine and not st.owned:
                self._acquire(st)
            elif st.owned and not mine:
                self._release(st)

    def _acquire(self, st: _StreamState) -> None:
        st.owned = True
        st.gen += 1
        st.owner_since = time.monotonic()
        st.sink_changed = False
        previous = st.task
        st.task = asyncio.create_task(self._own(st, st.gen, previous), name=f"worker-{self.id}-{st.name}")
        self.counters["acquired"] += 1
        self._released.pop(st.name, None)
        self._publish_status_soon()

    def _release(self, st: _StreamState) -> None:
        if st.owned:
            st.owned = False
            st.slot = None
            st.wake.set()
            self.counters["released"] += 1

    # -- serving an owned stream ----------------------------------------------------------------------
    async def _own(self, st: _StreamState, gen: int, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await previous

        def mine() -> bool:
            return st.owned and st.gen == gen

        if not mine():
            return
        engine: Stream | None = None
        try:
            await self._handoff(st, mine)
            if not mine():
                return
            engine, replayed = await self._open(st)
            if engine is None:
                return
            before = self.counters["takeover_decisions"]
            await self._catch_up(st, engine, mine)
            took = (time.monotonic() - st.owner_since) * 1000.0
            self.takeover_ms.append(took)
            log.info(
                "worker %s: took stream %s in %.0f ms (after frame %d; %d frames replayed, %d unanswered answered)",
                self.id,
                st.name,
                took,
                st.accounted(),
                replayed,
                self.counters["takeover_decisions"] - before,
            )
            while mine():
                if st.sink_changed:
                    st.sink_changed = False
                    prompt, instruction = st.sink()
                    await self.service.restart(engine, prompt, instruction)
                frame, st.slot = st.slot, None
                if frame is None:
                    st.wake.clear()
                    await st.wake.wait()
                    continue
                await self._answer(st, engine, frame)
        except Exception as e:  # a bug: logged; the stream is released and taken again on the next change
            log.exception("worker %s: serving stream %s failed: %s", self.id, st.name, e)
            self.counters["stream_errors"] += 1
            if st.gen == gen:
                st.owned = False
        finally:
            if engine is not None:
                with contextlib.suppress(ServeError, RuntimeError):
                    await self.service.delete(st.name)
            if not mine() and st.session is not None:  # let go: say up to which frame we accounted for
                self._released[st.name] = Released(stream=st.name, session=st.session, seq=st.accounted())
                self._released.move_to_end(st.name)
                while len(self._released) > MAX_LISTED:
                    self._released.popitem(last=False)
                self._publish_status_soon()

    async def _handoff(self, st: _StreamState, mine: Any) -> None:
        """Taking a stream from a live owner (we outrank it since we joined): wait until it has let go.

        The owner finishes its turn in flight, publishes the decision, then republishes its status without
        the stream; its decisions reach us before that status, so we then know every frame it accounted for.
        Waits at most ``handoff_s``; an owner that dies meanwhile ends the wait (its last will).
        """
        prev = owner(st.name, self.members.live() - {self.id})
        if prev is None:
            return
        deadline = time.monotonic() + self.config.handoff_s
        t0 = time.monotonic()
        while mine() and prev in self.members.live():
            status = self._statuses.get(prev)
            if status is not None and st.name not in status.owned:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.counters["handoff_timeouts"] += 1
                log.warning(
                    "worker %s: %s did not let go of %s within %.1f s", self.id, prev, st.name, self.config.handoff_s
                )
                return
            self._status_seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_seen.wait(), remaining)
        self.counters["handoffs"] += 1
        log.debug("worker %s: %s let go of %s after %.0f ms", self.id, prev, st.name, (time.monotonic() - t0) * 1e3)

    async def _open(self, st: _StreamState) -> tuple[Stream | None, int]:
        """Create the stream's cache: the sink, then the last answered frames replayed (a takeover)."""
        prompt, instruction = st.sink()
        existing = self.service.find(st.name)
        if existing is not None:  # left by an earlier ownership: start afresh
            with contextlib.suppress(ServeError):
                await self.service.delete(st.name)
        try:
            engine = await self.service.create(st.name, prompt, instruction)
        except ServeError as e:
            log.error("worker %s: cannot open stream %s: %s", self.id, st.name, e.message)
            self.counters["streams_refused"] += 1
            st.owned = False
            return None, 0
        accounted = st.accounted()
        context = [f for f in st.ring if f.seq <= accounted][-self.config.rebuild_frames :] if accounted >= 0 else []
        replayed = 0
        if context:
            turns = []
            for f in context:
                try:
                    image = await asyncio.to_thread(decode_frame_image, f.jpeg, f.header)
                except WireError:
                    continue
                kind, text = st.decided.get(f.seq, (None, None))
                turns.append((Frame(image, t=f.received, pts=f.pts, seq=f.seq), kind, text))
            replayed = await self.service.scheduler.call(replay_turns, engine.policy, turns)
            self.counters["rebuilt_frames"] += replayed
        return engine, replayed

    async def _catch_up(self, st: _StreamState, engine: Stream, mine: Any) -> None:
        """Answer the frames the previous owner left unanswered (the young ones); account the rest as skipped."""
        accounted = st.accounted()
        start = st.owner_since  # ages are judged when the stream became ours: a slow rebuild is no reason to skip
        for seq in [s for s in st.reasons if s > accounted]:
            st.reasons[seq] = "takeover"  # unless answered below
        for f in [f for f in st.ring if f.seq > accounted]:
            if not mine():
                return
            if start - f.received > self.config.catchup_s:
                continue
            if st.slot is not None and st.slot.seq <= f.seq:
                st.slot = None if st.slot.seq == f.seq else st.slot
            await self._answer(st, engine, f, takeover=accounted >= 0)  # a first owner takes over from nobody

    async def _answer(self, st: _StreamState, engine: Stream, f: _Frame, takeover: bool = False) -> None:
        """Run one frame through the engine and publish its decision (with the skipped frames before it)."""
        session = f.header.session
        if f.seq <= st.accounted(session):
            self.counters["already_accounted"] += 1  # answered in the catch-up, or by another worker
            return
        try:
            image = await asyncio.to_thread(decode_frame_image, f.jpeg, f.header)
        except WireError as e:
            st.note(f.seq, "rejected")
            self.rejected(e.reason, f"frame {f.seq} of {st.name}: {e}")
            return
        d = await self.service.turn(engine, image, f.pts)
        book = st.book(session)
        if f.seq <= book.accounted:
            self.counters["superseded"] += 1  # another worker answered it while we did (a handover)
            return
        after = book.accounted if book.accounted >= 0 else (book.first_seq or f.seq) - 1
        after = min(after, f.seq - 1)
        msg = StreamDecisionMsg(
            stream=st.name,
            worker=self.id,
            worker_session=self.session,
            session=session,
            seq=f.seq,
            after=after,
            skipped=skip_ranges(after, f.seq, lambda s: st.reasons.get(s, "not_received")),
            t=time.time(),
            frame_t=f.header.t,
            pts=round(f.pts, 4),
            kind=d.kind.value,
            text=d.text,
            points=[p.to_dict() for p in d.points],
            boxes=[b.to_dict() for b in d.boxes],
            tool_calls=[c.to_dict() for c in d.tool_calls],
            errors=[e[:2000] for e in d.errors[:16]],
            model_ms=None if d.model_ms is None else round(max(0.0, d.model_ms), 3),
            latency_ms=round((time.time() - f.header.t) * 1000.0, 3),
            takeover=takeover,
        )
        if await self._publish(decision_topic(st.name, self.id), encode_json(msg), retain=True):
            book.accounted = max(book.accounted, f.seq)
            st.decided[f.seq] = (msg.kind, msg.text)
            st.reasons.pop(f.seq, None)
            self.counters["decisions"] += 1
            if takeover:
                self.counters["takeover_decisions"] += 1
        else:
            self.counters["unpublished"] += 1

    async def _publish(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        import aiomqtt

        client = self.client
        if client is None or not self.connected.is_set():
            return False
        try:
            await client.publish(topic, payload, qos=1, retain=retain)
            return True
        except aiomqtt.MqttError:
            return False

    # -- status ---------------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        return {
            "worker": self.id,
            "live_workers": sorted(self.members.live()),
            "owned": sorted(st.name for st in self.streams.values() if st.owned),
            "streams_seen": len(self.streams),
            "counters": dict(self.counters),
            "rejected": dict(self.rejected.counts),
            "takeover_ms": [round(x, 1) for x in self.takeover_ms],
            "engine": self.service.metrics(),
        }


def run_worker(config: Any, worker_config: MqttWorkerConfig, auth: MqttAuth | None, announce: Any = print) -> None:
    """Load the model of ``config`` (a :class:`~agentkit.apps.serve.config.ServeConfig`) and run one worker
    until SIGINT/SIGTERM, which hand its streams over before it exits."""
    import signal

    import torch

    from agentkit.apps.serve.app import model_name_for
    from agentkit.apps.serve.server import load_model
    from agentkit.policies.vlm.batch import cpu_attention_gqa

    config.check()
    if config.threads:
        torch.set_num_threads(config.threads)
    loaded = load_model(config)
    cpu_attention_gqa(loaded.adapter.device)
    name = config.served_model_name or model_name_for(loaded.source)

    async def main() -> None:
        service = StreamService(config, loaded, name)
        worker = MqttWorker(service, worker_config, auth)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        announce(
            f"agentkit serve: {name} ({loaded.arch}) as MQTT worker {worker.id} on {worker_config.broker} ; "
            f"max_batch={config.max_batch}, max_streams={config.max_streams}, torch threads={torch.get_num_threads()}"
        )
        await worker.run()

    asyncio.run(main())


__all__ = ["MqttWorker", "MqttWorkerConfig", "WorkerFailed", "replay_turns", "run_worker"]
