"""Evaluate a GUI policy on MiniWoB++ tasks: episodes, per-task success, recordings to train on.

Why this module exists: ``agentkit eval miniwob`` and the tests need one episode runner that treats every
policy alike - pixels and the utterance in, a :class:`~agentkit.types.Decision` with GUI tool calls out,
executed through the env's ToolBox - and that never lets one bad step (an unknown tool, malformed
arguments, a point off the viewport, a blocked URL, a hung page) end the run: each becomes an error
recorded on its step. Only a policy that declares ``needs_dom = True`` (the privileged oracle) is handed
the DOM, explicitly, before each step.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentkit.envs.gui.miniwob import AsyncMiniWoBEnv
from agentkit.policy import Policy
from agentkit.types import Decision


@dataclass
class EpisodeResult:
    """One episode's outcome; ``success`` is ``reward > 0`` (MiniWoB++ convention)."""

    task: str
    seed: int
    utterance: str
    reward: float
    raw_reward: float
    success: bool
    steps: int
    seconds: float
    terminated: bool
    errors: list[str] = field(default_factory=list)


def _record_episode(rec_dir: Path, result: EpisodeResult, steps: list[tuple[Decision, Any, list[Any]]]) -> None:
    from agentkit.recorder import Recorder

    rec = Recorder(rec_dir, fps=2.0, meta={"task": result.task, "seed": result.seed})
    try:
        for decision, frame, results in steps:
            rec.on_decision(decision, frame)
            for r in results:
                rec.on_action(r)
    finally:
        rec.close()
    (rec_dir / "episode.json").write_text(json.dumps(asdict(result), indent=2))


async def run_episode(
    env: AsyncMiniWoBEnv,
    policy: Policy,
    seed: int,
    *,
    record_dir: Path | None = None,
    max_idle: int = 3,
) -> EpisodeResult:
    """Run one episode of ``env.task`` with ``policy`` and return its result (never raises for bad steps)."""
    t0 = time.monotonic()
    errors: list[str] = []
    policy.reset()
    if hasattr(policy, "set_task"):
        policy.set_task(env.task)
    obs, _ = await env.reset(seed=seed)
    utterance = obs.utterance
    policy.instruct(utterance)
    reward = raw = 0.0
    terminated = False
    idle = 0
    recorded: list[tuple[Decision, Any, list[Any]]] = []
    while True:
        frame = obs.frame
        if getattr(policy, "needs_dom", False):
            policy.observe_dom(await env.dom())  # type: ignore[attr-defined]
        try:
            decision = await asyncio.to_thread(policy.step, frame)
        except Exception as e:  # a policy bug is an error on this step, not the end of the run
            decision = Decision.standby(seq=frame.seq, pts=frame.pts, errors=[f"policy: {type(e).__name__}: {e}"])
        errors.extend(f"step {env.steps + 1}: {e}" for e in decision.errors)
        calls = list(decision.tool_calls)
        idle = 0 if calls else idle + 1
        obs2, reward, terminated, truncated, info = await env.step(calls)
        errors.extend(f"step {env.steps}: {e}" for e in info.errors)
        raw = info.raw_reward
        recorded.append((decision, frame, info.results))
        if terminated or truncated or obs2 is None:
            break
        if idle >= max_idle:
            errors.append(f"step {env.steps}: policy idle for {max_idle} steps; episode abandoned")
            break
        obs = obs2
    result = EpisodeResult(
        task=env.task,
        seed=seed,
        utterance=utterance,
        reward=reward,
        raw_reward=raw,
        success=reward > 0,
        steps=env.steps,
        seconds=time.monotonic() - t0,
        terminated=terminated,
        errors=errors,
    )
    if record_dir is not None:
        _record_episode(record_dir / f"{env.task}-{seed}", result, recorded)
    return result


def summarize(results: list[EpisodeResult]) -> dict[str, Any]:
    """The JSON report: ``{"overall": {...}, "tasks": {name: {...}}}``."""
    tasks: dict[str, Any] = {}
    for name in dict.fromkeys(r.task for r in results):
        rs = [r for r in results if r.task == name]
        tasks[name] = {
            "success_rate": sum(r.success for r in rs) / len(rs),
            "mean_reward": statistics.fmean(r.reward for r in rs),
            "episodes": len(rs),
            "mean_steps": statistics.fmean(r.steps for r in rs),
            "mean_seconds": statistics.fmean(r.seconds for r in rs),
            "errors": sum(len(r.errors) for r in rs),
        }
    overall = {
        "success_rate": sum(r.success for r in results) / len(results) if results else 0.0,
        "mean_reward": statistics.fmean(r.reward for r in results) if results else 0.0,
        "episodes": len(results),
        "tasks": len(tasks),
        "mean_task_success_rate": statistics.fmean(t["success_rate"] for t in tasks.values()) if tasks else 0.0,
    }
    return {"overall": overall, "tasks": tasks}


async def evaluate(
    policy: Policy,
    tasks: list[str],
    episodes: int,
    seed: int = 0,
    *,
    record_dir: Path | None = None,
    on_episode: Callable[[EpisodeResult], None] | None = None,
    scale: float = 3.0,
) -> list[EpisodeResult]:
    """Run ``episodes`` episodes (seeds ``seed .. seed+episodes-1``) of each task in one browser."""
    results: list[EpisodeResult] = []
    env = AsyncMiniWoBEnv(tasks[0], scale=scale)
    await env.start()
    try:
        for task in tasks:
            await env.set_task(task)
            for k in range(episodes):
                try:
                    res = await run_episode(env, policy, seed + k, record_dir=record_dir)
                except Exception as e:  # the page failed to load/reset: count a failure, restart, go on
                    env.session._crashed = True
                    res = EpisodeResult(
                        task,
                        seed + k,
                        "",
                        0.0,
                        0.0,
                        False,
                        env.steps,
                        0.0,
                        False,
                        [f"reset failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"],
                    )
                results.append(res)
                if on_episode is not None:
                    on_episode(res)
    finally:
        await env.close()
    return results
