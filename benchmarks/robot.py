"""``agentkit eval fetch|panda``: seeded pick-and-place episodes of a robot policy, in-process or on a node.

Why: the success rate of a policy must come from the path a live run takes. Each episode runs through
the one episode runner (:func:`agentkit.episode.run_episode`, the loop in turn-based mode) against
:class:`~agentkit.envs.robot.episode.ArmEpisodeEnv` (the simulation in this process) or
:class:`~agentkit.envs.robot.episode.RemoteArmEpisodeEnv` (a robot node behind MQTT). ``--record DIR``
keeps every episode as a recording (frames, decisions, actions) to replay or train on, plus annotated
videos of the episodes asked for.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentkit.annotate import AnnotatedVideoSink
from agentkit.benchmarks.report import Report
from agentkit.episode import EpisodeResult, run_episode
from agentkit.errors import ConfigError
from agentkit.policy import Policy, make_policy
from agentkit.recorder import Recorder
from agentkit.sinks import Sink
from agentkit.transport.mqtt.auth import MqttAuth

POLICIES = {"expert": "fetch-expert", "pixels": "fetch-pixels", "vlm": "fetch-vlm"}
POINT_LABELS = ("block", "target")


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


class EvalConfig(BaseModel):
    """One ``agentkit eval fetch`` run; a bad value names the option."""

    model_config = ConfigDict(extra="forbid")

    policy: str = "pixels"
    episodes: int = Field(50, ge=1)
    seed: int = 0
    record: Path | None = None
    video_episodes: set[int] = Field(default_factory=set)
    node: str | None = None  # mqtt[s]://host:port/name: run against a robot node in another process
    mqtt: MqttAuth | None = None  # login and TLS for --node (None: AGENTKIT_MQTT_* environment); not reported
    model: str | None = None
    max_steps: int = Field(300, ge=10)
    max_decisions: int = Field(60, ge=1)
    width: int = 320
    height: int = 240
    timeout_s: float = Field(30.0, gt=0)
    env: str = "fetch"
    place_noise: float = Field(0.0, ge=0.0, le=0.5)  # move each episode's first executed place (DART recording)

    @model_validator(mode="after")
    def _noise_is_local(self) -> EvalConfig:
        if self.place_noise and self.node:
            raise ValueError("place_noise perturbs the simulation in this process; it cannot be used with --node")
        return self


def parse_indices(text: str | None) -> set[int]:
    """``"0,1,5"`` -> ``{0, 1, 5}``; ``ConfigError`` naming the bad item otherwise."""
    out = set()
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit():
            raise ConfigError(f"--video-episodes: expected episode indices like 0,1 got {item!r}")
        out.add(int(item))
    return out


def _percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p95": round(float(np.percentile(values, 95)), 2),
        "n": len(values),
    }


def _row(r: EpisodeResult) -> dict[str, Any]:
    """One episode's row; a world with several blocks adds their number and the episode's instruction."""
    row: dict[str, Any] = {"seed": r.seed, "success": r.success, "steps": r.steps, "decisions": r.decisions}
    if "blocks" in r.extra:
        row["blocks"] = r.extra["blocks"]
        row["instruction"] = r.instruction
    return row


def summarize(results: list[EpisodeResult], config: dict[str, Any] | None = None) -> Report:
    """The report: overall success, steps and seconds; one row per seed."""
    n = len(results)
    overall: dict[str, Any] = {
        "success_rate": round(sum(r.success for r in results) / n, 4) if n else 0.0,
        "episodes": n,
        "successes": sum(r.success for r in results),
        "mean_steps": round(statistics.fmean(r.steps for r in results), 2) if n else 0.0,
        "mean_seconds": round(statistics.fmean(r.seconds for r in results), 3) if n else 0.0,
    }
    rtt = [
        float(a["output"]["frame_to_action_ms"])
        for r in results
        for a in r.actions
        if a.get("first_of_decision") and isinstance(a.get("output"), dict) and a["output"].get("frame_to_action_ms")
    ]
    if rtt:
        overall["frame_to_action_ms"] = _percentiles(rtt)
    rows = [_row(r) for r in results]
    episodes = [r.to_dict() for r in results]
    return Report(benchmark="robot", overall=overall, rows=rows, episodes=episodes, config=dict(config or {}))


async def evaluate(cfg: EvalConfig, on_episode: Callable[[EpisodeResult], None] | None = None) -> Report:
    """Run ``cfg.episodes`` seeded episodes (seeds ``seed .. seed+N-1``) and return the report."""
    from agentkit.envs.robot.episode import ArmEpisodeEnv, RemoteArmEpisodeEnv

    policy = build_policy(cfg.policy, cfg.model)
    closers: list[Callable[[], Any]] = []
    robot = None
    env: ArmEpisodeEnv | RemoteArmEpisodeEnv
    results: list[EpisodeResult] = []
    try:
        if cfg.node:
            from agentkit.tools.robot import remote_robot_toolbox
            from agentkit.transport.mqtt.source import MqttSource

            source = MqttSource(cfg.node, privileged=policy.privileged, max_age_s=2.0, auth=cfg.mqtt)
            await source.open()
            closers.append(source.close)
            await source.link.wait_online(cfg.timeout_s)
            toolbox = remote_robot_toolbox(source.link, timeout_s=cfg.timeout_s)
            env = RemoteArmEpisodeEnv(source.link, toolbox, max_steps=cfg.max_steps, timeout_s=cfg.timeout_s)
        else:
            from agentkit.envs.robot.arm import RobotArm
            from agentkit.envs.robot.worlds import make_sim
            from agentkit.tools.robot import robot_toolbox

            sim = make_sim(cfg.env, cfg.width, cfg.height)
            closers.append(sim.close)
            robot = RobotArm(sim)
            env = ArmEpisodeEnv(
                robot,
                robot_toolbox(robot, timeout_s=cfg.timeout_s),
                max_steps=cfg.max_steps,
                place_noise=cfg.place_noise,
            )
        for i in range(cfg.episodes):
            seed = cfg.seed + i
            sinks: list[Sink] = []
            if cfg.record:
                meta: dict[str, Any] = {"benchmark": "robot", "env": cfg.env, "policy": cfg.policy, "seed": seed}
                if cfg.place_noise:
                    meta["place_noise"] = cfg.place_noise
                sinks.append(Recorder(cfg.record / f"{cfg.env}-{seed}", fps=5.0, meta=meta))
            video = None
            if cfg.record and i in cfg.video_episodes:
                video = AnnotatedVideoSink(
                    cfg.record / f"episode_{i:03d}_seed{seed}.mp4",
                    fps=12.5,
                    hold_response=True,
                    point_labels=POINT_LABELS,
                    use_pts=False,
                )
                sinks.append(video)
                if robot is not None:  # film the motion between decisions too (every other control step)
                    robot.on_step = lambda sim, v=video: (
                        v.add_frame(sim.render(depth=False)[0], f"step {sim.steps}") if sim.steps % 2 == 0 else None
                    )
            try:
                r = await run_episode(
                    env, policy, seed=seed, task=cfg.env, max_decisions=cfg.max_decisions, sinks=sinks
                )
            finally:
                if robot is not None:
                    robot.on_step = None
            results.append(r)
            if on_episode is not None:
                on_episode(r)
    finally:
        for close in reversed(closers):
            res = close()
            if asyncio.iscoroutine(res):
                await res
        policy.close()
    config = cfg.model_dump(mode="json", exclude={"record", "video_episodes", "mqtt"})
    config["policy"] = POLICIES.get(cfg.policy, cfg.policy)
    report = summarize(results, config)
    transit = getattr(env, "transit_ms", None)
    if transit:
        report.overall["frame_transit_ms"] = _percentiles(transit)
    if cfg.record:
        report.write(cfg.record / "eval.json")
    return report
