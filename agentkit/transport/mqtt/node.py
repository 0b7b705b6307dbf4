"""The robot node: an actor (a simulated or real robot) that lives behind an MQTT broker.

Why: the robot (or a real camera + arm) often runs in another process or on another machine than the
agent. The node knows nothing of one robot in particular: it serves anything that implements
:class:`NodeActor` (``agentkit.envs.robot.arm.RobotArm`` does). It publishes the camera (JPEG), depth
(16-bit PNG) and state at ``fps``, executes the tool calls it receives through its own
:class:`~agentkit.tooling.ToolBox` (so validation, workspace bounds and timeouts are enforced on the robot
side, whatever the network sends), and publishes each result.

Robustness: stale actions (older than ``action_ttl_s``), duplicates and malformed messages are answered
with an error result or dropped, never executed; the action queue is bounded; when the broker goes away
the node keeps the simulation (and a running primitive) going, stops publishing frames, keeps results
in a bounded outbox, and reconnects with exponential back-off; the episode resumes where it was.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from typing import Any, Protocol

import numpy as np

from agentkit.tooling import ToolBox
from agentkit.transport.mqtt.wire import BrokerSpec, dumps, encode_depth, encode_jpeg, loads, pack
from agentkit.types import ActorStatus, ToolCall

log = logging.getLogger(__name__)


class NodeActor(Protocol):
    """What a node serves: a camera, a status, a privileged scene state, and episodes to reset."""

    def reset(self, seed: int | None = None) -> None: ...

    def status(self) -> ActorStatus: ...

    def render(self, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]: ...

    def scene_state(self) -> dict[str, Any]: ...


class RobotNode:
    """Serve one :class:`NodeActor` on ``agentkit/<name>/...`` topics. Run with ``await node.run()``."""

    def __init__(
        self,
        spec: BrokerSpec,
        robot: NodeActor,
        toolbox: ToolBox,
        *,
        fps: float = 15.0,
        depth: bool = True,
        state: bool = True,
        jpeg_quality: int = 90,
        action_ttl_s: float = 10.0,
        max_pending: int = 16,
        backoff_max_s: float = 5.0,
        seed: int | None = 0,
    ) -> None:
        self.spec = spec
        self.robot = robot
        self.toolbox = toolbox
        self.fps = fps
        self.depth = depth
        self.state = state
        self.jpeg_quality = jpeg_quality
        self.action_ttl_s = action_ttl_s
        self.backoff_max_s = backoff_max_s
        self.session = uuid.uuid4().hex[:12]
        self.seq = 0
        self.client: Any = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.frames_published = 0
        self.frames_dropped = 0
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=max_pending)
        self._outbox: collections.deque[tuple[str, bytes]] = collections.deque(maxlen=256)
        self._seen: collections.OrderedDict[str, bytes | None] = collections.OrderedDict()  # id -> result
        self._current: asyncio.Task[Any] | None = None
        self._current_id: str | None = None
        self._cancelled: set[str] = set()  # ids cancelled while still queued
        self._stop = asyncio.Event()
        self._initial_seed = seed

    def stop(self) -> None:
        self._stop.set()

    # -- publishing --------------------------------------------------------------------------------
    async def _publish(self, kind: str, payload: bytes, qos: int = 0, retain: bool = False, keep: bool = False) -> bool:
        import aiomqtt

        client = self.client
        if client is None or not self.connected.is_set():
            if keep:
                self._outbox.append((kind, payload))
            return False
        try:
            await client.publish(self.spec.topic(kind), payload, qos=qos, retain=retain)
            return True
        except aiomqtt.MqttError:
            if keep:
                self._outbox.append((kind, payload))
            return False

    async def _reply(self, msg_id: Any, ok: bool, **fields: Any) -> None:
        payload = dumps({"id": msg_id, "ok": ok, "t": time.time(), **fields})
        if msg_id in self._seen:
            self._seen[msg_id] = payload
        await self._publish("result", payload, qos=1, keep=True)

    async def _camera(self) -> None:
        period = 1.0 / self.fps
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            n += 1
            if self.connected.is_set():
                rgb, depth = self.robot.render(depth=self.depth)
                self.seq += 1
                header = {
                    "session": self.session,
                    "seq": self.seq,
                    "t": time.time(),
                    "w": rgb.shape[1],
                    "h": rgb.shape[0],
                    **self.robot.status().to_dict(),
                }
                if await self._publish("frame", pack(header, encode_jpeg(rgb, self.jpeg_quality))):
                    self.frames_published += 1
                else:
                    self.frames_dropped += 1
                if depth is not None:
                    await self._publish("depth", pack({**header, "unit": "mm", "format": "png16"}, encode_depth(depth)))
                if self.state:
                    s = {"session": self.session, "seq": self.seq, "t": header["t"], **self.robot.scene_state()}
                    await self._publish("state", dumps(s))
            else:
                self.frames_dropped += 1
            await asyncio.sleep(max(0.0, start + n * period - time.monotonic()))

    # -- receiving ---------------------------------------------------------------------------------
    async def _handle(self, topic: str, payload: bytes) -> None:
        try:
            msg = loads(payload)
        except ValueError as e:
            log.warning("dropping malformed message on %s: %s", topic, e)
            return
        msg_id = msg.get("id")
        if not isinstance(msg_id, str) or not msg_id:
            log.warning("dropping message without an id on %s", topic)
            return
        if msg_id in self._seen:
            # A duplicate (QoS 1 redelivery, or the agent re-sending after a reconnect): answer again if
            # it has finished, never run it twice.
            done = self._seen[msg_id]
            if done is not None:
                await self._publish("result", done, qos=1, keep=True)
            return
        self._seen[msg_id] = None
        while len(self._seen) > 1024:
            self._seen.popitem(last=False)
        now = time.time()
        age = now - float(msg.get("t", 0.0) or 0.0)
        if age > self.action_ttl_s:
            await self._reply(msg_id, False, error=f"stale message: sent {age:.1f} s ago (ttl {self.action_ttl_s:g} s)")
            return
        if topic.endswith("/control"):
            await self._control(msg_id, msg)
            return
        msg["_recv"] = now
        try:
            self._queue.put_nowait(msg)
        except asyncio.QueueFull:
            await self._reply(msg_id, False, error=f"robot busy: {self._queue.qsize()} actions already queued")

    async def _control(self, msg_id: str, msg: dict[str, Any]) -> None:
        cmd = msg.get("cmd")
        ref = msg.get("ref")
        if cmd == "cancel" and isinstance(ref, str):  # one action: the agent gave up on it
            n = 0
            if ref == self._current_id:
                n = await self._cancel_current()
            elif ref not in self._cancelled:
                self._cancelled.add(ref)
            await self._reply(msg_id, True, output={"cancelled": n, **self.robot.status().to_dict()})
        elif cmd in ("reset", "cancel"):
            cancelled = await self._cancel_all()
            if cmd == "reset":
                seed = msg.get("seed")
                self.robot.reset(seed=int(seed) if isinstance(seed, int) else None)
            await self._reply(msg_id, True, output={"cancelled": cancelled, **self.robot.status().to_dict()})
        elif cmd == "state":
            await self._reply(msg_id, True, output=self.robot.scene_state())
        else:
            await self._reply(msg_id, False, error=f"unknown control command {cmd!r}; known: reset, cancel, state")

    async def _cancel_all(self) -> int:
        n = 0
        while not self._queue.empty():
            msg = self._queue.get_nowait()
            await self._reply(msg["id"], False, error="cancelled before it started")
            n += 1
        return n + await self._cancel_current()

    async def _cancel_current(self) -> int:
        task = self._current
        if task is None or task.done():
            return 0
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        return 1

    async def _worker(self) -> None:
        while True:
            msg = await self._queue.get()
            call_d = msg.get("call")
            if not isinstance(call_d, dict) or not isinstance(call_d.get("name"), str):
                await self._reply(msg["id"], False, error="action has no call {name, arguments}")
                continue
            if msg["id"] in self._cancelled:
                self._cancelled.discard(msg["id"])
                await self._reply(msg["id"], False, error="cancelled before it started")
                continue
            call = ToolCall(call_d["name"], call_d.get("arguments", {}), msg["id"])
            extra: dict[str, Any] = {}
            frame_t = msg.get("frame_t")
            if isinstance(frame_t, (int, float)):
                extra["frame_to_action_ms"] = round((msg["_recv"] - frame_t) * 1e3, 3)
            self._current = asyncio.create_task(self.toolbox.run(call, int(msg.get("frame_seq", -1) or -1)))
            self._current_id = msg["id"]
            try:
                result = await self._current
            except asyncio.CancelledError:
                if self._stop.is_set():
                    raise
                await self._reply(msg["id"], False, error=f"{call.name}: cancelled", **extra)
                continue
            finally:
                self._current = None
                self._current_id = None
            await self._reply(
                msg["id"],
                result.ok,
                output=result.to_dict()["output"],
                error=result.error,
                duration_ms=round(result.duration_ms, 3),
                **extra,
            )

    # -- connection --------------------------------------------------------------------------------
    async def _connection(self) -> None:
        import aiomqtt

        backoff = 0.1
        status = self.spec.topic("status")
        while not self._stop.is_set():
            will = aiomqtt.Will(status, dumps({"online": False, "session": self.session}), qos=1, retain=True)
            try:
                async with aiomqtt.Client(
                    self.spec.host,
                    self.spec.port,
                    identifier=f"agentkit-node-{self.spec.name}-{self.session}",
                    will=will,
                    keepalive=5,
                    timeout=2,  # also bounds the wait for the broker's goodbye when stopping
                ) as client:
                    self.client = client
                    await client.subscribe(self.spec.topic("action"), qos=1)
                    await client.subscribe(self.spec.topic("control"), qos=1)
                    online = {"online": True, "session": self.session, "t": time.time(), "fps": self.fps}
                    await client.publish(status, dumps(online), qos=1, retain=True)
                    self.connects += 1
                    self.connected.set()
                    backoff = 0.1
                    log.info("robot node %s connected to %s", self.spec.name, self.spec.url)
                    while self._outbox:
                        kind, payload = self._outbox.popleft()
                        await client.publish(self.spec.topic(kind), payload, qos=1)
                    async for message in client.messages:
                        await self._handle(str(message.topic), bytes(message.payload))
            except aiomqtt.MqttError as e:
                log.warning("robot node %s: broker lost (%s); retry in %.1f s", self.spec.name, e, backoff)
            finally:
                self.connected.clear()
                self.client = None
            if self._stop.is_set():
                break
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=backoff)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, self.backoff_max_s)

    async def _offline(self) -> None:
        import aiomqtt

        try:
            async with aiomqtt.Client(self.spec.host, self.spec.port, timeout=2) as c:
                off = dumps({"online": False, "session": self.session})
                await c.publish(self.spec.topic("status"), off, qos=1, retain=True)
        except aiomqtt.MqttError:
            pass

    async def run(self) -> None:
        """Serve until :meth:`stop` (or cancellation). A fresh episode starts with ``seed``."""
        self.robot.reset(seed=self._initial_seed)
        tasks = [
            asyncio.create_task(self._connection(), name="mqtt-connection"),
            asyncio.create_task(self._camera(), name="camera"),
            asyncio.create_task(self._worker(), name="actions"),
        ]
        try:
            await self._stop.wait()
        finally:
            self._stop.set()
            said_goodbye = await self._goodbye()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if not said_goodbye:
                await self._offline()

    async def _goodbye(self) -> bool:
        """Publish the retained offline status on the live connection (a clean stop, not the will)."""
        import aiomqtt

        client = self.client
        if client is None or not self.connected.is_set():
            return False
        off = dumps({"online": False, "session": self.session})
        try:
            await asyncio.wait_for(client.publish(self.spec.topic("status"), off, qos=1, retain=True), 2.0)
            return True
        except (aiomqtt.MqttError, TimeoutError):
            return False
