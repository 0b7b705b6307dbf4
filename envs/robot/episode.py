"""Pick-and-place episodes as :class:`~agentkit.episode.EpisodeEnv`: in this process, or on a robot node.

Why: ``agentkit eval fetch`` must measure the path a live run takes (policy -> tool calls -> ToolBox
validation -> primitives -> MuJoCo), with the node in this process or behind MQTT. Each decision's calls
run to completion (the first failure stops the rest, as the live executor does) before a fresh frame is
rendered (in a turn-based run the calls always answer the last frame handed out, whose ``seq`` they
carry); the episode is truncated after ``max_steps`` control steps; success is the task's own
criterion (the block within 5 cm of the target) when the episode ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from agentkit.envs.robot.arm import RobotArm
from agentkit.episode import Outcome, StepInfo
from agentkit.errors import SourceError
from agentkit.tooling import ToolBox, to_point
from agentkit.transport.mqtt.link import RobotLink
from agentkit.types import ActorStatus, Frame, Point, ToolCall


def perturb_place(call: ToolCall, radius: float, rng: np.random.Generator) -> ToolCall:
    """``call`` with its ``point`` moved ``radius * U(0.5, 1)`` in a random direction (kept inside the frame).

    Why: demonstrations of a policy that never misses never show what to do after a miss, so a model
    cloned from them answers Silence once its own placement lands off the target. Injecting noise into
    the executed action while the policy's own decision stays the label (DART, Laskey et al. 2017) puts
    the demonstrator in the states the learner will reach, and records it recovering from them.
    """
    try:
        point = to_point(call.arguments.get("point"))
    except ValueError:  # no image point (a place at ``xyz``): nothing to move
        return call
    angle = rng.uniform(0.0, 2.0 * np.pi)
    r = radius * rng.uniform(0.5, 1.0)
    x = float(np.clip(point.x + r * np.cos(angle), 0.02, 0.98))
    y = float(np.clip(point.y + r * np.sin(angle), 0.02, 0.98))
    return ToolCall(call.name, {**call.arguments, "point": Point(round(x, 4), round(y, 4))}, call.id)


async def _run_calls(toolbox: ToolBox, calls: Sequence[ToolCall], seq: int) -> StepInfo:
    info = StepInfo()
    for call in calls:
        result = await toolbox.run(call, seq=seq)
        info.results.append(result)
        if not result.ok:
            info.errors.append(result.error or f"{call.name} failed")
            break  # later calls of a plan assume the earlier ones worked (as the live executor does)
    return info


class ArmEpisodeEnv:
    """The simulation in this process; frames are rendered on demand.

    ``place_noise`` > 0 moves the executed point of each episode's first ``place`` (see
    :func:`perturb_place`, seeded by the episode's seed); the policy's decision, and so the recording's
    label, is left as it was.
    """

    def __init__(
        self,
        robot: RobotArm,
        toolbox: ToolBox,
        *,
        max_steps: int = 300,
        instruction: str = "",
        place_noise: float = 0.0,
    ) -> None:
        self.robot, self.toolbox, self.max_steps, self.instruction = robot, toolbox, max_steps, instruction
        self.place_noise = place_noise
        self._seq = 0
        self._rng = np.random.default_rng()
        self._noisy_places = 0

    def _frame(self) -> Frame:
        sim = self.robot.sim
        rgb, _ = self.robot.render(depth=False)
        self._seq += 1
        return Frame(rgb, time.monotonic(), sim.steps * sim.dt, self._seq, "robot", status=self.robot.status())

    async def reset(self, *, seed: int | None = None) -> tuple[Frame, dict[str, Any]]:
        """A seeded episode; ``info["instruction"]`` is the world's own (``fetch-multi``) or the one given."""
        self.robot.reset(seed=seed)
        self._rng = np.random.default_rng(None if seed is None else [seed, 0x5EED])
        self._noisy_places = 1 if self.place_noise > 0 else 0
        instruction = getattr(self.robot.sim, "instruction", "") or self.instruction
        return self._frame(), {"seed": seed, "instruction": instruction}

    def _executed(self, call: ToolCall) -> ToolCall:
        if call.name != "place" or self._noisy_places <= 0:
            return call
        self._noisy_places -= 1
        return perturb_place(call, self.place_noise, self._rng)

    async def step(self, calls: Sequence[ToolCall]) -> tuple[Frame | None, float, bool, bool, StepInfo]:
        info = await _run_calls(self.toolbox, [self._executed(c) for c in calls], self._seq)
        frame = self._frame()
        return frame, 0.0, False, self.robot.sim.steps >= self.max_steps, info

    async def outcome(self) -> Outcome:
        success = bool(self.robot.sim.is_success())
        blocks = getattr(self.robot.sim, "blocks", None)  # a world with several blocks reports how many
        extra = {"blocks": len(blocks)} if blocks else {}
        return Outcome(success, float(success), int(self.robot.sim.steps), extra)

    async def privileged(self) -> dict[str, Any]:
        return self.robot.scene_state()


class RemoteArmEpisodeEnv:
    """A robot node in another process: reset and outcome over its control topic, frames from the link."""

    def __init__(
        self, link: RobotLink, toolbox: ToolBox, *, max_steps: int = 300, timeout_s: float = 10.0, instruction: str = ""
    ) -> None:
        self.link, self.toolbox, self.max_steps, self.timeout_s = link, toolbox, max_steps, timeout_s
        self.instruction = instruction
        self.episode: int | None = None
        self._seq = -1  # the last frame handed out: in turn-based runs, the one the calls were decided on
        self.transit_ms: list[float] = []  # node publish -> agent receive, of the frames handed out

    async def _frame(self) -> Frame:
        asked = time.monotonic()
        while True:
            try:
                frame = await asyncio.wait_for(self.link.next_frame(), self.timeout_s)
            except TimeoutError:
                raise SourceError(
                    f"robot {self.link.spec.name}: no frame within {self.timeout_s:g} s ({self.link.describe()})"
                ) from None
            # Decide on a frame that arrived after we asked (not one that waited in the slot while the
            # last action ran), and never on a frame of the previous episode still in flight.
            if frame.t >= asked and (frame.status or ActorStatus()).episode == self.episode:
                if "transit_ms" in frame.meta:
                    self.transit_ms.append(float(frame.meta["transit_ms"]))
                self._seq = frame.seq
                return frame

    async def reset(self, *, seed: int | None = None) -> tuple[Frame, dict[str, Any]]:
        out = await self.link.control("reset", timeout_s=self.timeout_s, seed=seed)
        self.episode = int(out["episode"])
        instruction = self.instruction
        if not instruction:  # a world that names the task per episode (fetch-multi) says it in its state
            state = await self.link.control("state", timeout_s=self.timeout_s)
            instruction = str(state.get("instruction") or "")
        return await self._frame(), {"seed": seed, "instruction": instruction}

    async def step(self, calls: Sequence[ToolCall]) -> tuple[Frame | None, float, bool, bool, StepInfo]:
        info = await _run_calls(self.toolbox, calls, self._seq)
        frame = await self._frame()
        return frame, 0.0, False, (frame.status or ActorStatus()).steps >= self.max_steps, info

    async def outcome(self) -> Outcome:
        state = await self.link.control("state", timeout_s=self.timeout_s)
        success = bool(state["success"])
        return Outcome(success, float(success), int(state["steps"]))

    async def privileged(self) -> dict[str, Any] | None:
        return self.link.state
