"""The robot node: an actor (a simulated or real robot) that lives behind an MQTT broker.

Why: the robot (or a real camera + arm) often runs in another process or on another machine than the
agent. The node knows nothing of one robot in particular: it serves anything that implements
:class:`NodeActor` (``agentkit.envs.robot.arm.RobotArm`` does). It publishes the camera (JPEG), depth
(16-bit PNG) and state at ``fps``, executes the tool calls it receives through its own
:class:`~agentkit.tooling.ToolBox` (so validation, workspace bounds and timeouts are enforced on the robot
side, whatever the network sends), and publishes each result.

Untrusted input: every ``action``/``control`` payload is size-checked, parsed and validated
(:class:`~agentkit.transport.mqtt.wire.ActionMsg`, :class:`~agentkit.transport.mqtt.wire.ControlMsg`)
before anything runs; stale, future, duplicate and malformed messages are never executed, each rejection
is counted (``node.rejected.counts``), logged (rate-limited) and, when the message carries a usable
``id``, answered with an error result. The action queue is bounded.

Never a live-looking zombie: the three tasks (connection, camera, actions) are supervised; a task that
dies is restarted (at most ``max_restarts`` times a minute), after which — or on a fatal error such as a
refused login — the node publishes its retained status as offline and :meth:`RobotNode.run` raises
:class:`NodeFailed` (the CLI exits non-zero). If someone else writes the node's retained status (a forged
"offline"), the node publishes its own again.

When the broker goes away the node keeps the simulation (and a running primitive) going, stops publishing
frames, keeps results in a bounded outbox, and reconnects with exponential back-off; the episode resumes
where it was.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import numpy as np

from agentkit.errors import AgentkitError
from agentkit.tooling import ToolBox
from agentkit.transport.mqtt.auth import MqttAuth, connect_refused, resolve_auth
from agentkit.transport.mqtt.wire import (
    MAX_FRAME_BYTES,
    MAX_JSON_BYTES,
    MAX_SKEW_S,
    ActionMsg,
    BrokerSpec,
    ControlMsg,
    Rejections,
    StatusMsg,
    WireError,
    check_time,
    dumps,
    encode_depth,
    encode_jpeg,
    loads,
    pack,
    parse,
    sniff_id,
    usable_id,
)
from agentkit.types import ActorStatus, ToolCall

log = logging.getLogger(__name__)
_MAX_ERROR = 2000  # characters of an error string in a result (the agent accepts up to 4096)


class NodeActor(Protocol):
    """What a node serves: a camera, a status, a privileged scene state, and episodes to reset."""

    def reset(self, seed: int | None = None) -> None: ...

    def status(self) -> ActorStatus: ...

    def render(self, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]: ...

    def scene_state(self) -> dict[str, Any]: ...


class NodeFailed(AgentkitError):
    """The node stopped because a task kept failing or the broker refused it; its status says offline."""


class RobotNode:
    """Serve one :class:`NodeActor` on ``agentkit/<name>/...`` topics. Run with ``await node.run()``.

    Args:
        spec: broker address and robot name.
        robot: the actor.
        toolbox: the tools the node executes (validated here whatever the agent checked).
        auth: login and TLS (``None``: from the ``AGENTKIT_MQTT_*`` environment, else anonymous).
        action_ttl_s: actions and controls older than this are answered ``stale`` and not run.
        max_skew_s: ... and those stamped more than this in the future are answered ``from the future``.
        max_restarts: restarts allowed per task within a minute before the node gives up.
    """

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
        max_skew_s: float = MAX_SKEW_S,
        max_pending: int = 16,
        backoff_max_s: float = 5.0,
        seed: int | None = 0,
        auth: MqttAuth | None = None,
        max_restarts: int = 3,
    ) -> None:
        self.spec = spec
        self.robot = robot
        self.toolbox = toolbox
        self.fps = fps
        self.depth = depth
        self.state = state
        self.jpeg_quality = jpeg_quality
        self.action_ttl_s = action_ttl_s
        self.max_skew_s = max_skew_s
        self.backoff_max_s = backoff_max_s
        self.max_restarts = max_restarts
        self._client_options = resolve_auth(auth).client_options(spec)  # bad TLS files fail here, not later
        self.session = uuid.uuid4().hex[:12]
        self.seq = 0
        self.client: Any = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.frames_published = 0
        self.frames_dropped = 0
        self.rejected = Rejections(log, f"robot node {spec.name}")
        self.restarts: collections.Counter[str] = collections.Counter()
        self.status_restored = 0  # times someone else's status was replaced by ours
        self.failure: NodeFailed | None = None
        self._queue: asyncio.Queue[tuple[ActionMsg, float]] = asyncio.Queue(maxsize=max_pending)
        self._outbox: collections.deque[tuple[str, bytes]] = collections.deque(maxlen=256)
        self._seen: collections.OrderedDict[str, bytes | None] = collections.OrderedDict()  # id -> result
        self._current: asyncio.Task[Any] | None = None
        self._current_id: str | None = None
        self._cancelled: set[str] = set()  # ids cancelled while still queued
        self._stop = asyncio.Event()
        self._initial_seed = seed
        self._restore: asyncio.Task[None] | None = None
        self._restored_at = -1e9

    def stop(self) -> None:
        self._stop.set()

    def _status(self, online: bool) -> bytes:
        body: dict[str, Any] = {"online": online, "session": self.session, "t": time.time()}
        if online:
            body["fps"] = self.fps
        return dumps(body)

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

    async def _reply(self, msg_id: str, ok: bool, **fields: Any) -> None:
        if isinstance(fields.get("error"), str) and len(fields["error"]) > _MAX_ERROR:
            fields["error"] = fields["error"][:_MAX_ERROR] + "..."
        head = {"id": msg_id, "ok": ok, "t": time.time()}
        try:
            payload = dumps({**head, **fields})
            if len(payload) > MAX_JSON_BYTES:
                raise ValueError(f"{len(payload)} bytes (max {MAX_JSON_BYTES})")
        except (TypeError, ValueError) as e:  # NaN in an output, an odd type, too large: still an answer
            payload = dumps({**head, "ok": False, "error": f"the result could not be sent: {e}"})
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
                frame = pack(header, encode_jpeg(rgb, self.jpeg_quality))
                if len(frame) <= MAX_FRAME_BYTES and await self._publish("frame", frame):
                    self.frames_published += 1
                else:
                    self.frames_dropped += 1
                if depth is not None:
                    d = pack({**header, "unit": "mm", "format": "png16"}, encode_depth(depth))
                    if len(d) <= MAX_FRAME_BYTES:
                        await self._publish("depth", d)
                if self.state:
                    s = {"session": self.session, "seq": self.seq, "t": header["t"], **self.robot.scene_state()}
                    await self._publish("state", dumps(s))
            else:
                self.frames_dropped += 1
            await asyncio.sleep(max(0.0, start + n * period - time.monotonic()))

    # -- receiving ---------------------------------------------------------------------------------
    async def _on_message(self, topic: str, payload: bytes) -> None:
        """One incoming message; whatever it holds, the connection and the node go on."""
        kind = topic.rsplit("/", 1)[-1]
        try:
            if kind == "status":
                await self._on_status(payload)
            elif kind in ("action", "control"):
                await self._on_request(kind, payload)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug, not bad input: counted and logged with its traceback, not fatal
            self.rejected("internal", f"{kind}: {type(e).__name__}: {e}", exc_info=e)

    async def _on_request(self, kind: str, payload: bytes) -> None:
        now = time.time()
        try:
            obj = loads(payload, MAX_JSON_BYTES)
        except WireError as e:
            await self._reject(kind, e, sniff_id(payload))
            return
        try:
            msg: ActionMsg | ControlMsg = parse(ActionMsg, obj) if kind == "action" else parse(ControlMsg, obj)
        except WireError as e:
            await self._reject(kind, e, usable_id(obj))
            return
        if msg.id in self._seen:
            # A duplicate (QoS 1 redelivery, or the agent re-sending after a reconnect): answer again if
            # it has finished, never run it twice.
            done = self._seen[msg.id]
            if done is not None:
                await self._publish("result", done, qos=1, keep=True)
            return
        self._seen[msg.id] = None
        while len(self._seen) > 1024:
            self._seen.popitem(last=False)
        try:
            check_time(msg.t, now, self.action_ttl_s, self.max_skew_s)
        except WireError as e:
            await self._reject(kind, e, msg.id)
            return
        try:
            if isinstance(msg, ControlMsg):
                await self._control(msg)
                return
            try:
                self._queue.put_nowait((msg, now))
            except asyncio.QueueFull:
                await self._reply(msg.id, False, error=f"robot busy: {self._queue.qsize()} actions already queued")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # e.g. the actor's reset raised: an answer, and the node serves on
            self.rejected("internal", f"{kind} {msg.id}: {type(e).__name__}: {e}", exc_info=e)
            await self._reply(msg.id, False, error=f"{kind} failed on the node: {type(e).__name__}: {e}")

    async def _reject(self, kind: str, e: WireError, msg_id: str | None) -> None:
        self.rejected(e.reason, f"{kind}{f' {msg_id}' if msg_id else ''}: {e}")
        if msg_id is not None:
            await self._reply(msg_id, False, error=f"rejected {kind}: {e}")

    async def _control(self, msg: ControlMsg) -> None:
        if msg.cmd == "cancel" and msg.ref is not None:  # one action: the agent gave up on it
            n = 0
            if msg.ref == self._current_id:
                n = await self._cancel_current()
            elif len(self._cancelled) < 1024:
                self._cancelled.add(msg.ref)
            await self._reply(msg.id, True, output={"cancelled": n, **self.robot.status().to_dict()})
        elif msg.cmd in ("reset", "cancel"):
            cancelled = await self._cancel_all()
            if msg.cmd == "reset":
                self.robot.reset(seed=msg.seed)
            await self._reply(msg.id, True, output={"cancelled": cancelled, **self.robot.status().to_dict()})
        else:  # state (the model admits nothing else)
            await self._reply(msg.id, True, output=self.robot.scene_state())

    async def _on_status(self, payload: bytes) -> None:
        """Someone else wrote our retained status (a forged "offline", a stray node): publish ours again."""
        try:
            status: StatusMsg | None = parse(StatusMsg, loads(payload))
        except WireError:
            status = None
        if status is not None and status.session == self.session and status.online:
            return
        if self._stop.is_set() or not self.connected.is_set():
            return  # our own goodbye, or we are about to say one
        self.rejected("status", "another client wrote this node's status topic; publishing ours again")
        if self._restore is None or self._restore.done():
            self._restore = asyncio.create_task(self._restore_status())

    async def _restore_status(self) -> None:
        await asyncio.sleep(max(0.0, self._restored_at + 1.0 - time.monotonic()))  # at most once a second
        if not self._stop.is_set() and await self._publish("status", self._status(True), qos=1, retain=True):
            self._restored_at = time.monotonic()
            self.status_restored += 1

    async def _cancel_all(self) -> int:
        n = 0
        while not self._queue.empty():
            msg, _ = self._queue.get_nowait()
            await self._reply(msg.id, False, error="cancelled before it started")
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
            msg, received = await self._queue.get()
            try:
                await self._execute(msg, received)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a bug around the tool call (the ToolBox catches the tool's own errors)
                self.rejected("internal", f"action {msg.id}: {type(e).__name__}: {e}", exc_info=e)
                await self._reply(msg.id, False, error=f"action failed on the node: {type(e).__name__}: {e}")

    async def _execute(self, msg: ActionMsg, received: float) -> None:
        if msg.id in self._cancelled:
            self._cancelled.discard(msg.id)
            await self._reply(msg.id, False, error="cancelled before it started")
            return
        call = ToolCall(msg.call.name, dict(msg.call.arguments), msg.id)
        extra: dict[str, Any] = {}
        if msg.frame_t is not None:
            extra["frame_to_action_ms"] = round((received - msg.frame_t) * 1e3, 3)
        seq = msg.frame_seq if msg.frame_seq is not None else -1
        self._current = asyncio.create_task(self.toolbox.run(call, seq))
        self._current_id = msg.id
        try:
            result = await self._current
        except asyncio.CancelledError:
            if self._stop.is_set():
                raise
            await self._reply(msg.id, False, error=f"{call.name}: cancelled", **extra)
            return
        finally:
            self._current = None
            self._current_id = None
        await self._reply(
            msg.id,
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
            will = aiomqtt.Will(status, self._status(False), qos=1, retain=True)
            try:
                async with aiomqtt.Client(
                    self.spec.host,
                    self.spec.port,
                    identifier=f"agentkit-node-{self.spec.name}-{self.session}",
                    will=will,
                    keepalive=5,
                    timeout=2,  # also bounds the wait for the broker's goodbye when stopping
                    **self._client_options,
                ) as client:
                    self.client = client
                    await client.subscribe(self.spec.topic("action"), qos=1)
                    await client.subscribe(self.spec.topic("control"), qos=1)
                    await client.publish(status, self._status(True), qos=1, retain=True)
                    # after our own retained status is in place: anything else arriving there is not ours
                    await client.subscribe(status, qos=1)
                    self.connects += 1
                    self.connected.set()
                    backoff = 0.1
                    log.info("robot node %s connected to %s", self.spec.name, self.spec.url)
                    while self._outbox:
                        kind, payload = self._outbox.popleft()
                        await client.publish(self.spec.topic(kind), payload, qos=1)
                    async for message in client.messages:
                        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
                        await self._on_message(str(message.topic), bytes(payload))
            except aiomqtt.MqttError as e:
                if connect_refused(e) and self.connects == 0:
                    raise NodeFailed(
                        f"robot node {self.spec.name}: the broker at {self.spec.host}:{self.spec.port} refused the "
                        f"login ({e}); check --username and the password"
                    ) from None
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
            async with aiomqtt.Client(self.spec.host, self.spec.port, timeout=2, **self._client_options) as c:
                await c.publish(self.spec.topic("status"), self._status(False), qos=1, retain=True)
        except aiomqtt.MqttError:
            pass

    # -- supervision -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Serve until :meth:`stop` (or cancellation). A fresh episode starts with ``seed``.

        Raises:
            NodeFailed: a task kept failing (more than ``max_restarts`` times within a minute) or the broker
                refused the login; the retained status says offline by then.
        """
        self.robot.reset(seed=self._initial_seed)
        jobs: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "connection": self._connection,
            "camera": self._camera,
            "actions": self._worker,
        }
        tasks: dict[asyncio.Task[Any], str] = {
            asyncio.create_task(job(), name=f"node-{name}"): name for name, job in jobs.items()
        }
        history: dict[str, collections.deque[float]] = {name: collections.deque() for name in jobs}
        stop: asyncio.Task[Any] = asyncio.create_task(self._stop.wait(), name="node-stop")
        try:
            while not self._stop.is_set():
                done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is stop or self._stop.is_set():
                        continue
                    name = tasks.pop(task)
                    error = task.exception() if not task.cancelled() else asyncio.CancelledError()
                    what = f"{type(error).__name__}: {error}" if error is not None else "it returned"
                    recent = history[name]
                    now = time.monotonic()
                    while recent and now - recent[0] > 60.0:
                        recent.popleft()
                    if isinstance(error, NodeFailed) or len(recent) >= self.max_restarts:
                        self.failure = (
                            error
                            if isinstance(error, NodeFailed)
                            else NodeFailed(
                                f"robot node {self.spec.name}: the {name} task failed {len(recent) + 1} times "
                                f"within a minute; last: {what}"
                            )
                        )
                        log.error("%s; stopping (status: offline)", self.failure, exc_info=error)
                        self._stop.set()
                        break
                    recent.append(now)
                    self.restarts[name] += 1
                    log.error(
                        "robot node %s: the %s task died (%s); restarting it (%d/%d this minute)",
                        self.spec.name,
                        name,
                        what,
                        len(recent),
                        self.max_restarts,
                        exc_info=error,
                    )
                    tasks[asyncio.create_task(jobs[name](), name=f"node-{name}")] = name
        finally:
            self._stop.set()
            await self._answer_unfinished("the robot node is stopping")
            said_goodbye = await self._goodbye()
            for t in [*tasks, stop]:
                t.cancel()
            if self._restore is not None:
                self._restore.cancel()
            await asyncio.gather(*tasks, stop, return_exceptions=True)
            if not said_goodbye:
                await self._offline()
        if self.failure is not None:
            raise self.failure

    async def _answer_unfinished(self, reason: str) -> None:
        """Every accepted action gets an answer, even when the node stops before (or while) running it."""
        try:
            while not self._queue.empty():
                msg, _ = self._queue.get_nowait()
                await self._reply(msg.id, False, error=f"not run: {reason}")
            running = self._current_id
            if running is not None and await self._cancel_current():
                await self._reply(running, False, error=f"stopped mid-action: {reason}")
        except Exception as e:  # stopping must go on: the status still has to say offline
            log.warning("robot node %s: could not answer unfinished actions: %s", self.spec.name, e)

    async def _goodbye(self) -> bool:
        """Publish the retained offline status on the live connection (a clean stop, not the will)."""
        import aiomqtt

        client = self.client
        if client is None or not self.connected.is_set():
            return False
        try:
            await asyncio.wait_for(
                client.publish(self.spec.topic("status"), self._status(False), qos=1, retain=True), 2.0
            )
            return True
        except (aiomqtt.MqttError, TimeoutError):
            return False
