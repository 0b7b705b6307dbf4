"""Per-frame timings and counters, summarised as percentiles, in memory that does not grow with the stream.

Latency is measured from a frame's capture (``Frame.t``, monotonic) to the moment its decision exists,
so it includes the time the frame waited in the slot - exactly what a user of a live stream feels.

A live stream may run for a week, so no per-frame list is kept. Whole-run percentiles come from a
:class:`QuantileSketch` (a log-bucketed histogram in the style of DDSketch: every quantile within a fixed
relative error, a bounded number of buckets); the last minute of latency is a :class:`TimeWindow`, a
ring buffer with a hard cap on samples. Both have an ``append`` so a caller can treat them like the
lists they replace.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

QUANTILES: tuple[int, ...] = (50, 95, 99)
FIRST_LAST_WINDOW_S = 60.0  # "first minute" and "last minute" of the stream
FIRST_LAST_MIN_STREAM_S = 120.0  # both are reported only for streams at least this long


def percentiles(values: Sequence[float] | np.ndarray, qs: tuple[int, ...] = QUANTILES) -> dict[str, float | None]:
    """``{"p50": .., "p95": .., "p99": ..}`` of ``values`` (``None`` when there are none), exact."""
    if len(values) == 0:
        return {f"p{q}": None for q in qs}
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs}


class _Store:
    """Bucket counts of one sign, keyed by ``ceil(log_gamma(|x|))``; at most ``max_buckets`` keys.

    When a new key would exceed the bound, the buckets of the smallest magnitudes are merged into one
    (``floor``): high quantiles, the ones latency reports care about, keep their accuracy.
    """

    __slots__ = ("counts", "floor", "max_buckets")

    def __init__(self, max_buckets: int) -> None:
        self.counts: dict[int, int] = {}
        self.floor: int | None = None  # keys below it are counted in it (after a collapse)
        self.max_buckets = max_buckets

    def add(self, key: int, n: int = 1) -> None:
        if self.floor is not None and key < self.floor:
            key = self.floor
        self.counts[key] = self.counts.get(key, 0) + n
        if len(self.counts) > self.max_buckets:
            self._collapse()

    def _collapse(self) -> None:
        keys = sorted(self.counts)
        excess = len(keys) - self.max_buckets
        floor = keys[excess]
        self.counts[floor] += sum(self.counts.pop(k) for k in keys[:excess])
        self.floor = floor

    def __len__(self) -> int:
        return len(self.counts)


class QuantileSketch:
    """A streaming quantile sketch: constant memory, every quantile within ``relative_accuracy``.

    Each value ``x`` is counted in the bucket ``ceil(log(|x|) / log(gamma))`` with
    ``gamma = (1 + a) / (1 - a)``; the bucket's representative value is within a relative error ``a`` of
    every value it holds (the DDSketch construction). Values of magnitude below ``min_value`` count as zero;
    NaN and infinities are ignored (counted in :attr:`skipped`). The number of buckets never exceeds
    ``max_buckets`` per sign: at the default accuracy, 4096 buckets cover about 17 decades (a nanosecond to
    over a year, in milliseconds) before the smallest ones are merged. Quantiles interpolate linearly between the
    estimated neighbouring order statistics, like ``numpy.percentile``'s default, so each reported
    percentile is within ``a`` of numpy's on the same values (positive values; min and max are exact).

    Example:
        >>> s = QuantileSketch()
        >>> for v in range(1, 1001):
        ...     s.append(float(v))
        >>> abs(s.quantile(0.5) - 500.5) / 500.5 <= s.relative_accuracy
        True
        >>> s.percentiles((50, 99))  # the shape of StreamMetrics.summary()'s entries
        {'p50': 500.216, 'p99': 987.37}
    """

    def __init__(self, relative_accuracy: float = 0.005, max_buckets: int = 4096, min_value: float = 1e-9) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}")
        if max_buckets < 2:
            raise ValueError(f"max_buckets must be at least 2, got {max_buckets!r}")
        if not min_value > 0.0:
            raise ValueError(f"min_value must be positive, got {min_value!r}")
        self.relative_accuracy = relative_accuracy
        self.max_buckets = max_buckets
        self.min_value = min_value
        self._gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._inv_log_gamma = 1.0 / math.log(self._gamma)
        self._pos = _Store(max_buckets)
        self._neg = _Store(max_buckets)  # keyed by magnitude
        self._zero = 0
        self.count = 0
        self.skipped = 0  # NaN / infinite values, not counted
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    # ----------------------------------------------------------------- adding
    def _key(self, magnitude: float) -> int:
        return math.ceil(math.log(magnitude) * self._inv_log_gamma)

    def add(self, value: float, n: int = 1) -> None:
        """Count ``value`` ``n`` times."""
        value = float(value)
        if not math.isfinite(value):
            self.skipped += n
            return
        if value > self.min_value:
            self._pos.add(self._key(value), n)
        elif value < -self.min_value:
            self._neg.add(self._key(-value), n)
        else:
            self._zero += n
        self.count += n
        self.sum += value * n
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    append = add  # the list-like spelling the loop uses: ``metrics.model_ms.append(ms)``

    def extend(self, values: Iterable[float] | np.ndarray) -> None:
        """Count many values at once (vectorised for arrays: about 10 ns per value)."""
        arr = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64).ravel()
        if arr.size == 0:
            return
        finite = np.isfinite(arr)
        if not finite.all():
            self.skipped += int(arr.size - finite.sum())
            arr = arr[finite]
            if arr.size == 0:
                return
        pos, neg = arr[arr > self.min_value], -arr[arr < -self.min_value]
        for store, mags in ((self._pos, pos), (self._neg, neg)):
            if mags.size:
                keys = np.ceil(np.log(mags) * self._inv_log_gamma).astype(np.int64)
                lo = int(keys.min())
                counts = np.bincount(keys - lo)  # keys span at most ~1.5e5 for any float64 range
                for off in np.flatnonzero(counts):
                    store.add(lo + int(off), int(counts[off]))
        self._zero += int(arr.size - pos.size - neg.size)
        self.count += int(arr.size)
        self.sum += float(arr.sum())
        self.min = min(self.min, float(arr.min()))
        self.max = max(self.max, float(arr.max()))

    def merge(self, other: QuantileSketch) -> None:
        """Add every value counted by ``other`` (same accuracy required)."""
        if other.relative_accuracy != self.relative_accuracy or other.min_value != self.min_value:
            raise ValueError("can only merge sketches with the same relative_accuracy and min_value")
        for mine, theirs in ((self._pos, other._pos), (self._neg, other._neg)):
            for k, c in theirs.counts.items():
                mine.add(k, c)
        self._zero += other._zero
        self.count += other.count
        self.skipped += other.skipped
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    # ----------------------------------------------------------------- reading
    @property
    def bucket_count(self) -> int:
        """Buckets in use: the sketch's size, bounded by ``2 * max_buckets + 1`` whatever was added."""
        return len(self._pos) + len(self._neg) + (1 if self._zero else 0)

    def __len__(self) -> int:
        return self.count

    def _value(self, key: int) -> float:
        return 2.0 * self._gamma**key / (self._gamma + 1.0)

    def _layout(self) -> tuple[np.ndarray, np.ndarray]:
        """Representative values in ascending order and the cumulative counts up to each."""
        neg = sorted(self._neg.counts.items(), reverse=True)
        pos = sorted(self._pos.counts.items())
        values = [-self._value(k) for k, _ in neg] + ([0.0] if self._zero else []) + [self._value(k) for k, _ in pos]
        counts = [c for _, c in neg] + ([self._zero] if self._zero else []) + [c for _, c in pos]
        return np.asarray(values, dtype=np.float64), np.cumsum(np.asarray(counts, dtype=np.int64))

    def _at_rank(self, rank: int, values: np.ndarray, cum: np.ndarray) -> float:
        if rank <= 0:
            return self.min
        if rank >= self.count - 1:
            return self.max
        v = float(values[int(np.searchsorted(cum, rank, side="right"))])
        return min(max(v, self.min), self.max)

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """Quantiles ``q`` in ``[0, 1]`` (``None`` each when nothing was added)."""
        if self.count == 0:
            return [None for _ in qs]
        values, cum = self._layout()
        out: list[float | None] = []
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile must be in [0, 1], got {q!r}")
            rank = q * (self.count - 1)
            lo = math.floor(rank)
            frac = rank - lo
            v = self._at_rank(lo, values, cum)
            if frac > 0.0:
                v += frac * (self._at_rank(lo + 1, values, cum) - v)
            out.append(v)
        return out

    def quantile(self, q: float) -> float | None:
        """One quantile ``q`` in ``[0, 1]`` (``None`` when nothing was added)."""
        return self.quantiles([q])[0]

    def percentiles(self, qs: tuple[int, ...] = QUANTILES) -> dict[str, float | None]:
        """``{"p50": .., "p95": .., "p99": ..}``, rounded like :func:`percentiles` (``None`` when empty)."""
        vals = self.quantiles([q / 100.0 for q in qs])
        return {f"p{q}": (None if v is None else round(v, 3)) for q, v in zip(qs, vals, strict=True)}


