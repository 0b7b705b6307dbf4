"""Run a policy over a video file as fast as possible and write ``decisions.jsonl``.

This is the offline measurement path (speed, precision/recall against labels): it decodes with PyAV in
the calling thread, steps the policy synchronously on every frame and times the whole thing, decoding
included. The live path is the lead's ``StreamLoop``; both feed the policy the same :class:`Frame`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agentkit.errors import SourceError
from agentkit.policy import Policy
from agentkit.types import Decision, DecisionKind, Frame


def iter_video_frames(path: str | Path, start_s: float = 0.0, end_s: float | None = None) -> Iterator[Frame]:
    """Decoded RGB frames of ``path`` with ``pts`` in seconds of the file, from ``start_s`` to ``end_s``.

    Raises:
        SourceError: the file is missing or cannot be decoded.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"video not found: {path}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:  # type: ignore[attr-defined]
        raise SourceError(f"cannot open video {path}: {e}") from None
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if start_s > 0 and stream.time_base is not None:
            container.seek(int(max(0.0, start_s - 1.0) / stream.time_base), stream=stream, backward=True)
        seq = 0
        for vf in container.decode(stream):
            tb = vf.time_base or stream.time_base
            if vf.pts is None or tb is None:
                continue
            pts = float(vf.pts * tb)
            if pts < start_s - 1e-6:
                continue
            if end_s is not None and pts > end_s + 1e-6:
                break
            yield Frame(vf.to_ndarray(format="rgb24"), t=time.monotonic(), pts=pts, seq=seq, source=str(path))
            seq += 1
    except av.error.FFmpegError as e:  # type: ignore[attr-defined]
        raise SourceError(f"cannot decode video {path}: {e}") from None
    finally:
        container.close()


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


def replay_video(
    policy: Policy,
    path: str | Path,
    out_jsonl: str | Path | None = None,
    start_s: float = 0.0,
    end_s: float | None = None,
    on_decision: Callable[[Frame, Decision], None] | None = None,
) -> tuple[list[Decision], ReplayStats]:
    """Step ``policy`` over every frame of ``path``; optionally write one decision per line to ``out_jsonl``.

    ``on_decision(frame, decision)`` is called after each step (e.g. to keep thumbnails of Responses);
    its time counts in the measured wall time.
    """
    policy.reset()
    decisions: list[Decision] = []
    step_ms: list[float] = []
    first_pts = last_pts = None
    fh = None
    if out_jsonl is not None:
        Path(out_jsonl).parent.mkdir(parents=True, exist_ok=True)
        fh = open(out_jsonl, "w", encoding="utf-8")  # closed in the finally below
    t0 = time.perf_counter()
    try:
        for frame in iter_video_frames(path, start_s, end_s):
            s0 = time.perf_counter()
            d = policy.step(frame)
            step_ms.append((time.perf_counter() - s0) * 1000)
            decisions.append(d)
            if on_decision is not None:
                on_decision(frame, d)
            if fh is not None:
                fh.write(json.dumps(d.to_dict()) + "\n")
            first_pts = frame.pts if first_pts is None else first_pts
            last_pts = frame.pts
    finally:
        wall = time.perf_counter() - t0
        if fh is not None:
            fh.close()
    step_ms.sort()

    def pct(p: float) -> float:
        return step_ms[min(len(step_ms) - 1, int(p * len(step_ms)))] if step_ms else 0.0

    counts = {k: sum(1 for d in decisions if d.kind is k) for k in DecisionKind}
    span = (last_pts - first_pts) if first_pts is not None and last_pts is not None else 0.0
    n = len(decisions)
    stats = ReplayStats(
        frames=n,
        wall_s=wall,
        stream_s=span + (span / (n - 1) if n > 1 else 0.0),  # include the last frame's duration
        silence=counts[DecisionKind.SILENCE],
        standby=counts[DecisionKind.STANDBY],
        response=counts[DecisionKind.RESPONSE],
        step_ms_p50=pct(0.5),
        step_ms_p95=pct(0.95),
    )
    return decisions, stats
