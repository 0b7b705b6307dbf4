"""Serving many streams: cross-stream batching vs one stream at a time, side by side in one run.

What it measures (one row per number of streams ``S``): ``S`` streams each send ``frames`` frames, all
cameras ticking together (every tick, each stream submits its next frame and waits for its decision),
through the server's :class:`~agentkit.policies.vlm.scheduler.BatchScheduler` and the streaming engine
(each stream its own device-resident cache). Two copies of the streams run in the same process:

* **batched**: the scheduler puts up to ``max_batch`` streams' frames in one forward
  (:func:`~agentkit.policies.vlm.batch.step_batch`);
* **sequential**: ``max_batch=1``, one forward per frame, streams served one after another (FIFO).

Ticks alternate between the two (batched then sequential, then the other way round), so the machine's
load, which on a shared machine moves by 2x within seconds, hits both alike. Aggregate frames/s is
``S * frames / (sum of the mode's tick times)``; ``speedup`` is their ratio, ``speedup_paired_median`` the
median over ticks of (sequential tick time / batched tick time) of the same tick, run back to back (robust
to bursts of load from other processes); latency is per frame, from submit to decision (in the
sequential mode a frame also waits for the streams ahead of it: that is what one-at-a-time costs).
Both copies see the same frames with the same weights, so their decisions must agree
(``decisions_equal``). Each row is measured ``repeats`` times with fresh streams and holds the medians (and
the speedup's range). Weights are random (speed does not depend on their values).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agentkit.benchmarks.report import Report, environment
from agentkit.policies.vlm.architectures import get_arch
from agentkit.policies.vlm.batch import cpu_attention_gqa
from agentkit.policies.vlm.build import build_model
from agentkit.policies.vlm.loading import Loaded, pick_device
from agentkit.types import Frame


class ServeBenchConfig(BaseModel):
    """What :func:`run_bench` measures.

    Attributes:
        arch / size: model architecture and size (random weights; ``tiny`` for CPU).
        streams: the numbers of concurrent streams, one row each.
        frames: frames per stream (ticks).
        tokens_per_frame: vision tokens per frame (``None``: the size's default, 4 for ``tiny``).
        max_batch: most streams per forward in the batched mode (``None``: all of them).
        window_ms: the scheduler's wait for the previous batch's streams.
        repeats: independent measurements per row (fresh streams each); the row holds their medians.
        prepare_workers: threads that make the frames' vision chunks ahead of the model.
        device / dtype: default CUDA+bf16 when available, else CPU+fp32.
        seed: seed of the random weights and frames.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = "qwen2_vl"
    size: str = "tiny"
    streams: tuple[int, ...] = (1, 4, 8, 16)
    frames: int = Field(32, ge=2)
    tokens_per_frame: int | None = None
    max_batch: int | None = Field(None, ge=1)
    window_ms: float = Field(5.0, ge=0)
    repeats: int = Field(3, ge=1)
    prepare_workers: int = Field(2, ge=0)
    device: str | None = None
    dtype: str | None = None
    seed: int = 0


def _pct(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _frame_side(arch: str, tokens_per_frame: int) -> int:
    token_px = get_arch(arch).token_px
    if token_px is None:
        return 96  # resized to the vision tower's square: any size does
    side = round(tokens_per_frame**0.5)
    if side * side != tokens_per_frame:
        raise ValueError(f"--tokens-per-frame must be a square number for {arch}, got {tokens_per_frame}")
    return side * token_px


class _Mode:
    """One copy of the streams with its own scheduler."""

    def __init__(self, loaded: Loaded, streams: int, max_batch: int, cfg: ServeBenchConfig) -> None:
        from agentkit.policies.vlm.policy import VLMPolicy
        from agentkit.policies.vlm.scheduler import BatchScheduler

        # response_threshold=1.0: a random model would answer at random; a step is one frame appended and a
        # state chosen, which is what a server does for every frame (a Response adds its decoding on top)
        self.policies = [VLMPolicy(loaded, decision="tokens", response_threshold=1.0) for _ in range(streams)]
        self.scheduler = BatchScheduler(
            max_batch=max_batch, window_ms=cfg.window_ms, prepare_workers=cfg.prepare_workers
        )
        self.tick_s: list[float] = []
        self.latency_ms: list[float] = []
        self.probs: list[list[dict[str, float]]] = [[] for _ in range(streams)]

    async def tick(self, frames: list[Frame]) -> None:
        async def one(s: int) -> None:
            t0 = time.perf_counter()
            d = await self.scheduler.submit(self.policies[s], frames[s])
            self.latency_ms.append((time.perf_counter() - t0) * 1000.0)
            if d.errors:
                raise RuntimeError(f"stream {s}: {d.errors[0]}")
            self.probs[s].append(d.meta.get("probs", {}))

        t0 = time.perf_counter()
        await asyncio.gather(*(one(s) for s in range(len(frames))))
        self.tick_s.append(time.perf_counter() - t0)

    async def close(self) -> None:
        await self.scheduler.close()


def _agree(a: _Mode, b: _Mode, tol: float = 2e-3) -> bool:
    """The two modes chose from the same probabilities (rounded to 4 digits in the decisions)."""
    for pa_stream, pb_stream in zip(a.probs, b.probs, strict=True):
        for pa, pb in zip(pa_stream, pb_stream, strict=True):
            if set(pa) != set(pb) or any(abs(pa[k] - pb[k]) > tol for k in pa):
                return False
    return True


async def _measure(loaded: Loaded, streams: int, cfg: ServeBenchConfig, side: int) -> dict[str, Any]:
    rng = np.random.default_rng(cfg.seed + streams)
    images = [rng.integers(0, 255, (side, side, 3), dtype=np.uint8) for _ in range(16)]
    batched = _Mode(loaded, streams, cfg.max_batch or streams, cfg)
    sequential = _Mode(loaded, streams, 1, cfg)
    try:
        # warm-up, untimed: the first forwards of a process (and of each batch shape) pay one-time costs
        for mode in (batched, sequential):
            warm = _Mode(loaded, streams, mode.scheduler.max_batch, cfg)
            warm.scheduler = mode.scheduler
            for i in range(2):
                await warm.tick([Frame(images[(i + s) % len(images)], t=i, pts=i, seq=i) for s in range(streams)])
        batched.scheduler.stats = type(batched.scheduler.stats)()
        for i in range(cfg.frames):
            frames = [Frame(images[(i + 3 * s) % len(images)], t=float(i), pts=float(i), seq=i) for s in range(streams)]
            order = (batched, sequential) if i % 2 == 0 else (sequential, batched)
            for mode in order:
                await mode.tick(frames)
        stats = batched.scheduler.stats.summary()
    finally:
        await batched.close()
        await sequential.close()
    n = streams * cfg.frames
    b_fps, s_fps = n / sum(batched.tick_s), n / sum(sequential.tick_s)
    paired = [s / b for b, s in zip(batched.tick_s, sequential.tick_s, strict=True)]
    pol = batched.policies[0]
    return {
        "streams": streams,
        "frames": cfg.frames,
        "batched_fps": round(b_fps, 2),
        "sequential_fps": round(s_fps, 2),
        "speedup": round(b_fps / s_fps, 2),
        "speedup_paired_median": round(statistics.median(paired), 2),
        "p50_ms": round(_pct(batched.latency_ms, 50), 2),
        "p95_ms": round(_pct(batched.latency_ms, 95), 2),
        "sequential_p50_ms": round(_pct(sequential.latency_ms, 50), 2),
        "sequential_p95_ms": round(_pct(sequential.latency_ms, 95), 2),
        "batched_tick_ms_median": round(statistics.median(batched.tick_s) * 1000.0, 2),
        "sequential_tick_ms_median": round(statistics.median(sequential.tick_s) * 1000.0, 2),
        "mean_batch": stats["mean_batch"],
        "cache_tokens": len(pol.session),
        "decisions_equal": _agree(batched, sequential),
    }


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from repeated measurements: the median of every figure, the range of the speedup."""
    row: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            row[key] = all(r[key] for r in runs) if isinstance(value, bool) else value
        else:
            row[key] = round(statistics.median(r[key] for r in runs), 2)
    row["speedup_min"] = min(r["speedup"] for r in runs)
    row["speedup_max"] = max(r["speedup"] for r in runs)
    row["repeats"] = len(runs)
    return row


def run_bench(cfg: ServeBenchConfig, progress: Callable[[str, int, int], None] | None = None) -> Report:
    """Run the benchmark: one row per number of streams (see the module docstring)."""
    import torch

    dev, dt = pick_device(cfg.device, cfg.dtype)
    cpu_attention_gqa(dev)
    model, tok, proc = build_model(
        cfg.arch, cfg.size, cfg.seed, dtype=dt, device=dev, tokens_per_frame=cfg.tokens_per_frame
    )
    loaded = Loaded(cfg.arch, get_arch(cfg.arch).make_adapter(model, tok, proc), f"random:{cfg.arch}:{cfg.size}")
    tpf = cfg.tokens_per_frame or get_arch(cfg.arch).tiny_builder().default_tokens_per_frame(cfg.size)
    side = _frame_side(cfg.arch, tpf)
    measured_tpf = sum(1 for k in loaded.adapter.frame_chunk(np.zeros((side, side, 3), np.uint8)).types if k != 0)
    rows = []
    for k, streams in enumerate(cfg.streams):
        if progress:
            progress("streams", k, len(cfg.streams))
        runs = [asyncio.run(_measure(loaded, streams, cfg, side)) for _ in range(cfg.repeats)]
        row = _median_row(runs)
        row["tokens_per_frame"] = measured_tpf
        rows.append(row)
    if progress:
        progress("streams", len(cfg.streams), len(cfg.streams))
    at8 = next((r for r in rows if r["streams"] == 8), rows[-1] if rows else None)
    overall: dict[str, Any] = {}
    if at8 is not None:
        overall = {
            "streams": at8["streams"],
            "speedup": at8["speedup"],
            "speedup_paired_median": at8["speedup_paired_median"],
            "batched_fps": at8["batched_fps"],
            "sequential_fps": at8["sequential_fps"],
            "p95_ms": at8["p95_ms"],
            "decisions_equal": all(r["decisions_equal"] for r in rows),
        }
    where = {"device": str(dev), "dtype": str(dt).replace("torch.", ""), "torch_threads": torch.get_num_threads()}
    return Report(
        benchmark="serve_batching",
        overall=overall,
        rows=rows,
        config=cfg.model_dump(mode="json"),
        environment={**environment(), **where},
    )


__all__ = ["ServeBenchConfig", "run_bench"]
