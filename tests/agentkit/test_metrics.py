"""Bounded stream metrics: sketch percentiles against numpy's, flat memory, first/last-minute latency."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from agentkit.metrics import QuantileSketch, StreamMetrics, TimeWindow, percentiles

QS = (50, 95, 99)


def _rng() -> np.random.Generator:
    return np.random.default_rng(1234)


DISTRIBUTIONS = {
    "uniform": lambda r, n: r.uniform(1.0, 500.0, n),
    "normal": lambda r, n: np.abs(r.normal(120.0, 30.0, n)) + 1e-3,
    "exponential": lambda r, n: r.exponential(40.0, n),
    "lognormal": lambda r, n: r.lognormal(3.0, 1.5, n),
    "pareto-heavy-tail": lambda r, n: (r.pareto(1.1, n) + 1.0) * 5.0,
    "cauchy-abs-heavy-tail": lambda r, n: np.abs(r.standard_cauchy(n)) + 1e-6,
    "bimodal": lambda r, n: np.where(r.random(n) < 0.9, r.normal(30.0, 2.0, n), r.normal(900.0, 50.0, n)),
    "constant": lambda r, n: np.full(n, 42.125),
    "all-negative": lambda r, n: -r.lognormal(2.0, 1.0, n),
    "sub-millisecond": lambda r, n: r.uniform(1e-4, 1e-2, n),
}


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 200_000])
@pytest.mark.parametrize("dist", sorted(DISTRIBUTIONS))
def test_sketch_percentiles_within_one_percent_of_numpy(dist, n):
    values = DISTRIBUTIONS[dist](_rng(), n)
    s = QuantileSketch()
    s.extend(values)
    assert s.count == n and s.min == values.min() and s.max == values.max()
    got = s.quantiles([q / 100 for q in QS])
    for q, v in zip(QS, got, strict=True):
        want = float(np.percentile(values, q))
        assert v is not None
        assert abs(v - want) <= 0.01 * abs(want) + 1e-12, (dist, n, q, v, want)


def test_one_by_one_appends_match_array_extend():
    values = DISTRIBUTIONS["lognormal"](_rng(), 5000)
    a, b = QuantileSketch(), QuantileSketch()
    for v in values:
        a.append(float(v))
    b.extend(values)
    assert a.percentiles() == b.percentiles() and a.bucket_count == b.bucket_count
    assert a.sum == pytest.approx(b.sum)


def test_sketch_shape_matches_the_exact_summary_and_skips_non_finite():
    assert QuantileSketch().percentiles() == percentiles([]) == {"p50": None, "p95": None, "p99": None}
    s = QuantileSketch()
    s.extend([1.0, float("nan"), float("inf"), 0.0, 3.0])
    assert s.count == 3 and s.skipped == 2
    assert set(s.percentiles()) == {"p50", "p95", "p99"}
    assert s.percentiles((0, 50, 100)) == {"p0": 0.0, "p50": pytest.approx(1.0, rel=0.0051), "p100": 3.0}
    with pytest.raises(ValueError, match="relative_accuracy"):
        QuantileSketch(relative_accuracy=0.0)


def test_merge_equals_adding_everything_to_one():
    r = _rng()
    x, y = r.lognormal(2, 1, 3000), r.exponential(10, 2000)
    a, b, both = QuantileSketch(), QuantileSketch(), QuantileSketch()
    a.extend(x)
    b.extend(y)
    both.extend(np.concatenate([x, y]))
    a.merge(b)
    assert a.percentiles() == both.percentiles() and a.count == both.count


def test_memory_stays_flat_after_ten_million_samples():
    r = _rng()
    t0 = time.perf_counter()
    tracemalloc.start()
    try:
        s = QuantileSketch()
        s.extend(r.lognormal(3.0, 1.0, 1_000_000))
        mem_1m = tracemalloc.get_traced_memory()[0]
        for _ in range(9):
            s.extend(r.lognormal(3.0, 1.0, 1_000_000))
        mem_10m = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert s.count == 10_000_000
    # A list would hold 80 MB by now. The sketch only gains a bucket when a new extreme arrives (the tails of
    # 10x more samples reach a little further), never one per sample, and never more than max_buckets.
    assert s.bucket_count <= 1000 < s.max_buckets
    assert mem_10m < 256 * 1024 and mem_10m - mem_1m < 64 * 1024  # bytes
    assert time.perf_counter() - t0 < 10


def test_bucket_count_is_bounded_whatever_the_range():
    r = _rng()
    s = QuantileSketch(max_buckets=256)
    s.extend(10.0 ** r.uniform(-8, 300, 1_000_000))  # 308 decades: far more than 256 buckets can cover
    s.extend(-(10.0 ** r.uniform(-8, 300, 1_000)))
    assert s.bucket_count <= 2 * 256 + 1
    assert s.count == 1_001_000 and s.max > 1e299


def test_collapsing_keeps_the_high_quantiles_accurate():
    r = _rng()
    normal = r.lognormal(3.0, 0.5, 100_000)
    junk = 10.0 ** r.uniform(-300, -3, 500)  # a few absurdly small values spread over ~300 decades
    values = np.concatenate([normal, junk])
    s = QuantileSketch(max_buckets=512)
    s.extend(values)
    assert len(s._pos) <= 512  # the smallest buckets were merged ...
    for q in QS:  # ... and the percentiles the reports use are still within 1%
        assert s.quantile(q / 100) == pytest.approx(np.percentile(values, q), rel=0.01)


def test_stream_metrics_per_sample_updates_stay_bounded():
    m = StreamMetrics(latency_last_minute=TimeWindow(60.0, capacity=1024))
    r = _rng()
    lat = r.lognormal(3.0, 0.5, 200_000)
    for i, v in enumerate(lat):  # 200 k frames at 100 fps: 33 minutes of stream, sample by sample
        m.add_latency(float(v), i / 100.0)
        m.model_ms.append(float(v) / 2)
        m.action_ms.append(float(v) / 3)
    assert len(m.latency_last_minute) == 1024 and m.latency_last_minute.truncated
    assert m.latency_ms.bucket_count < 400 and m.latency_first_minute.count == 6000
    assert m.latency_ms.percentiles()["p95"] == pytest.approx(np.percentile(lat, 95), rel=0.01)


def _reference_first_last(pts: np.ndarray, lat: np.ndarray) -> tuple[dict, dict]:
    """What the unbounded implementation computed from its per-frame lists."""
    first = lat[pts < pts[0] + 60].tolist()
    last = lat[pts >= pts[-1] - 60].tolist()
    return percentiles(first, (50, 95)), percentiles(last, (50, 95))


def _ten_minute_stream(fps: float) -> tuple[np.ndarray, np.ndarray]:
    r = _rng()
    pts = np.arange(0.0, 600.0, 1.0 / fps)
    lat = 40.0 + 30.0 * pts / 600.0 + r.exponential(5.0, pts.size)  # latency creeps up by 30 ms over 10 min
    return pts, lat


def _feed(m: StreamMetrics, pts: np.ndarray, lat: np.ndarray) -> dict:
    for p, v in zip(pts, lat, strict=True):
        m.processed += 1
        m.add_latency(float(v), float(p))
        if m.first_pts is None:
            m.first_pts = float(p)
        m.last_pts = float(p)
    m.finish()
    return m.summary()


def test_first_and_last_minute_on_a_ten_minute_stream():
    pts, lat = _ten_minute_stream(fps=10.0)
    out = _feed(StreamMetrics(), pts, lat)
    first_ref, last_ref = _reference_first_last(pts, lat)
    assert out["latency_ms_last_minute"] == last_ref  # the ring buffer holds the whole last minute: exact
    for k in ("p50", "p95"):
        assert out["latency_ms_first_minute"][k] == pytest.approx(first_ref[k], rel=0.01)
    assert out["latency_ms_last_minute"]["p50"] > out["latency_ms_first_minute"]["p50"] + 20  # the creep shows
    assert out["stream_s"] == pytest.approx(599.9)


def test_last_minute_faster_than_the_cap_keeps_the_newest_samples():
    pts, lat = _ten_minute_stream(fps=50.0)
    m = StreamMetrics(latency_last_minute=TimeWindow(60.0, capacity=1000))  # 20 s of a 50 fps stream
    out = _feed(m, pts, lat)
    _, last_ref = _reference_first_last(pts, lat)
    assert m.latency_last_minute.truncated and len(m.latency_last_minute) == 1000
    for k in ("p50", "p95"):  # the newest 20 s stand in for the minute: close, since the creep is slow
        assert out["latency_ms_last_minute"][k] == pytest.approx(last_ref[k], rel=0.05)


def test_summary_keys_and_shapes_are_unchanged():
    m = StreamMetrics()
    out = m.summary()
    assert set(out) == {
        "frames_in", "processed", "dropped", "gated", "responses", "standbys", "actions", "action_errors",
        "wall_s", "stream_s", "fps_in", "fps_processed", "real_time_factor", "latency_ms", "model_ms", "action_ms",
    }  # fmt: skip
    assert out["latency_ms"] == {"p50": None, "p95": None, "p99": None}
    short = _feed(StreamMetrics(), np.arange(0, 100, 0.5), np.full(200, 12.5))
    assert "latency_ms_first_minute" not in short  # under two minutes: no first/last-minute figures
    assert short["latency_ms"] == {"p50": 12.5, "p95": 12.5, "p99": 12.5}
    long = _feed(StreamMetrics(), np.arange(0, 130, 0.5), np.full(260, 12.5))
    assert long["latency_ms_first_minute"] == long["latency_ms_last_minute"] == {"p50": 12.5, "p95": 12.5}
