"""MiniWoB++ in real Chromium: per-task success of a GUI policy, and recordings to train on.

Why this module exists: ``agentkit eval miniwob`` treats every policy alike - pixels and the utterance in,
a :class:`~agentkit.types.Decision` with GUI tool calls out, executed through the env's ToolBox - via the
one episode runner (:func:`agentkit.episode.run_episode`). One bad step (an unknown tool, malformed
arguments, a point off the viewport, a blocked URL, a hung page) is an error recorded on that step. Only a
policy that declares ``privileged = True`` (the oracle) gets the task name and the DOM.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentkit.benchmarks.report import Report
from agentkit.envs.gui.miniwob import AsyncMiniWoBEnv
from agentkit.episode import EpisodeResult, run_episode
from agentkit.policy import Policy
from agentkit.recorder import Recorder
from agentkit.sinks import Sink

MAX_IDLE = 3  # decisions without a tool call before an episode is abandoned


async def run_task_episode(
    env: AsyncMiniWoBEnv, policy: Policy, seed: int, *, record_dir: Path | None = None
) -> EpisodeResult:
    """One episode of ``env.task``; with ``record_dir`` also a recording in ``record_dir/<task>-<seed>/``."""
    sinks: list[Sink] = []
    rec_dir = record_dir / f"{env.task}-{seed}" if record_dir is not None else None
    if rec_dir is not None:
        sinks.append(Recorder(rec_dir, fps=2.0, meta={"benchmark": "miniwob", "task": env.task, "seed": seed}))
    result = await run_episode(env, policy, seed=seed, task=env.task, max_idle=MAX_IDLE, sinks=sinks)
    if rec_dir is not None:
        (rec_dir / "episode.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result


def summarize(results: list[EpisodeResult], config: dict[str, Any] | None = None) -> Report:
    """The report: one row per task (success rate, mean reward, steps, seconds, errors) and the overall."""
    rows: list[dict[str, Any]] = []
    for name in dict.fromkeys(r.task for r in results):
        rs = [r for r in results if r.task == name]
        rows.append(
            {
                "task": name,
                "success_rate": sum(r.success for r in rs) / len(rs),
                "mean_reward": statistics.fmean(r.reward for r in rs),
                "episodes": len(rs),
                "mean_steps": statistics.fmean(r.steps for r in rs),
                "mean_seconds": statistics.fmean(r.seconds for r in rs),
                "errors": sum(len(r.errors) for r in rs),
            }
        )
    overall = {
        "success_rate": sum(r.success for r in results) / len(results) if results else 0.0,
        "mean_reward": statistics.fmean(r.reward for r in results) if results else 0.0,
        "episodes": len(results),
        "tasks": len(rows),
        "mean_task_success_rate": statistics.fmean(r["success_rate"] for r in rows) if rows else 0.0,
    }
    return Report(
        benchmark="miniwob",
        overall=overall,
        rows=rows,
        episodes=[r.to_dict() for r in results],
        config=dict(config or {}),
    )


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
                    res = await run_task_episode(env, policy, seed + k, record_dir=record_dir)
                except Exception as e:  # the page failed to load/reset: count a failure, restart, go on
                    env.session._crashed = True
                    first = str(e).splitlines()[0] if str(e) else ""
                    res = EpisodeResult(
                        task, seed + k, False, 0.0, env.steps, 0, 0.0, False, False,
                        errors=[f"reset failed: {type(e).__name__}: {first}"],
                    )  # fmt: skip
                results.append(res)
                if on_episode is not None:
                    on_episode(res)
    finally:
        await env.close()
    return results
