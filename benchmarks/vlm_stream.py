"""Speed and memory of the streaming engine vs re-prefilling the history, side by side in one run.

Rows (one per history length): the engine's per-frame step (one frame appended to the resident cache,
state chosen, evicting nothing) against a full re-prefill of the same transcript with no cache, which is
what calling ``generate()`` on the whole history costs for every frame; decode ms per token; memory.
The long run streams thousands of frames with eviction and compares step time and memory at frame 100
with the last frame: its figures are the report's ``overall``. Weights are random: speed does not depend
on their values. The result is the project's one report schema (:class:`~agentkit.benchmarks.report.Report`),
with the device, dtype and torch threads added to its ``environment``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from agentkit.benchmarks.report import Report, environment
from agentkit.policies.vlm.architectures import get_arch
from agentkit.policies.vlm.build import build_model
from agentkit.policies.vlm.decode import DecodeConfig, decode
from agentkit.policies.vlm.loading import Loaded, pick_device
from agentkit.types import Frame


class BenchConfig(BaseModel):
    """What :func:`run_bench` measures.

    Attributes:
        arch / size: model architecture and size (``tiny``, ``2b``, ``7b``; random weights).
        histories: frames of history at which the step is compared with a re-prefill.
        tokens_per_frame: vision tokens per frame (a square number).
        frames: length of the long run with eviction (0 to skip it).
        repeats: timed repeats per measurement (medians are reported).
        reprefill_max_history: skip (record null) re-prefill above this history.
        window_s: eviction window of the long run, seconds of stream time at 1 frame per second.
        decode_tokens: tokens generated for the ms/token figure.
        device / dtype: default CUDA+bf16 when available, else CPU+fp32.
        seed: seed of the random weights and frames.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: str = "qwen2_vl"
    size: str = "tiny"
    histories: tuple[int, ...] = (8, 32, 128, 512)
    tokens_per_frame: int = 64
    frames: int = 5000
    repeats: int = 5
    reprefill_max_history: int = 128
    window_s: float = 16.0
    decode_tokens: int = 16
    device: str | None = None
    dtype: str | None = None
    seed: int = 0


