"""The robot application: evaluate a Fetch policy, run it live, or serve the robot over MQTT.

Why a thin app module: the CLI (``agentkit eval fetch``, ``agentkit robot``, ``agentkit robot-node``)
and the tests share one wiring of sim -> robot -> tools -> policy -> loop; the pieces themselves live in
``agentkit.envs`` (world, primitives, bridge), ``agentkit.tools.robot`` and ``agentkit.policies``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentkit.errors import ConfigError
from agentkit.policy import Policy, make_policy
from agentkit.types import ActionResult, Decision, DecisionKind, Frame

POLICIES = {"expert": "fetch-expert", "pixels": "fetch-pixels", "vlm": "fetch-vlm"}


def build_policy(kind: str, model: str | None = None, task: str | None = None) -> Policy:
    """``expert`` / ``pixels`` / ``vlm`` (or any registered policy name) -> a policy."""
    name = POLICIES.get(kind, kind)
    kw: dict[str, Any] = {}
    if name == "fetch-vlm":
        if not model:
            raise ConfigError("--policy vlm needs --model PATH (a Qwen2-VL / SmolVLM checkpoint folder)")
        kw["model"] = model
        if task:
            kw["task"] = task
    return make_policy(name, **kw)


def parse_indices(text: str | None) -> set[int]:
    """``"0,1,5"`` -> ``{0, 1, 5}``; ``ConfigError`` naming the bad item otherwise."""
    if not text:
        return set()
    out = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit():
            raise ConfigError(f"--video-episodes: expected episode indices like 0,1 got {item!r}")
        out.add(int(item))
    return out


@dataclass
class EvalConfig:
    policy: str = "pixels"
    episodes: int = 50
    seed: int = 0
    record: Path | None = None
    video_episodes: set[int] = field(default_factory=set)
    node: str | None = None  # mqtt://host:port/name: run against a robot node in another process
    model: str | None = None
    max_steps: int = 300
    width: int = 320
    height: int = 240
    timeout_s: float = 30.0
    env: str = "fetch"

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ConfigError(f"--episodes must be >= 1, got {self.episodes}")
        if self.max_steps < 10:
            raise ConfigError(f"--max-steps must be >= 10, got {self.max_steps}")


class _EpisodeVideo:
    """Annotated frames of one episode -> mp4 (every ``every`` control steps, plus each decision)."""

    def __init__(self, path: Path, every: int = 2) -> None:
        from agentkit.video_io import Mp4Writer

        self.writer = Mp4Writer(path, fps=12.5)
        self.every = every
        self.decision: Decision | None = None
        self.n = 0

    def frame(self, image: np.ndarray, status: str) -> None:
        from agentkit.envs.robot.annotate import annotate, decision_lines

        d = self.decision
        lines = [status, *decision_lines(d)]
        self.writer.write(annotate(image, d.points if d else (), lines))
        self.n += 1

    def close(self) -> None:
        self.writer.close()


async def evaluate(cfg: EvalConfig, on_episode: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Run ``cfg.episodes`` seeded episodes (seeds ``seed .. seed+N-1``) and return the JSON report."""
    from agentkit.benchmarks.robot import LocalBackend, MqttBackend, run_episode, summarize

    policy = build_policy(cfg.policy, cfg.model)
    privileged = POLICIES.get(cfg.policy, cfg.policy) == "fetch-expert"
    results = []
    rtt: list[float] = []
    closers: list[Callable[[], Any]] = []
    robot = None
    try:
        if cfg.node:
            from agentkit.transport.mqtt.source import MqttSource
            from agentkit.transport.mqtt.toolbox import MqttToolBox

            source = MqttSource(cfg.node, privileged=privileged, max_age_s=2.0)
            await source.open()
            closers.append(source.close)
            await source.link.wait_online(cfg.timeout_s)
            backend: Any = MqttBackend(source.link, MqttToolBox(source.link, timeout_s=cfg.timeout_s))
        else:
            from agentkit.envs.robot.arm import RobotArm
            from agentkit.envs.robot.worlds import make_sim
            from agentkit.tools.robot import robot_toolbox

            sim = make_sim(cfg.env, cfg.width, cfg.height)
            closers.append(sim.close)
            robot = RobotArm(sim)
            backend = LocalBackend(robot, robot_toolbox(robot, timeout_s=cfg.timeout_s), privileged=privileged)
        if cfg.record:
            cfg.record.mkdir(parents=True, exist_ok=True)
        for i in range(cfg.episodes):
            seed = cfg.seed + i
            video = None
            on_frame = None
            if cfg.record and i in cfg.video_episodes:
                video = _EpisodeVideo(cfg.record / f"episode_{i:03d}_seed{seed}.mp4")

                def on_frame(frame: Frame, decision: Decision | None, video: _EpisodeVideo = video) -> None:
                    if decision is not None and decision.kind is DecisionKind.RESPONSE:
                        video.decision = decision
                    video.frame(
                        frame.image, f"step {frame.meta.get('steps', 0)}  {decision.kind.value if decision else ''}"
                    )

                if robot is not None:

                    def on_step(sim: Any, video: _EpisodeVideo = video) -> None:
                        if sim.steps % video.every == 0:
                            rgb, _ = sim.render(depth=False)
                            video.frame(rgb, f"step {sim.steps}")

                    robot.on_step = on_step
            try:
                r = await run_episode(backend, policy, seed, max_steps=cfg.max_steps, on_frame=on_frame)
            finally:
                if robot is not None:
                    robot.on_step = None
                if video is not None:
                    video.close()
            rtt.extend(c["output"]["frame_to_action_ms"] for c in r.tool_calls if _first_rtt(c))
            results.append(r)
            if on_episode is not None:
                on_episode(r)
    finally:
        for close in reversed(closers):
            res = close()
            if asyncio.iscoroutine(res):
                await res
        policy.close()
    report: dict[str, Any] = {
        "overall": summarize(results),
        "config": {
            "policy": POLICIES.get(cfg.policy, cfg.policy),
            "env": cfg.env if not cfg.node else None,
            "episodes": cfg.episodes,
            "seed": cfg.seed,
            "max_steps": cfg.max_steps,
            "node": cfg.node,
            "image": [cfg.width, cfg.height] if not cfg.node else None,
        },
        "episodes": [r.to_dict() for r in results],
    }
    if rtt:
        report["overall"]["frame_to_action_ms"] = _percentiles(rtt)
    transit = getattr(backend, "transit_ms", None)
    if transit:
        report["overall"]["frame_transit_ms"] = _percentiles(transit)
    if cfg.record:
        (cfg.record / "eval.json").write_text(json.dumps(report, indent=2))
    return report


