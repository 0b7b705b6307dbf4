"""The robot app: run a pick-and-place policy live on a robot's camera stream, or serve a robot over MQTT.

Thin wiring only: the world, its primitives and live source live in ``agentkit.envs.robot``, the tools in
``agentkit.tools.robot``, the policies in ``agentkit.policies.robot``, the MQTT node in
``agentkit.transport.mqtt``, and evaluation in ``agentkit.benchmarks.robot``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentkit.annotate import AnnotatedVideoSink
from agentkit.benchmarks.robot import POINT_LABELS, POLICIES, build_policy
from agentkit.errors import ConfigError
from agentkit.loop import LoopConfig, StreamLoop
from agentkit.recorder import Recorder
from agentkit.sinks import Sink
from agentkit.transport.mqtt.auth import MqttAuth
from agentkit.types import Decision, Frame

DEFAULT_TASK = "put the block on the target"  # when neither the user nor the world gives an instruction


class LiveConfig(BaseModel):
    """One ``agentkit robot`` run."""

    model_config = ConfigDict(extra="forbid")

    task: str | None = None  # None: the world's own instruction (fetch-multi), else DEFAULT_TASK
    policy: str = "pixels"
    source: str | None = None  # mqtt[s]://host:port/name, else an in-process simulation
    mqtt: MqttAuth | None = None  # login and TLS for --source (None: AGENTKIT_MQTT_* environment)
    seed: int = 0
    fps: float = Field(10.0, gt=0)
    duration_s: float = Field(30.0, gt=0)
    video: Path | None = None
    record: Path | None = None
    model: str | None = None
    realtime: float = Field(1.0, ge=0)  # simulation speed relative to wall time (0: as fast as possible)
    env: str = "fetch"


class _StopWhenDone(Sink):
    """Ends the run a second after the policy says it is done and the robot is idle."""

    def __init__(self, loop: StreamLoop) -> None:
        self.loop = loop
        self.done_at: float | None = None

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        if self.loop.policy.done and not (frame.status and frame.status.busy):
            self.done_at = self.done_at or time.monotonic()
            if time.monotonic() - self.done_at > 1.0:
                self.loop.stop()


async def run_live(cfg: LiveConfig, sinks: list[Sink] | None = None) -> dict[str, Any]:
    """One live episode through :class:`~agentkit.loop.StreamLoop`; ends when the policy is done."""
    policy = build_policy(cfg.policy, cfg.model, cfg.task)
    sinks = list(sinks or [])
    closers: list[Callable[[], Any]] = []
    outcome: Callable[[], Any]
    if cfg.source:
        from agentkit.tools.robot import remote_robot_toolbox
        from agentkit.transport.mqtt.source import MqttSource

        source: Any = MqttSource(cfg.source, privileged=policy.privileged, auth=cfg.mqtt)
        await source.open()
        closers.append(source.close)
        await source.link.wait_online()
        await source.link.control("reset", seed=cfg.seed)
        toolbox: Any = remote_robot_toolbox(source.link)

        async def outcome() -> Any:
            return await source.link.control("state")

    else:
        from agentkit.envs.robot.arm import RobotArm
        from agentkit.envs.robot.source import RobotCameraSource
        from agentkit.envs.robot.worlds import make_sim
        from agentkit.tools.robot import robot_toolbox

        sim = make_sim(cfg.env)
        closers.append(sim.close)
        robot = RobotArm(sim, realtime=cfg.realtime)
        robot.reset(seed=cfg.seed)
        source = RobotCameraSource(robot, fps=cfg.fps, privileged=policy.privileged)
        toolbox = robot_toolbox(robot)

        async def outcome() -> Any:
            return sim.state()

    task = cfg.task or str((await outcome()).get("instruction") or "") or DEFAULT_TASK
    if cfg.video:
        sinks.append(AnnotatedVideoSink(cfg.video, fps=cfg.fps, hold_response=True, point_labels=POINT_LABELS))
    recorder = None
    if cfg.record:
        recorder = Recorder(cfg.record, fps=cfg.fps, meta={"app": "robot", "task": task, "policy": cfg.policy})
    loop = StreamLoop(
        source, policy, toolbox=toolbox, sinks=sinks, recorder=recorder, config=LoopConfig(duration_s=cfg.duration_s)
    )
    loop.instruct(task, 0.0)
    loop.sinks.append(_StopWhenDone(loop))
    t0 = time.monotonic()
    try:
        if not cfg.source:
            await source.open()
        summary = await loop.run()
        state = await outcome()
    finally:
        await source.close()
        for close in closers:
            res = close()
            if asyncio.iscoroutine(res):
                await res
        policy.close()
    return {
        "task": task,
        "policy": POLICIES.get(cfg.policy, cfg.policy),
        "success": bool(state.get("success")),
        "state": state,
        "seconds": round(time.monotonic() - t0, 2),
        "metrics": summary.metrics,
        "error": summary.error,
    }


async def serve_node(
    broker: str,
    name: str,
    *,
    fps: float = 15.0,
    seed: int = 0,
    depth: bool = True,
    width: int = 320,
    height: int = 240,
    realtime: float = 1.0,
    stop: asyncio.Event | None = None,
    env: str = "fetch",
    auth: MqttAuth | None = None,
) -> None:
    """Run a robot node (``fetch`` or ``panda``) on ``broker`` until cancelled, SIGTERM, or ``stop`` is set.

    ``broker`` is ``mqtt://host:port`` or ``mqtts://host:port`` (TLS); ``name`` (1-64 of ``A-Z a-z 0-9 _ -``)
    overrides a name in the address; ``auth`` is the login and TLS files (``None``: from the
    ``AGENTKIT_MQTT_*`` environment).

    Raises:
        ConfigError: a bad address, name or TLS/password file.
        NodeFailed: a node task kept failing or the broker refused the login; the robot's retained status
            says offline, and the CLI exits non-zero.
    """
    from agentkit.envs.robot.arm import RobotArm
    from agentkit.envs.robot.worlds import make_sim
    from agentkit.tools.robot import robot_toolbox
    from agentkit.transport.mqtt.auth import resolve_auth
    from agentkit.transport.mqtt.node import RobotNode
    from agentkit.transport.mqtt.wire import parse_spec

    try:
        spec = parse_spec(broker, name=name)
        if name and spec.name != name:
            spec = spec.with_name(name)
    except ValueError as e:
        raise ConfigError(f"--broker/--name: {e}") from None
    auth = resolve_auth(auth)
    auth.client_options(spec)  # a bad password or TLS file fails now, before the simulation loads
    sim = make_sim(env, width, height)
    robot = RobotArm(sim, realtime=realtime)
    node = RobotNode(spec, robot, robot_toolbox(robot), fps=fps, depth=depth, seed=seed, auth=auth)
    task = asyncio.create_task(node.run())
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows / not the main thread
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, node.stop)  # say offline, exit 0
    try:
        if stop is not None:  # stop when asked, or sooner if the node fails
            asked = asyncio.create_task(stop.wait())
            await asyncio.wait([task, asked], return_when=asyncio.FIRST_COMPLETED)
            asked.cancel()
            node.stop()
        await task
    finally:
        node.stop()
        if not task.done():
            await task
        sim.close()
