"""Seeded episodes of a Fetch policy through the real tools, for ``agentkit eval fetch`` and the tests.

Why: the success rate of a policy must come from the same path a live run takes (policy -> tool calls ->
ToolBox validation -> primitives -> MuJoCo), not from a shortcut. Each decision is made on a freshly
rendered frame; its tool calls run to completion before the next frame (the live loop does the same
asynchronously). The episode ends when the policy is done or the step budget is spent; success is the
task's own criterion (block within 5 cm of the target) at that moment.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from agentkit.envs.robot.arm import RobotArm
from agentkit.policy import Policy
from agentkit.tooling import ToolBox
from agentkit.transport.mqtt.link import RobotLink
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


class Backend(Protocol):
    """Where an episode runs: in this process, or on a robot node behind MQTT."""

    toolbox: ToolBox

    async def reset(self, seed: int) -> None: ...

    async def frame(self) -> Frame: ...

    async def outcome(self) -> tuple[bool, int]:
        """(success, control steps) of the current episode."""
        ...


class LocalBackend:
    """The simulation in this process; frames are rendered on demand."""

    def __init__(self, robot: RobotArm, toolbox: ToolBox, privileged: bool = False) -> None:
        self.robot, self.toolbox, self.privileged = robot, toolbox, privileged
        self._seq = 0

    async def reset(self, seed: int) -> None:
        self.robot.reset(seed=seed)

    async def frame(self) -> Frame:
        sim = self.robot.sim
        rgb, _ = sim.render(depth=False)
        self._seq += 1
        pts = sim.steps * sim.dt
        return Frame(
            rgb, t=time.monotonic(), pts=pts, seq=self._seq, source="fetch", meta=self.robot.meta(self.privileged)
        )

    async def outcome(self) -> tuple[bool, int]:
        return self.robot.sim.is_success(), self.robot.sim.steps


class MqttBackend:
    """A robot node in another process: reset and outcome over the control topic, frames from the link."""

    def __init__(self, link: RobotLink, toolbox: ToolBox, timeout_s: float = 10.0) -> None:
        self.link, self.toolbox, self.timeout_s = link, toolbox, timeout_s
        self.episode: int | None = None
        self.transit_ms: list[float] = []  # node publish -> agent receive, of the frames handed out

    async def reset(self, seed: int) -> None:
        out = await self.link.control("reset", timeout_s=self.timeout_s, seed=seed)
        self.episode = int(out["episode"])

    async def frame(self) -> Frame:
        asked = time.monotonic()
        while True:
            frame = await asyncio.wait_for(self.link.next_frame(), self.timeout_s)
            # Decide on a frame that arrived after we asked (not one that waited in the slot while the
            # last action ran), and never on a frame of the previous episode still in flight.
            if frame.t >= asked and frame.meta.get("episode") == self.episode:
                if "transit_ms" in frame.meta:
                    self.transit_ms.append(float(frame.meta["transit_ms"]))
                return frame

    async def outcome(self) -> tuple[bool, int]:
        state = await self.link.control("state", timeout_s=self.timeout_s)
        return bool(state["success"]), int(state["steps"])


async def run_episode(
    backend: Backend,
    policy: Policy,
    seed: int,
    *,
    max_steps: int = 300,
    max_decisions: int = 60,
    on_frame: FrameHook | None = None,
    on_action: Callable[[ActionResult], None] | None = None,
) -> EpisodeResult:
    """Run one seeded episode; never raises for policy or tool failures (they are recorded)."""
    t0 = time.perf_counter()
    await backend.reset(seed)
    policy.reset()
    calls: list[dict[str, Any]] = []
    errors: list[str] = []
    decisions = 0
    steps = 0
    while decisions < max_decisions and steps < max_steps:
        frame = await backend.frame()
        steps = int(frame.meta.get("steps", 0))
        try:
            decision = policy.step(frame)
        except Exception as e:  # a policy bug is a recorded error, not a crashed evaluation
            errors.append(f"policy: {type(e).__name__}: {e}")
            break
        decisions += 1
        errors.extend(decision.errors)
        if on_frame is not None:
            on_frame(frame, decision)
        for i, call in enumerate(decision.tool_calls):
            result = await backend.toolbox.run(call, seq=frame.seq)
            d = result.to_dict()
            d["first_of_decision"] = i == 0
            calls.append(d)
            if on_action is not None:
                on_action(result)
            if not result.ok:
                errors.append(result.error or f"{call.name} failed")
                break  # later calls of a plan assume the earlier ones worked (as the live executor does)
        if not decision.tool_calls and decision.kind is DecisionKind.SILENCE and getattr(policy, "done", True):
            break
    success, steps = await backend.outcome()
    return EpisodeResult(seed, success, steps, time.perf_counter() - t0, decisions, calls, errors)


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