def _timed_step_from(pol: Any, snap: Any, pending: list[Any], frame: Any, dev: Any) -> float:
    """Restore the session to ``snap`` and time one engine step on ``frame`` (ms, device synchronised)."""
    pol.session.restore(snap)
    pol._pending = list(pending)
    _sync(dev)
    t0 = time.perf_counter()
    pol.step(frame)
    _sync(dev)
    return (time.perf_counter() - t0) * 1000.0


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def _peak_mb(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _mem_mb(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return _rss_mb()


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _policy(loaded: Loaded, window_s: float | None) -> Any:
    from agentkit.policies.vlm.policy import VLMPolicy

    # response_threshold=1.0: the random model never answers, so a step is exactly one frame append
    return VLMPolicy(loaded, decision="tokens", response_threshold=1.0, window_s=window_s)


def _frame(rng: np.random.Generator, side: int, i: int) -> Frame:
    img = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    return Frame(img, t=float(i), pts=float(i), seq=i)


def _reprefill_ms(policy: Any, frames: list[Frame], repeats: int) -> float:
    """Median ms of one no-cache forward over prefix + all ``frames`` (processor and vision included)."""
    import torch

    ad = policy.adapter
    t = ad.template
    silence = policy.state_ids[next(iter(policy.state_ids))]
    times = []
    for _ in range(repeats):
        _sync(ad.device)
        t0 = time.perf_counter()
        chunk = ad.encode([t.system.format(system=policy.prompt, instruction=policy.instruction)])
        for f in frames:
            chunk.extend(
                ad.encode(
                    [
                        t.user_open,
                        t.frame_header.format(t0=f.pts, t1=f.pts + 1),
                        f.image,
                        t.turn_close,
                        t.assistant_open,
                        [silence],
                        t.turn_close,
                    ]
                )
            )
        with torch.inference_mode():
            pos, _ = ad.positions(chunk, 0)
            ad.reset_state()
            ad.forward(chunk, pos, None, logits_to_keep=1)
        _sync(ad.device)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def run_bench(cfg: BenchConfig, progress: Callable[[str, int, int], None] | None = None) -> Report:
    """Run the benchmark: one row per history size; ``overall`` holds the long run's figures.

    Args:
        cfg: what to measure.
        progress: called as ``progress(task, done, total)`` while measuring.
    """
    import torch

    dev, dt = pick_device(cfg.device, cfg.dtype)
    model, tok, proc = build_model(
        cfg.arch, cfg.size, cfg.seed, dtype=dt, device=dev, tokens_per_frame=cfg.tokens_per_frame
    )
    loaded = Loaded(cfg.arch, get_arch(cfg.arch).make_adapter(model, tok, proc), f"random:{cfg.arch}:{cfg.size}")
    side = _frame_side(cfg)
    rng = np.random.default_rng(cfg.seed)
    where = {"device": str(dev), "dtype": str(dt).replace("torch.", ""), "torch_threads": torch.get_num_threads()}

    rows: list[dict[str, Any]] = []
    pol = _policy(loaded, None)
    frames: list[Frame] = []
    hist = sorted(set(cfg.histories))
    total = max(hist) + cfg.repeats * len(hist) if hist else 0  # frames streamed + timed steps
    done = 0
    tpf_measured = None
    for h in hist:
        while len(frames) < h:  # grow the history with the engine itself
            f = _frame(rng, side, len(frames))
            pol.step(f)
            frames.append(f)
            done += 1
            if progress:
                progress("history", done, total)
        if tpf_measured is None:
            tpf_measured = sum(1 for i in pol.adapter.frame_chunk(frames[0].image).types if i != 0)
        # side by side: the engine's step at exactly this history (session restored from a snapshot before
        # each timed step) alternates with a full re-prefill, so machine noise hits both alike
        snap, pending = pol.session.snapshot(), list(pol._pending)
        f = _frame(rng, side, h)
        do_rp = h <= cfg.reprefill_max_history
        rp_repeats = max(1, min(cfg.repeats, 3)) if h > 128 else cfg.repeats
        inc: list[float] = []
        rp: list[float] = []
        for r in range(cfg.repeats):
            inc.append(_timed_step_from(pol, snap, pending, f, dev))
            if do_rp and r < rp_repeats:
                rp.append(_reprefill_ms(pol, frames[:h], 1))
            done += 1
            if progress:
                progress("history", done, total)
        pol.session.restore(snap)
        pol._pending = list(pending)
        row: dict[str, Any] = {
            "arch": cfg.arch,
            "size": cfg.size,
            "history": h,
            "tokens_per_frame": tpf_measured,
            "incremental_ms": round(statistics.median(inc), 3),
            "incremental_ms_min": round(min(inc), 3),
        }
        if do_rp:
            row["reprefill_ms"] = round(statistics.median(rp), 3)
            row["reprefill_ms_min"] = round(min(rp), 3)
            row["speedup"] = round(row["reprefill_ms"] / row["incremental_ms"], 2)
        else:
            row["reprefill_ms"] = None
            row["speedup"] = None
            row["reprefill_skipped"] = f"history {h} > --reprefill-max-history {cfg.reprefill_max_history}"
        row["decode_ms_per_token"] = _decode_ms(pol, cfg)
        pol.session.restore(snap)
        pol._pending = list(pending)
        row["cache_tokens"] = len(pol.session)
        row["cache_mb"] = round(pol.session.cache_bytes() / 2**20, 3)
        row["peak_mem_mb"] = round(_peak_mb(dev), 1)  # process peak so far (includes the re-prefills)
        row["mem_mb"] = round(_mem_mb(dev), 1)  # current (RSS on CPU, allocated on CUDA)
        rows.append(row)
    pol.close()
    del pol

    overall: dict[str, Any] = {"long_run": "skipped (frames=0)"}
    if cfg.frames > 0:
        overall = _long_run(loaded, cfg, rng, side, progress)
    return Report(
        benchmark="vlm_stream",
        overall=overall,
        rows=rows,
        config=cfg.model_dump(mode="json"),
        environment={**environment(), **where},
    )


def _decode_ms(pol: Any, cfg: BenchConfig) -> float | None:
    if cfg.decode_tokens < 2:
        return None
    s = pol.session
    first = s.append([[pol.state_ids[next(reversed(list(pol.state_ids)))]]])
    res = decode(s, first, DecodeConfig(max_new_tokens=cfg.decode_tokens), eos_ids=set())
    pol._pending = [res.last_id, *pol._close_ids]
    return None if res.ms_per_token is None else round(res.ms_per_token, 3)


def _long_run(
    loaded: Loaded,
    cfg: BenchConfig,
    rng: np.random.Generator,
    side: int,
    progress: Callable[[str, int, int], None] | None,
) -> dict[str, Any]:
    """Stream ``cfg.frames`` frames with eviction. Step time at frame 100 vs the last frame is measured two
    ways: in the run (medians of the 21 steps around each), and paired: snapshots of the session at both
    frames are restored alternately and one step timed on each, so machine noise hits both alike."""
    dev = loaded.adapter.device
    pol = _policy(loaded, cfg.window_s)
    steps: list[float] = []
    mem: dict[int, float] = {}
    cache: list[int] = []
    imgs = [rng.integers(0, 255, (side, side, 3), dtype=np.uint8) for _ in range(8)]
    n = cfg.frames
    at = min(100, n) - 1
    snaps: dict[str, Any] = {}
    for i in range(n):
        f = Frame(imgs[i % len(imgs)], t=float(i), pts=float(i), seq=i)
        if i in (at, n - 1):
            state = (pol.session.snapshot(), list(pol._pending), f)
            if i == at:
                snaps["first"] = state
            if i == n - 1:
                snaps["last"] = state
        _sync(dev)
        t0 = time.perf_counter()
        pol.step(f)
        _sync(dev)
        steps.append((time.perf_counter() - t0) * 1000.0)
        if i == at or i == n - 1:
            mem[i] = _mem_mb(dev)
        cache.append(len(pol.session))
        if progress:
            progress("long run", i + 1, n)
    paired: dict[str, list[float]] = {"first": [], "last": []}
    for _ in range(max(5, cfg.repeats * 4)):
        for key in ("first", "last"):
            snap, pending, f = snaps[key]
            paired[key].append(_timed_step_from(pol, snap, pending, f, dev))
    around = steps[max(0, at - 10) : at + 11]
    last = steps[-21:]
    p_first, p_last = statistics.median(paired["first"]), statistics.median(paired["last"])
    out = {
        "frames": n,
        "first_frame": at + 1,  # 100, or the last frame of a shorter run
        "window_s": cfg.window_s,
        "step_ms_at_100": round(p_first, 3),
        "step_ms_at_last": round(p_last, 3),
        "ratio_last_to_100": round(p_last / p_first, 3),
        "inrun_step_ms_at_100": round(statistics.median(around), 3),
        "inrun_step_ms_at_last": round(statistics.median(last), 3),
        "mem_mb_at_100": round(mem[at], 1),
        "mem_mb_at_last": round(mem[n - 1], 1),
        "cache_tokens_at_100": cache[at],
        "cache_tokens_at_last": cache[-1],
        "cache_mb_at_last": round(pol.session.cache_bytes() / 2**20, 3),
        "positions_at_last": pol.session.next_pos,
        "evicted_tokens": pol.session.stats.evicted_tokens,
    }
    pol.close()
    return out


def _frame_side(cfg: BenchConfig) -> int:
    """Side of the square random frames: sized to the token budget where the frame's size decides the token
    count (Qwen), else any size (SmolVLM, LLaVA-OneVision resize to their own square; the config decides)."""
    token_px = get_arch(cfg.arch).token_px
    if token_px is None:
        return 128
    side = round(cfg.tokens_per_frame**0.5)
    if side * side != cfg.tokens_per_frame:
        raise ValueError(f"--tokens-per-frame must be a square number, got {cfg.tokens_per_frame}")
    return side * token_px


__all__ = ["BenchConfig", "run_bench"]