class TimeWindow:
    """The samples of the last ``window_s`` seconds of stream time, at most ``capacity`` of them.

    A fixed-size ring buffer of ``(t, value)``: memory never grows. When more than ``capacity`` samples
    fall inside the window (a stream faster than ``capacity / window_s`` per second), only the newest
    ``capacity`` are kept; :attr:`truncated` says so.
    """

    def __init__(self, window_s: float = FIRST_LAST_WINDOW_S, capacity: int = 16384) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s!r}")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity!r}")
        self.window_s = window_s
        self.capacity = capacity
        self._t = np.zeros(capacity, dtype=np.float64)
        self._v = np.zeros(capacity, dtype=np.float64)
        self._n = 0  # samples ever added
        self._last_t = 0.0

    def add(self, t: float, value: float) -> None:
        i = self._n % self.capacity
        self._t[i] = t
        self._v[i] = value
        self._n += 1
        self._last_t = t

    append = add

    def __len__(self) -> int:
        """Samples held (not only those inside the window)."""
        return min(self._n, self.capacity)

    def values(self) -> np.ndarray:
        """The held values with ``t >= newest t - window_s``, oldest first."""
        n = len(self)
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        start = self._n % self.capacity if self._n > self.capacity else 0
        order = (np.arange(n) + start) % self.capacity
        t, v = self._t[order], self._v[order]
        return v[t >= self._last_t - self.window_s]

    @property
    def truncated(self) -> bool:
        """The oldest sample held is still inside the window: older ones inside it were overwritten."""
        if self._n <= self.capacity:
            return False
        oldest = self._t[self._n % self.capacity]
        return bool(oldest >= self._last_t - self.window_s)


