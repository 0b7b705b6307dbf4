"""The agent side of the MQTT robot bridge: one connection, reconnecting, shared by source and tools.

Why one link: the frames an agent sees and the actions it sends are about the same robot; one client
keeps one reconnect loop (exponential back-off), one view of the robot's session, and lets an action
name the frame it was decided on (so the node can time the frame-to-action round trip).

Frames go into a latest-wins slot (lossy, bounded to one frame) after the :class:`Freshness` filter
drops stale and out-of-order ones; requests (actions, control) await their result by id with a timeout.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from typing import Any

from agentkit.errors import SourceError, ToolError
from agentkit.transport.mqtt.wire import BrokerSpec, Freshness, decode_jpeg, dumps, loads, unpack
from agentkit.types import ActorStatus, Frame

log = logging.getLogger(__name__)


class RobotLink:
    """A reconnecting MQTT client for one robot node (``agentkit/<name>/...``)."""

    def __init__(
        self,
        spec: BrokerSpec,
        *,
        privileged: bool = False,
        max_age_s: float | None = 2.0,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.spec = spec
        self.privileged = privileged
        self.backoff_max_s = backoff_max_s
        self.freshness = Freshness(max_age_s)
        self.client: Any = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.online: bool | None = None
        self._online = asyncio.Event()
        self.frames_in = 0
        self.frames_dropped = 0  # overwritten in the slot before anyone read them
        self.malformed = 0
        self.state: dict[str, Any] | None = None
        self._frame: Frame | None = None
        self._new = asyncio.Event()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._frame_t: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._closed = False
        self._t0 = time.monotonic()

    # -- lifecycle -----------------------------------------------------------------------------------
    async def start(self, timeout_s: float = 10.0) -> None:
        """Start the connection loop and wait for the first connection.

        Raises:
            SourceError: if the broker cannot be reached within ``timeout_s``.
        """
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mqtt-link-{self.spec.name}")
        try:
            await asyncio.wait_for(self.connected.wait(), timeout_s)
        except TimeoutError:
            await self.close()
            raise SourceError(f"cannot reach the MQTT broker at {self.spec.host}:{self.spec.port}") from None

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
                ) as client:
                    for kind in ("frame", "result", "status") + (("state",) if self.privileged else ()):
                        await client.subscribe(self.spec.topic(kind), qos=1 if kind in ("result", "status") else 0)
                    self.client = client
                    self.connects += 1
                    self.connected.set()
                    backoff = 0.1
                    async for message in client.messages:
                        self._on_message(str(message.topic), bytes(message.payload))
            except aiomqtt.MqttError as e:
                log.warning("MQTT link %s: broker lost (%s); retry in %.1f s", self.spec.name, e, backoff)
            finally:
                self.connected.clear()
                self.client = None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)

    # -- incoming ------------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes) -> None:
        kind = topic.rsplit("/", 1)[-1]
        try:
            if kind == "frame":
                self._on_frame(payload)
            elif kind == "result":
                msg = loads(payload)
                fut = self._pending.pop(str(msg.get("id")), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif kind == "status":
                self.online = bool(loads(payload).get("online"))
                if self.online:
                    self._online.set()
                else:
                    self._online.clear()
            elif kind == "state":
                self.state = loads(payload)
        except ValueError as e:
            self.malformed += 1
            log.warning("dropping malformed %s message: %s", kind, e)

    def _on_frame(self, payload: bytes) -> None:
        header, body = unpack(payload)
        if not self.freshness.admit(header, time.time()):
            return
        image = decode_jpeg(body)
        seq = int(header["seq"])
        meta: dict[str, Any] = {"session": header.get("session"), "remote_t": float(header["t"])}
        meta["transit_ms"] = round((time.time() - float(header["t"])) * 1e3, 3)  # node publish -> received
        now = time.monotonic()
        frame = Frame(
            image,
            t=now,
            pts=now - self._t0,
            seq=seq,
            source=self.spec.url,
            meta=meta,
            status=ActorStatus.from_dict(header),
            # the latest scene state (the node publishes it right after its frame)
            privileged=self.state if self.privileged else None,
        )
        self._frame_t[seq] = float(header["t"])
        while len(self._frame_t) > 256:
            self._frame_t.popitem(last=False)
        if self._frame is not None:
            self.frames_dropped += 1
        self._frame = frame
        self.frames_in += 1
        self._new.set()

    async def wait_online(self, timeout_s: float = 30.0) -> None:
        """Wait for the node's retained ``status`` to say online.

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

    # -- outgoing ------------------------------------------------------------------------------------
    async def request(self, kind: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Publish an action/control message and wait for its result.

        Raises:
            ToolError: no connection or no result within ``timeout_s``.
        """
        msg_id = uuid.uuid4().hex
        msg = {"id": msg_id, "t": time.time(), **body}
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        deadline = time.monotonic() + timeout_s
        payload = dumps(msg)
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
        reply = await self.request("control", {"cmd": cmd, **fields}, timeout_s)
        if not reply.get("ok"):
            raise ToolError(f"robot {self.spec.name}: {cmd} failed: {reply.get('error')}")
        return dict(reply.get("output") or {})