def _percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p95": round(float(np.percentile(values, 95)), 2),
        "n": len(values),
    }


def _first_rtt(call: dict[str, Any]) -> bool:
    out = call.get("output")
    return bool(call.get("first_of_decision")) and isinstance(out, dict) and out.get("frame_to_action_ms") is not None


# -- live --------------------------------------------------------------------------------------------------
class AnnotatedVideoSink:
    """A loop sink writing every processed frame with the latest decision's points and calls drawn on it."""

    def __init__(self, path: Path, fps: float) -> None:
        from agentkit.video_io import Mp4Writer

        self.writer = Mp4Writer(path, fps=fps)
        self.decision: Decision | None = None
        self.last_action: str = ""
        self.frames = 0

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        from agentkit.envs.robot.annotate import annotate, decision_lines

        if decision.kind is DecisionKind.RESPONSE:
            self.decision = decision
        d = self.decision
        status = f"t={frame.pts:5.1f}s {decision.kind.value}" + (" busy" if frame.meta.get("busy") else "")
        lines = [status, *decision_lines(d)]
        if self.last_action:
            lines.append(self.last_action)
        self.writer.write(annotate(frame.image, d.points if d else (), lines), frame.pts)
        self.frames += 1

    def on_action(self, result: ActionResult) -> None:
        self.last_action = f"{result.call.name}: {'ok' if result.ok else 'FAILED ' + (result.error or '')}"[:70]

    def close(self) -> None:
        self.writer.close()


@dataclass
class LiveConfig:
    task: str = "put the block on the target"
    policy: str = "pixels"
    source: str | None = None  # mqtt://host:port/name, else an in-process simulation
    seed: int = 0
    fps: float = 10.0
    duration_s: float = 30.0
    video: Path | None = None
    record: Path | None = None
    model: str | None = None
    realtime: float = 1.0  # simulation speed relative to wall time (0: as fast as possible)
    env: str = "fetch"


