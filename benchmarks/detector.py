"""``agentkit bench detector``: run a policy over a video file as fast as possible, timed, and score it.

Why: the offline measurement (speed, precision/recall against labels) must take the path a live run
takes. :func:`replay_video` runs the :class:`~agentkit.loop.StreamLoop` over a lossless
:class:`~agentkit.envs.media.video.VideoSource` (decoding in a worker thread, the policy in the loop's
policy thread) and times the whole thing, decoding included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agentkit.envs.media.video import VideoSource
from agentkit.loop import StreamLoop
from agentkit.policy import Policy
from agentkit.sinks import JsonlWriter, Sink
from agentkit.types import Decision, DecisionKind, Frame


@dataclass(frozen=True)
class ReplayStats:
    """What a replay measured: frame count, wall time (decoding included) and decision counts."""

    frames: int
    wall_s: float
    stream_s: float
    silence: int
    standby: int
    response: int
    step_ms_p50: float
    step_ms_p95: float

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def realtime_factor(self) -> float:
        """Stream seconds processed per wall second (> 1: faster than real time)."""
        return self.stream_s / self.wall_s if self.wall_s > 0 else 0.0


class _Collect(Sink):
    """Keeps every decision (an offline replay is bounded by its file), writes them, calls back."""

    def __init__(self, out: JsonlWriter | None, on_decision: Callable[[Frame, Decision], None] | None) -> None:
        self.decisions: list[Decision] = []
        self.out, self.on = out, on_decision

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        self.decisions.append(decision)
        if self.on is not None:
            self.on(frame, decision)
        if self.out is not None:
            self.out.write(decision.to_dict())

    def close(self) -> None:
        if self.out is not None:
            self.out.close()


def replay_video(
    policy: Policy,
    path: str | Path,
    out_jsonl: str | Path | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    on_decision: Callable[[Frame, Decision], None] | None = None,
) -> tuple[list[Decision], ReplayStats]:
    """Step ``policy`` over every frame of ``path`` (seconds ``start_s`` .. ``end_s`` of the file).

    Writes one decision per line to ``out_jsonl`` when given; ``on_decision(frame, decision)`` is called
    after each step (e.g. to keep thumbnails of Responses) and its time counts in the measured wall time.

    Raises:
        SourceError: the file is missing or cannot be decoded (decisions up to there are written).
    """
    source = VideoSource(str(path), start_s=start_s, end_s=end_s)
    sink = _Collect(JsonlWriter(out_jsonl) if out_jsonl is not None else None, on_decision)
    loop = StreamLoop(source, policy, sinks=[sink])

    async def run() -> dict:
        await source.open()
        try:
            summary = await loop.run()
        finally:
            await source.close()
        if summary.error:
            from agentkit.errors import SourceError

            raise SourceError(summary.error)
        return summary.metrics

    t0 = time.perf_counter()
    metrics = asyncio.run(run())
    wall = time.perf_counter() - t0
    decisions = sink.decisions
    counts = {k: sum(1 for d in decisions if d.kind is k) for k in DecisionKind}
    n = len(decisions)
    span = decisions[-1].pts - decisions[0].pts if n > 1 else 0.0
    stats = ReplayStats(
        frames=n,
        wall_s=wall,
        stream_s=span + (span / (n - 1) if n > 1 else 0.0),  # include the last frame's duration
        silence=counts[DecisionKind.SILENCE],
        standby=counts[DecisionKind.STANDBY],
        response=counts[DecisionKind.RESPONSE],
        step_ms_p50=float(metrics["model_ms"]["p50"] or 0.0),
        step_ms_p95=float(metrics["model_ms"]["p95"] or 0.0),
    )
    return decisions, stats
