"""Test harness shipped in the package: fakes that tests inject behaviour into, and a one-call runner.

These are for unit tests of one component (the loop, a sink); acceptance runs use the real policies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import numpy as np

from agentkit.loop import LoopConfig, RunSummary, StreamLoop
from agentkit.policy import Policy
from agentkit.sinks import Sink
from agentkit.sources import Source
from agentkit.tooling import Tool, ToolBox
from agentkit.types import ActionResult, Decision, Frame


class ScriptedPolicy(Policy):
    """Answers each frame with ``decide(frame)`` after sleeping ``delay_s`` (a stand-in for model time)."""

    name = "scripted"

    def __init__(self, decide: Callable[[Frame], Decision] | None = None, delay_s: float = 0.0) -> None:
        self.decide = decide or (lambda f: Decision.silence())
        self.delay_s = delay_s
        self.seen: list[int] = []
        self.instructions: list[tuple[str, float | None]] = []
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1
        self.seen.clear()

    def step(self, frame: Frame) -> Decision:
        if self.delay_s:
            time.sleep(self.delay_s)
        self.seen.append(frame.seq)
        return self.decide(frame)

    def instruct(self, text: str, pts: float | None = None) -> None:
        self.instructions.append((text, pts))


class ListSource(Source):
    """Frames from a list (lossless) or paced at ``fps`` (lossy); ``fail_after`` raises mid-stream."""

    name = "list"

    def __init__(
        self,
        n: int,
        *,
        fps: float | None = None,
        size: tuple[int, int] = (32, 24),
        fail_after: int | None = None,
        error: Exception | None = None,
    ) -> None:
        self.n, self.fps, self.size = n, fps, size
        self.lossless = fps is None
        self.fail_after = fail_after
        self.error = error or RuntimeError("source broke")

    async def frames(self) -> AsyncIterator[Frame]:
        t0 = time.monotonic()
        w, h = self.size
        for seq in range(self.n):
            if self.fail_after is not None and seq >= self.fail_after:
                raise self.error
            if self.fps:
                await asyncio.sleep(max(0.0, t0 + seq / self.fps - time.monotonic()))
            img = np.full((h, w, 3), seq % 256, dtype=np.uint8)
            yield Frame(img, time.monotonic(), seq / (self.fps or 10.0), seq, "list")


class CaptureSink(Sink):
    """Keeps everything it receives, and whether it was closed."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.frames: list[int] = []
        self.actions: list[ActionResult] = []
        self.closed = False

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        self.decisions.append(decision)
        self.frames.append(frame.seq)

    def on_action(self, result: ActionResult) -> None:
        self.actions.append(result)

    def close(self) -> None:
        self.closed = True


def run_stream(
    source: Source,
    policy: Policy,
    *,
    tools: Iterable[Tool] = (),
    gate: Any = None,
    config: LoopConfig | None = None,
    during: Callable[[StreamLoop], Any] | None = None,
) -> tuple[RunSummary, CaptureSink]:
    """Run a loop to the end and return its summary and everything the sinks saw.

    ``during(loop)`` may be a coroutine function run concurrently (to interrupt or stop the loop).
    """
    sink = CaptureSink()
    tools = list(tools)

    async def main() -> RunSummary:
        loop = StreamLoop(
            source, policy, toolbox=ToolBox(tools) if tools else None, sinks=[sink], gate=gate, config=config
        )
        side = asyncio.create_task(during(loop)) if during is not None else None
        summary = await loop.run()
        if side is not None:
            await side
        return summary

    return asyncio.run(main()), sink