@dataclass
class StreamMetrics:
    """Counters and bounded per-frame statistics of one run. Not thread-safe: updated from the event loop.

    ``latency_ms``, ``model_ms`` and ``action_ms`` are :class:`QuantileSketch`es (``append`` a value); latency
    goes through :meth:`add_latency`, which also feeds the first- and last-minute figures.
    """

    frames_in: int = 0
    processed: int = 0
    dropped: int = 0
    gated: int = 0
    responses: int = 0
    standbys: int = 0
    actions: int = 0
    action_errors: int = 0
    latency_ms: QuantileSketch = field(default_factory=QuantileSketch)  # capture -> decided
    model_ms: QuantileSketch = field(default_factory=QuantileSketch)
    action_ms: QuantileSketch = field(default_factory=QuantileSketch)  # decided -> action done
    latency_first_minute: QuantileSketch = field(default_factory=QuantileSketch)
    latency_last_minute: TimeWindow = field(default_factory=TimeWindow)
    first_latency_pts: float | None = None
    first_pts: float | None = None
    last_pts: float | None = None
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None

    def add_latency(self, latency_ms: float, pts: float) -> None:
        """Count one frame's capture -> decided latency, at stream time ``pts``."""
        self.latency_ms.add(latency_ms)
        if self.first_latency_pts is None:
            self.first_latency_pts = pts
        if pts < self.first_latency_pts + FIRST_LAST_WINDOW_S:
            self.latency_first_minute.add(latency_ms)
        self.latency_last_minute.add(pts, latency_ms)

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
            "latency_ms": self.latency_ms.percentiles(),
            "model_ms": self.model_ms.percentiles(),
            "action_ms": self.action_ms.percentiles(),
        }
        # Flatness over time: compare the first and the last minute of the stream.
        if self.latency_ms.count and stream_s >= FIRST_LAST_MIN_STREAM_S:
            out["latency_ms_first_minute"] = self.latency_first_minute.percentiles((50, 95))
            out["latency_ms_last_minute"] = percentiles(self.latency_last_minute.values(), (50, 95))
        return out
