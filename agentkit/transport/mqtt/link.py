"""The agent side of the MQTT robot bridge: one connection, reconnecting, shared by source and tools.

Why one link: the frames an agent sees and the actions it sends are about the same robot; one client
keeps one reconnect loop (exponential back-off), one view of the robot's session, and lets an action
name the frame it was decided on (so the node can time the frame-to-action round trip).

Frames go into a latest-wins slot (lossy, bounded to one frame) after the :class:`Freshness` filter
drops stale, future and out-of-order ones; requests (actions, control) await their result by id with a
timeout. Every incoming message is size-checked and validated (:class:`FrameHeader`,
:class:`ResultMsg`, :class:`StatusMsg`, :class:`StateMsg`); a bad one is dropped and counted in
``link.rejected`` — it never ends the connection loop, and an unexpected error inside the loop is logged,
counted (``loop_errors``) and followed by a reconnect.

Whom to believe about liveness (``online``): the node's retained ``status`` names its ``session``. An
"offline" status puts *that session* offline — until a fresh frame of that session stamped after the
status arrives (a node that still publishes frames is alive, whatever a status says); frames of a session
never declared offline put it online. So a forged retained "offline" (or a stale last will of an earlier
run) cannot block an agent while the node streams. Integrity against forgers is the broker ACL's job
(``configs/mosquitto/acl``: only the robot's user may publish its frames and status).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from typing import Any

from agentkit.errors import SourceError, ToolError
from agentkit.transport.mqtt.auth import MqttAuth, resolve_auth
from agentkit.transport.mqtt.wire import (
    MAX_FRAME_BYTES,
    MAX_JSON_BYTES,
    MAX_SKEW_S,
    BrokerSpec,
    FrameHeader,
    Freshness,
    Rejections,
    ResultMsg,
    StateMsg,
    StatusMsg,
    WireError,
    check_size,
    check_time,
    decode_jpeg,
    dumps,
    loads,
    parse,
    unpack,
)
from agentkit.types import Frame

log = logging.getLogger(__name__)


class RobotLink:
    """A reconnecting MQTT client for one robot node (``agentkit/<name>/...``).

    Args:
        spec: broker address and robot name.
        privileged: also subscribe to the node's ``state`` (for the expert and evaluation).
        max_age_s: frames older than this (node clock) are dropped as stale.
        max_skew_s: messages stamped more than this in the future are dropped.
        auth: login and TLS (``None``: from the ``AGENTKIT_MQTT_*`` environment, else anonymous).
    """

    def __init__(
        self,
        spec: BrokerSpec,
        *,
        privileged: bool = False,
        max_age_s: float | None = 2.0,
        max_skew_s: float = MAX_SKEW_S,
        backoff_max_s: float = 5.0,
        auth: MqttAuth | None = None,
    ) -> None:
        self.spec = spec
        self.privileged = privileged
        self.backoff_max_s = backoff_max_s
        self.max_skew_s = max_skew_s
        self.freshness = Freshness(max_age_s, max_skew_s)
        self._client_options = resolve_auth(auth).client_options(spec)
        self.client: Any = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.last_error: str | None = None
        self.loop_errors = 0
        self.online: bool | None = None
        self.session: str | None = None  # the node run currently believed live
        self.status_contradicted = 0  # offline statuses overruled by frames of that session
        self._offline: collections.OrderedDict[str, float] = collections.OrderedDict()  # session -> status t
        self._online = asyncio.Event()
        self.frames_in = 0
        self.frames_dropped = 0  # overwritten in the slot before anyone read them
        self.rejected = Rejections(log, f"MQTT link {spec.name}")
        self.state: dict[str, Any] | None = None
        self._frame: Frame | None = None
        self._new = asyncio.Event()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._frame_t: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._t0 = time.monotonic()

    @property
    def malformed(self) -> int:
        """Messages dropped as malformed, too large, or ill-timed (all reasons; see ``rejected.counts``)."""
        return self.rejected.total

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self, timeout_s: float = 10.0) -> None:
        """Start the connection loop and wait for the first connection.

        Raises:
            SourceError: if the broker cannot be reached (or refuses the login) within ``timeout_s``.
        """
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mqtt-link-{self.spec.name}")
        try:
            await asyncio.wait_for(self.connected.wait(), timeout_s)
        except TimeoutError:
            await self.close()
            why = f" ({self.last_error})" if self.last_error else ""
            raise SourceError(f"cannot reach the MQTT broker at {self.spec.host}:{self.spec.port}{why}") from None

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()

    async def _run(self) -> None:
        import aiomqtt

        backoff = 0.1
        while not self._closed:
            try:
                async with aiomqtt.Client(
                    self.spec.host,
                    self.spec.port,
                    identifier=f"agentkit-agent-{self.spec.name}-{uuid.uuid4().hex[:8]}",
                    keepalive=5,
                    timeout=2,  # also bounds the wait for the broker's goodbye when closing
                    **self._client_options,
                ) as client:
                    for kind in ("frame", "result", "status") + (("state",) if self.privileged else ()):
                        await client.subscribe(self.spec.topic(kind), qos=1 if kind in ("result", "status") else 0)
                    self.client = client
                    self.connects += 1
                    self.last_error = None
                    self.connected.set()
                    backoff = 0.1
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
                        self._on_message(str(message.topic), bytes(payload))
            except aiomqtt.MqttError as e:
                self.last_error = str(e)
                log.warning("MQTT link %s: broker lost (%s); retry in %.1f s", self.spec.name, e, backoff)
            except Exception as e:  # a bug, not the network: never a dead link that looks alive
                self.loop_errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("MQTT link %s: unexpected error; reconnecting in %.1f s", self.spec.name, backoff)
            finally:
                self.connected.clear()
                self.client = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)

    # -- incoming ------------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes) -> None:
        """One incoming message: taken, or dropped and counted. Never raises."""
        kind = topic.rsplit("/", 1)[-1]
        try:
            if kind == "frame":
                self._on_frame(payload)
            elif kind == "result":
                self._on_result(payload)
            elif kind == "status":
                self._on_status(payload)
            elif kind == "state":
                state = parse(StateMsg, loads(payload, MAX_JSON_BYTES))
                check_time(state.t, time.time(), None, self.max_skew_s)
                self.state = state.model_dump()
        except WireError as e:
            self.rejected(e.reason, f"{kind}: {e}")
        except Exception as e:  # a bug: counted and logged with its traceback, the link goes on
            self.rejected("internal", f"{kind}: {type(e).__name__}: {e}", exc_info=e)

    def _on_frame(self, payload: bytes) -> None:
        check_size(payload, MAX_FRAME_BYTES, "frame")
        raw, body = unpack(payload)
        header = parse(FrameHeader, raw)
        image = decode_jpeg(body, (header.w, header.h))  # decoded before it may advance the sequence
        now = time.time()
        if not self.freshness.admit(header, now):
            return
        self._saw_session(header.session, header.t)
        meta: dict[str, Any] = {"session": header.session, "remote_t": header.t}
        meta["transit_ms"] = round((now - header.t) * 1e3, 3)  # node publish -> received
        mono = time.monotonic()
        frame = Frame(
            image,
            t=mono,
            pts=mono - self._t0,
            seq=header.seq,
            source=self.spec.url,
            meta=meta,
            status=header.status(),
            # the latest scene state (the node publishes it right after its frame)
            privileged=self.state if self.privileged else None,
        )
        self._frame_t[header.seq] = header.t
        while len(self._frame_t) > 256:
            self._frame_t.popitem(last=False)
        if self._frame is not None:
            self.frames_dropped += 1
        self._frame = frame
        self.frames_in += 1
        self._new.set()

    def _on_result(self, payload: bytes) -> None:
        result = parse(ResultMsg, loads(payload, MAX_JSON_BYTES))
        fut = self._pending.pop(result.id, None)
        if fut is not None and not fut.done():
            fut.set_result(result.model_dump())

    def _on_status(self, payload: bytes) -> None:
        status = parse(StatusMsg, loads(payload, MAX_JSON_BYTES))
        check_time(status.t, time.time(), None, self.max_skew_s)
        if status.online:
            self._offline.pop(status.session, None)
            self.session = status.session
            self._set_online(True)
            return
        self._offline[status.session] = status.t
        while len(self._offline) > 64:
            self._offline.popitem(last=False)
        if self.session in (None, status.session):  # an earlier run's last will says nothing about this one
            self._set_online(False)

    def _saw_session(self, session: str, t: float) -> None:
        """A fresh frame of ``session`` stamped ``t``: that run is live unless it said goodbye after ``t``."""
        said_offline = self._offline.get(session)
        if said_offline is not None:
            if t <= said_offline:
                return
            del self._offline[session]
            self.status_contradicted += 1
        if self.session != session or not self.online:
            self.session = session
            self._set_online(True)

    def _set_online(self, online: bool) -> None:
        self.online = online
        if online:
            self._online.set()
        else:
            self._online.clear()

    async def wait_online(self, timeout_s: float = 30.0) -> None:
        """Wait until the node is believed online (its status, or its frames; see the module docstring).

        Raises:
            SourceError: the node is not online within ``timeout_s``.
        """
        try:
            await asyncio.wait_for(self._online.wait(), timeout_s)
        except TimeoutError:
            raise SourceError(f"robot node {self.spec.name!r} is not online on {self.spec.url}") from None

    async def next_frame(self) -> Frame:
        """The newest frame not yet taken (waits for one)."""
        while self._frame is None:
            self._new.clear()
            await self._new.wait()
        frame, self._frame = self._frame, None
        return frame

    def frame_time(self, seq: int) -> float | None:
        """The node's publish time of frame ``seq`` (for the round-trip measurement)."""
        return self._frame_t.get(seq)

    def describe(self) -> str:
        """One line on the link's state, for error messages."""
        return (
            f"connected: {'yes' if self.connected.is_set() else 'no'}, node online: {self.online}, "
            f"frames: {self.frames_in}, rejected messages: {self.rejected.total}"
        )

    # -- outgoing ------------------------------------------------------------------------------------
    async def request(self, kind: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Publish an action/control message and wait for its result (a validated :class:`ResultMsg` dict).

        Raises:
            ToolError: the message cannot be encoded or is too large, no connection, or no result within
                ``timeout_s``.
        """
        msg_id = uuid.uuid4().hex
        try:
            payload = dumps({"id": msg_id, "t": time.time(), **body})
            check_size(payload, MAX_JSON_BYTES, kind)
        except (TypeError, ValueError) as e:
            raise ToolError(f"robot {self.spec.name}: cannot send this {kind}: {e}") from None
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                sent_on = await self._send(kind, payload, deadline, timeout_s)
                # Wait for the result; if the connection was lost meanwhile, send the same message again
                # (same id: the node never runs it twice, and re-sends the result if it already finished).
                while self.connects == sent_on and self.connected.is_set():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise ToolError(f"robot {self.spec.name}: no result within {timeout_s:g} s")
                    try:
                        return await asyncio.wait_for(asyncio.shield(fut), min(remaining, 0.25))
                    except TimeoutError:
                        continue
                if fut.done():
                    return fut.result()
        except asyncio.CancelledError:
            if kind == "action":  # the agent gave up (a new instruction): stop the robot too
                task = asyncio.get_running_loop().create_task(self._cancel_remote(msg_id))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            raise
        finally:
            self._pending.pop(msg_id, None)
            if not fut.done():
                fut.cancel()

    async def _cancel_remote(self, ref: str) -> None:
        try:
            await self.request("control", {"cmd": "cancel", "ref": ref}, timeout_s=5.0)
        except ToolError as e:
            log.warning("could not cancel action %s on robot %s: %s", ref, self.spec.name, e)

    async def _send(self, kind: str, payload: bytes, deadline: float, timeout_s: float) -> int:
        """Publish once connected; returns the connection number it went out on."""
        import aiomqtt

        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ToolError(f"robot {self.spec.name}: no connection to the broker within {timeout_s:g} s")
            try:
                await asyncio.wait_for(self.connected.wait(), remaining)
            except TimeoutError:
                continue
            client, n = self.client, self.connects
            try:
                await client.publish(self.spec.topic(kind), payload, qos=1)
                return n
            except (aiomqtt.MqttError, AttributeError):
                await asyncio.sleep(0.05)

    async def control(self, cmd: str, timeout_s: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Send a control command (``reset`` with ``seed``, ``cancel``, ``state``) and return its output."""
        body = {"cmd": cmd, **{k: v for k, v in fields.items() if v is not None}}
        reply = await self.request("control", body, timeout_s)
        if not reply.get("ok"):
            raise ToolError(f"robot {self.spec.name}: {cmd} failed: {reply.get('error')}")
        return dict(reply.get("output") or {})
