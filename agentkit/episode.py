"""Episodes: a Gymnasium-shaped world protocol and the one runner every evaluation uses.

Why: a success rate must come from the path a live run takes. :func:`run_episode` does not call the
policy itself; it drives a :class:`~agentkit.loop.StreamLoop` in turn-based mode, so the policy runs in
the loop's worker thread, a policy exception is an error recorded on its frame (the episode goes on, as a
live stream does), and sinks (a recorder, a video) see exactly what a live run shows them.

A world implements :class:`EpisodeEnv`: ``reset(seed=...)`` returns the first frame and an info dict
(``info["instruction"]`` is handed to the policy), ``step(calls)`` runs one decision's tool calls and
returns ``(frame, reward, terminated, truncated, info)`` like Gymnasium's ``Env.step``, ``outcome()``
says how the episode went, and ``privileged()`` returns what only a privileged policy may see (filled in
``Frame.privileged`` for policies that declare :attr:`~agentkit.policy.Policy.privileged`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentkit.loop import LoopConfig, StreamLoop
from agentkit.policy import Policy
from agentkit.sinks import Sink
from agentkit.sources import Source
from agentkit.types import ActionResult, Decision, DecisionKind, Frame, ToolCall


@dataclass
class StepInfo:
    """What one ``step`` did: the calls' results and errors (recorded, never raised), plus world extras."""

    results: list[ActionResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """How an episode went, by the world's own criterion (``success``) and reward."""

    success: bool
    reward: float = 0.0
    steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class EpisodeEnv(Protocol):
    """An async, Gymnasium-shaped world whose observations are frames and whose actions are tool calls."""

    async def reset(self, *, seed: int | None = None) -> tuple[Frame, dict[str, Any]]: ...

    async def step(self, calls: Sequence[ToolCall]) -> tuple[Frame | None, float, bool, bool, StepInfo]: ...

    async def outcome(self) -> Outcome: ...

    async def privileged(self) -> Any: ...


@dataclass
class EpisodeResult:
    """One episode, as reported by every evaluation (``to_dict`` is a row of the report's ``episodes``)."""

    task: str
    seed: int | None
    success: bool
    reward: float
    steps: int
    decisions: int
    seconds: float
    terminated: bool
    truncated: bool
    instruction: str = ""
    errors: list[str] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "extra"}
        d["seconds"] = round(self.seconds, 3)
        d.update(self.extra)
        return d


class _EpisodeSource(Source):
    """The world as a lossless, turn-based source: the next frame exists only after the last decision acted."""

    name = "episode"
    lossless = True

    def __init__(self, env: EpisodeEnv, first: Frame, policy: Policy, max_idle: int | None) -> None:
        self.env = env
        self.policy = policy
        self.max_idle = max_idle
        self._next: Frame | None = first
        self._acted = asyncio.Event()
        self._acted.set()
        self.errors: list[str] = []
        self.actions: list[dict[str, Any]] = []
        self.steps = 0
        self.idle = 0
        self.reward = 0.0
        self.terminated = self.truncated = False

    async def frames(self) -> AsyncIterator[Frame]:
        while True:
            await self._acted.wait()
            self._acted.clear()
            frame, self._next = self._next, None
            if frame is None:
                return
            if self.policy.privileged:
                frame.privileged = await self.env.privileged()
            yield frame

    async def act(self, decision: Decision, frame: Frame) -> list[ActionResult]:
        try:
            return await self._act(decision)
        finally:
            self._acted.set()

    async def _act(self, decision: Decision) -> list[ActionResult]:
        step = self.steps + 1
        self.errors.extend(f"step {step}: {e}" for e in decision.errors)
        calls = list(decision.tool_calls)
        if not calls and decision.kind is DecisionKind.SILENCE and self.policy.done:
            return []  # the policy is finished: no next frame
        frame, reward, self.terminated, self.truncated, info = await self.env.step(calls)
        self.steps = step
        self.reward = reward
        self.errors.extend(f"step {step}: {e}" for e in info.errors)
        for i, result in enumerate(info.results):
            self.actions.append({**result.to_dict(), "first_of_decision": i == 0})
        if self.terminated or self.truncated or frame is None:
            return info.results
        self.idle = 0 if calls else self.idle + 1
        if self.max_idle is not None and self.idle >= self.max_idle:
            self.errors.append(f"step {step}: policy idle for {self.max_idle} steps; episode abandoned")
            return info.results
        self._next = frame
        return info.results


async def run_episode(
    env: EpisodeEnv,
    policy: Policy,
    *,
    seed: int | None = None,
    task: str = "",
    max_decisions: int = 60,
    max_idle: int | None = None,
    sinks: Iterable[Sink] = (),
) -> EpisodeResult:
    """Run one seeded episode of ``policy`` in ``env`` through the loop's turn-based mode.

    The episode ends when the world terminates or truncates it, when the policy is :attr:`~Policy.done`
    and answers Silence without calls, after ``max_decisions`` decisions, or after ``max_idle``
    consecutive decisions without a tool call. Policy and tool failures are recorded, never raised.
    """
    t0 = time.monotonic()
    first, info = await env.reset(seed=seed)
    source = _EpisodeSource(env, first, policy, max_idle)
    loop = StreamLoop(source, policy, sinks=sinks, config=LoopConfig(max_frames=max_decisions), actor=source)
    instruction = str(info.get("instruction") or "")
    if instruction:
        loop.instruct(instruction)
    summary = await loop.run()
    outcome = await env.outcome()
    errors = list(source.errors)
    if summary.error:
        errors.append(f"world: {summary.error}")
    return EpisodeResult(
        task=task,
        seed=seed,
        success=outcome.success,
        reward=outcome.reward,
        steps=outcome.steps or source.steps,
        decisions=int(summary.metrics["processed"]),
        seconds=time.monotonic() - t0,
        terminated=source.terminated,
        truncated=source.truncated,
        instruction=instruction,
        errors=errors,
        actions=source.actions,
        extra=dict(outcome.extra),
    )