async def run_live(cfg: LiveConfig, sinks: list[Any] | None = None) -> dict[str, Any]:
    """One live episode through :class:`~agentkit.loop.StreamLoop`; ends when the policy is done."""
    from agentkit.loop import LoopConfig, StreamLoop

    policy = build_policy(cfg.policy, cfg.model, cfg.task)
    privileged = POLICIES.get(cfg.policy, cfg.policy) == "fetch-expert"
    sinks = list(sinks or [])
    closers: list[Callable[[], Any]] = []
    outcome: Callable[[], Any]
    if cfg.source:
        from agentkit.transport.mqtt.source import MqttSource
        from agentkit.transport.mqtt.toolbox import MqttToolBox

        source: Any = MqttSource(cfg.source, privileged=privileged)
        await source.open()
        await source.link.wait_online()
        await source.link.control("reset", seed=cfg.seed)
        toolbox: Any = MqttToolBox(source.link)

        async def outcome() -> Any:
            return await source.link.control("state")

        opened = True
    else:
        from agentkit.envs.robot.arm import RobotArm
        from agentkit.envs.robot.source import RobotCameraSource
        from agentkit.envs.robot.worlds import make_sim
        from agentkit.tools.robot import robot_toolbox

        sim = make_sim(cfg.env)
        closers.append(sim.close)
        robot = RobotArm(sim, realtime=cfg.realtime)
        robot.reset(seed=cfg.seed)
        source = RobotCameraSource(robot, fps=cfg.fps, privileged=privileged)
        toolbox = robot_toolbox(robot)

        async def outcome() -> Any:
            return sim.state()

        opened = False
    if cfg.video:
        sinks.append(AnnotatedVideoSink(cfg.video, cfg.fps))
    recorder = None
    if cfg.record:
        from agentkit.recorder import Recorder

        recorder = Recorder(cfg.record, fps=cfg.fps, meta={"app": "robot", "task": cfg.task, "policy": cfg.policy})
    policy.instruct(cfg.task, 0.0)
    loop = StreamLoop(
        source, policy, toolbox=toolbox, sinks=sinks, recorder=recorder, config=LoopConfig(duration_s=cfg.duration_s)
    )

    from agentkit.sinks import Sink

    class _Stopper(Sink):
        """Ends the run a second after the policy says it is done and the robot is idle."""

        def __init__(self) -> None:
            self.done_at: float | None = None

        def on_decision(self, decision: Decision, frame: Frame) -> None:
            if getattr(policy, "done", False) and not frame.meta.get("busy"):
                self.done_at = self.done_at or time.monotonic()
                if time.monotonic() - self.done_at > 1.0:
                    loop.stop()

        def on_action(self, result: ActionResult) -> None:
            pass

        def close(self) -> None:
            pass

    loop.sinks.append(_Stopper())
    t0 = time.monotonic()
    try:
        if not opened:
            await source.open()
        summary = await loop.run()
        state = await outcome()
    finally:
        await source.close()
        for close in closers:
            close()
        policy.close()
    return {
        "task": cfg.task,
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
    fps: float = 15.0,
    seed: int = 0,
    depth: bool = True,
    width: int = 320,
    height: int = 240,
    realtime: float = 1.0,
    stop: asyncio.Event | None = None,
    env: str = "fetch",
) -> None:
    """Run a robot node (``fetch`` or ``panda``) on ``broker`` until cancelled (or ``stop`` is set)."""
    from agentkit.envs.robot.arm import RobotArm
    from agentkit.envs.robot.worlds import make_sim
    from agentkit.tools.robot import robot_toolbox
    from agentkit.transport.mqtt.node import RobotNode
    from agentkit.transport.mqtt.wire import parse_spec

    try:
        spec = parse_spec(broker, name=name)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if spec.name != name and name:
        spec = type(spec)(spec.host, spec.port, name)
    sim = make_sim(env, width, height)
    robot = RobotArm(sim, realtime=realtime)
    node = RobotNode(spec, robot, robot_toolbox(robot), fps=fps, depth=depth, seed=seed)
    task = asyncio.create_task(node.run())
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows / not the main thread
        loop.add_signal_handler(signal.SIGTERM, node.stop)  # a service manager's stop: say offline, exit 0
    try:
        if stop is not None:
            await stop.wait()
            node.stop()
        await task
    finally:
        node.stop()
        if not task.done():
            await task
        sim.close()
