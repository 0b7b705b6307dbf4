"""Seeded episodes of a Fetch policy through the real tools, for ``agentkit eval fetch`` and the tests.

Why: the success rate of a policy must come from the same path a live run takes (policy -> tool calls ->
ToolBox validation -> primitives -> MuJoCo), not from a shortcut. Each decision is made on a freshly
rendered frame; its tool calls run to completion before the next frame (the live loop does the same
asynchronously). The episode ends when the policy is done or the step budget is spent; success is the
task's own criterion (block within 5 cm of the target) at that moment.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from agentkit.envs.fetch_robot import FetchRobot
from agentkit.policy import Policy
from agentkit.tooling import ToolBox
from agentkit.types import ActionResult, Decision, DecisionKind, Frame


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    steps: int
    seconds: float
    decisions: int
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        return d


FrameHook = Callable[[Frame, Decision | None], None]


async def run_episode(
    robot: FetchRobot,
    toolbox: ToolBox,
    policy: Policy,
    seed: int,
    *,
    privileged: bool = False,
    max_steps: int = 300,
    max_decisions: int = 30,
    on_frame: FrameHook | None = None,
    on_action: Callable[[ActionResult], None] | None = None,
) -> EpisodeResult:
    """Run one seeded episode; never raises for policy or tool failures (they are recorded)."""
    t0 = time.perf_counter()
    robot.reset(seed=seed)
    policy.reset()
    sim = robot.sim
    calls: list[dict[str, Any]] = []
    errors: list[str] = []
    decisions = 0
    seq = 0
    while decisions < max_decisions and sim.steps < max_steps:
        rgb, _ = sim.render(depth=False)
        frame = Frame(
            rgb, t=time.monotonic(), pts=sim.steps * sim.env.dt, seq=seq, source="fetch", meta=robot.meta(privileged)
        )
        seq += 1
        try:
            decision = policy.step(frame)
        except Exception as e:  # a policy bug is a recorded error, not a crashed evaluation
            errors.append(f"policy: {type(e).__name__}: {e}")
            break
        decisions += 1
        errors.extend(decision.errors)
        if on_frame is not None:
            on_frame(frame, decision)
        for call in decision.tool_calls:
            result = await toolbox.run(call, seq=frame.seq)
            calls.append(result.to_dict())
            if on_action is not None:
                on_action(result)
            if not result.ok and result.error:
                errors.append(result.error)
        if not decision.tool_calls and decision.kind is DecisionKind.SILENCE and getattr(policy, "done", True):
            break
    return EpisodeResult(seed, sim.is_success(), sim.steps, time.perf_counter() - t0, decisions, calls, errors)


def summarize(results: list[EpisodeResult]) -> dict[str, Any]:
    """The ``overall`` block of the evaluation JSON."""
    n = len(results)
    if n == 0:
        return {"success_rate": 0.0, "episodes": 0, "mean_steps": 0.0, "mean_seconds": 0.0}
    return {
        "success_rate": round(sum(r.success for r in results) / n, 4),
        "episodes": n,
        "successes": sum(r.success for r in results),
        "mean_steps": round(sum(r.steps for r in results) / n, 2),
        "mean_seconds": round(sum(r.seconds for r in results) / n, 3),
    }
