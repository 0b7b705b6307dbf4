"""Per-frame timings and counters, summarised as percentiles.

Latency is measured from a frame's capture (``Frame.t``, monotonic) to the moment its decision exists,
so it includes the time the frame waited in the slot - exactly what a user of a live stream feels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def percentiles(values: list[float], qs: tuple[int, ...] = (50, 95, 99)) -> dict[str, float | None]:
    """``{"p50": .., "p95": .., "p99": ..}`` of ``values`` (``None`` when there are none)."""
    if not values:
        return {f"p{q}": None for q in qs}
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs}


@dataclass
class StreamMetrics:
    """Counters and per-frame samples of one run. Not thread-safe: updated from the event loop only."""

    frames_in: int = 0
    processed: int = 0
    dropped: int = 0
    gated: int = 0
    responses: int = 0
    standbys: int = 0
    actions: int = 0
    action_errors: int = 0
    latency_ms: list[float] = field(default_factory=list)  # capture -> decided
    model_ms: list[float] = field(default_factory=list)
    action_ms: list[float] = field(default_factory=list)  # decided -> action done
    pts_of_latency: list[float] = field(default_factory=list)
    first_pts: float | None = None
    last_pts: float | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    def finish(self) -> None:
        self.ended = time.monotonic()

    @property
    def wall_s(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def summary(self) -> dict[str, Any]:
        """The JSON written to ``metrics.json``."""
        wall = self.wall_s
        stream_s = (self.last_pts - self.first_pts) if self.first_pts is not None and self.last_pts is not None else 0.0
        out: dict[str, Any] = {
            "frames_in": self.frames_in,
            "processed": self.processed,
            "dropped": self.dropped,
            "gated": self.gated,
            "responses": self.responses,
            "standbys": self.standbys,
            "actions": self.actions,
            "action_errors": self.action_errors,
            "wall_s": round(wall, 3),
            "stream_s": round(stream_s, 3),
            "fps_in": round(self.frames_in / wall, 3) if wall > 0 else None,
            "fps_processed": round(self.processed / wall, 3) if wall > 0 else None,
            # > 1 means faster than real time: seconds of stream handled per second of wall clock.
            "real_time_factor": round(stream_s / wall, 3) if wall > 0 and stream_s > 0 else None,
            "latency_ms": percentiles(self.latency_ms),
            "model_ms": percentiles(self.model_ms),
            "action_ms": percentiles(self.action_ms),
        }
        # Flatness over time: compare the first and the last minute of the stream.
        if self.pts_of_latency and stream_s >= 120:
            pts = np.asarray(self.pts_of_latency)
            lat = np.asarray(self.latency_ms)
            t0 = pts[0]
            first = lat[pts < t0 + 60].tolist()
            last = lat[pts >= pts[-1] - 60].tolist()
            out["latency_ms_first_minute"] = percentiles(first, (50, 95))
            out["latency_ms_last_minute"] = percentiles(last, (50, 95))
        return out
