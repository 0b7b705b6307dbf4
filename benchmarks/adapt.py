"""``agentkit bench adapt``: peak memory of zeroth-order adaptation vs inference vs backprop, same model, same data.

Why: the claim behind on-device adaptation is that MeZO / QZO fit wherever inference fits, and backprop
fine-tuning does not. Each mode runs in its own fresh process (``python -m agentkit.benchmarks.adapt``), so
nothing one mode allocated is counted in another's figures:

- ``inference``: the checkpoint through the engine's loader (fp32 on CPU), streaming the same dialogues
  through the engine's session (:func:`~agentkit.policies.vlm.train.evaluate.evaluate`: one forward per
  frame on the persistent cache, Responses decoded);
- ``inference-int8``: the same with the linear layers quantised (:mod:`agentkit.policies.vlm.adapt.quant`);
- ``mezo``: MeZO steps over every parameter (:mod:`agentkit.policies.vlm.adapt.mezo`);
- ``qzo``: QZO steps over the scales of the int8 (or ``--bits 4``) model;
- ``backprop``: the existing trainer's steps (:class:`~agentkit.policies.vlm.train.trainer.Run`: full
  fine-tuning, AdamW), on the same batches (same dataset, batch size and seed).

Per mode: resident memory after imports and after loading (the weights and the data); the **peak during the
measured phase**
(``VmHWM`` reset after loading, :mod:`agentkit.policies.vlm.adapt.memory`: loading is the same for every
mode and is not what is compared) and how far it rises above the loaded process (``above_loaded_mb``: the
phase's own working memory: activations, caches, gradients, optimiser state); the lifetime peak of the process
(``ru_maxrss`` of the child, from ``os.wait4``); seconds per step. The report's ``overall`` holds the ratios
to inference (target for adaptation: <= 1.3).

``--text-size HxIxL`` measures a larger model of the same architecture instead (random weights, language
model hidden size H, MLP size I, L layers; memory does not depend on weight values), where the weights, not
the libraries, dominate the footprint, as on a device running a real checkpoint.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentkit.benchmarks.report import Report
from agentkit.errors import ConfigError

Mode = Literal["inference", "inference-int8", "mezo", "qzo", "backprop"]
MODES: tuple[Mode, ...] = ("inference", "inference-int8", "mezo", "qzo", "backprop")
TARGET_RATIO = 1.3
"""Adaptation's peak over inference's: at most this."""


class AdaptBenchConfig(BaseModel):
    """One ``agentkit bench adapt`` run; a bad value names the field."""

    model_config = ConfigDict(extra="forbid")

    model: str
    data: Path
    modes: list[Mode] = Field(default_factory=lambda: list(MODES))
    steps: int = Field(2, ge=1)
    batch_size: int = Field(4, ge=1)
    micro_batch: int | None = Field(None, ge=1)
    bits: Literal[8, 4] = 8
    threads: int = Field(1, ge=1)
    seed: int = 0
    max_new_tokens: int = Field(32, ge=1)
    text_size: str | None = None  # HxIxL: a larger random model of the same architecture
    timeout_s: float = Field(3600.0, gt=0)


def parse_text_size(spec: str) -> tuple[int, int, int]:
    """``"1024x2816x16"`` -> ``(hidden, intermediate, layers)``.

    Raises:
        ConfigError: not three positive integers joined by ``x``, or a hidden size not a multiple of 64.
    """
    parts = spec.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"--text-size {spec!r}: expected HIDDENxINTERMEDIATExLAYERS, e.g. 1024x2816x16")
    h, i, n = (int(p) for p in parts)
    if h % 64:
        raise ConfigError(f"--text-size {spec!r}: the hidden size must be a multiple of 64 (heads of 64)")
    return h, i, n


def scaled_checkpoint(src: str, out: Path, text_size: str, seed: int = 0) -> Path:
    """A random-weight checkpoint with ``src``'s architecture, tokenizer and image processor, and a language
    model of ``text_size`` (heads of 64, a quarter of them key/value heads)."""
    import torch
    from transformers import AutoConfig

    from agentkit.policies.vlm.architectures import arch_of

    hidden, inter, layers = parse_text_size(text_size)
    config = AutoConfig.from_pretrained(src)
    spec = arch_of(config)
    if spec is None:
        raise ConfigError(f"{src}: model type {getattr(config, 'model_type', '?')!r} is not supported")
    d = config.to_dict()
    tc = d["text_config"]
    heads = hidden // 64
    for derived in ("layer_types", "head_dim"):
        tc.pop(derived, None)
    tc.update(hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=heads,
              num_key_value_heads=max(1, heads // 4))  # fmt: skip
    if spec.token_px is not None:  # Qwen: M-RoPE sections of a 64-wide head; the merger feeds the text width
        tc["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 12, 12]}
        d["vision_config"]["hidden_size"] = hidden
    config = type(config).from_dict(d)
    torch.manual_seed(seed)
    model = spec.load_model_class()(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for f in Path(src).iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "preprocessor", "processor", "chat_template")):
            shutil.copy(f, out / f.name)
    (out / "agentkit_vlm.json").write_text(json.dumps({"arch": spec.name, "random_weights": True,
                                                       "text_size": text_size, "from": src}))  # fmt: skip
    return out


# -- one mode, in a fresh process -----------------------------------------------------------------------------


def _batches(data: Path, batch_size: int, seed: int, steps: int) -> list[list[Any]]:
    from agentkit.policies.vlm.train.dataset import load_dialogues
    from agentkit.policies.vlm.train.trainer import batches

    train = load_dialogues(data, "train")
    if not train:
        raise ConfigError(f"{data} has no training dialogues")
    stream = batches(train, min(batch_size, len(train)), seed)
    return [next(stream) for _ in range(steps)]


def _loss(objective: Any, encoded: list[Any]) -> float:
    return float(objective(encoded).loss)


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """Measure one mode (run in a child process by :func:`measure_mode`); returns its figures."""
    import torch

    from agentkit.policies.vlm.adapt import memory
    from agentkit.policies.vlm.adapt.quant import quantize_model
    from agentkit.policies.vlm.decide import detect_state_tokens
    from agentkit.policies.vlm.loading import load
    from agentkit.policies.vlm.train.collate import state_token_ids
    from agentkit.policies.vlm.train.trainer import frame_loader

    mode: str = job["mode"]
    data = Path(job["data"])
    torch.set_num_threads(int(job["threads"]))
    torch.manual_seed(int(job["seed"]))
    rss_imports = memory.rss_mb()
    t_load = time.perf_counter()
    batches = _batches(data, int(job["batch_size"]), int(job["seed"]), int(job["steps"]))
    load_frame = frame_loader(data)
    run = adapter = None
    trainable = 0
    if mode == "backprop":
        from agentkit.policies.vlm.train.trainer import Run, TrainConfig

        tmp = Path(tempfile.mkdtemp(prefix="agentkit-bench-bp-"))
        cfg = TrainConfig(data=data, out=tmp, model=job["model"], batch_size=int(job["batch_size"]), lora=False,
                          steps=int(job["steps"]), threads=int(job["threads"]), seed=int(job["seed"]),
                          progress=False, bf16=False, gradient_checkpointing=False)  # fmt: skip
        run = Run(cfg)
        model = run.t.model
        trainable = run.n_trainable
    else:
        adapter = load(job["model"], dtype="float32").adapter
        model = adapter.model
        if mode in ("inference-int8", "qzo"):
            quantize_model(model, int(job["bits"]))
    params = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for b in model.buffers() if not b.dtype.is_floating_point
    )
    weight_mb = (sum(p.numel() * p.element_size() for p in model.parameters())
                 + sum(b.numel() * b.element_size() for b in model.buffers())) / 2**20  # fmt: skip
    zo = objective = None
    if mode in ("mezo", "qzo") and adapter is not None:
        from agentkit.policies.vlm.adapt.mezo import ZeroOrder, select_params
        from agentkit.policies.vlm.adapt.objective import Objective
        from agentkit.policies.vlm.adapt.qzo import qzo_params

        names = detect_state_tokens(adapter)
        if names is None:
            raise ConfigError(f"{job['model']} has no state tokens")
        sids = state_token_ids(adapter, names)
        objective = Objective(adapter, sids, load_frame, micro_batch=job.get("micro_batch"))
        zo_params = select_params(model) if mode == "mezo" else qzo_params(model)
        zo = ZeroOrder(zo_params, eps=1e-3, lr=1e-6, seed=int(job["seed"]))
        trainable = zo.numel
    load_s = time.perf_counter() - t_load
    memory.release()  # every mode alike: what loading freed is not held against the phase
    rss_loaded = memory.rss_mb()
    reset = memory.reset_peak()
    t0 = time.perf_counter()
    if mode in ("inference", "inference-int8") and adapter is not None:
        from agentkit.policies.vlm.train.evaluate import evaluate

        names = detect_state_tokens(adapter)
        if names is None:
            raise ConfigError(f"{job['model']} has no state tokens")
        dialogues = [d for b in batches for d in b]
        evaluate(adapter, dialogues, load_frame, state_token_ids(adapter, names),
                 max_new_tokens=int(job["max_new_tokens"]))  # fmt: skip
        units = len(batches)
    elif zo is not None and objective is not None:
        for b in batches:
            enc = objective.encode(b)
            zo.step(functools.partial(_loss, objective, enc))
        units = zo.steps
    else:
        assert run is not None
        for _ in batches:
            run.step()
        units = len(batches)
        shutil.rmtree(run.cfg.out, ignore_errors=True)
    seconds = time.perf_counter() - t0
    return {
        "mode": mode,
        "values": int(params),
        "trainable": int(trainable),
        "weights_mb": round(weight_mb, 1),
        "rss_imports_mb": round(rss_imports, 1),
        "rss_loaded_mb": round(rss_loaded, 1),
        "peak_mb": round(memory.peak_mb(), 1),
        "peak_is_phase": reset,
        "load_s": round(load_s, 2),
        "seconds_per_step": round(seconds / max(units, 1), 3),
        "threads": int(torch.get_num_threads()),
    }


def measure_mode(mode: Mode, cfg: AdaptBenchConfig, model: str, data: Path) -> dict[str, Any]:
    """Run :func:`worker` for ``mode`` in a fresh Python process; adds the child's lifetime peak RSS.

    Raises:
        ConfigError: the child failed (its last line of stderr) or ran past ``timeout_s``.
    """
    job = {"mode": mode, "model": model, "data": str(data), "steps": cfg.steps, "batch_size": cfg.batch_size,
           "micro_batch": cfg.micro_batch, "bits": cfg.bits, "threads": cfg.threads, "seed": cfg.seed,
           "max_new_tokens": cfg.max_new_tokens}  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg.threads), "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "agentkit.benchmarks.adapt", json.dumps(job)],
                                stdout=out, stderr=err, env=env)  # fmt: skip
        deadline = time.monotonic() + cfg.timeout_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise ConfigError(f"bench adapt: mode {mode} ran past {cfg.timeout_s:.0f} s")
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        last = [line for line in stderr.splitlines() if line.strip()][-1:] or [f"exit code {proc.returncode}"]
        raise ConfigError(f"bench adapt: mode {mode} failed: {last[0]}")
    row: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    kb = usage.ru_maxrss
    row["lifetime_peak_mb"] = round(kb / 1024 / (1024 if sys.platform == "darwin" else 1), 1)
    return row


def bench(cfg: AdaptBenchConfig, on_row: Any = None) -> Report:
    """Measure every mode of ``cfg`` (one process each) and return the report."""
    from agentkit.policies.vlm.adapt.run import dataset_dir, source_meta

    scratch = Path(tempfile.mkdtemp(prefix="agentkit-bench-adapt-"))
    try:
        data = dataset_dir(cfg.data, scratch, 0.1, str(source_meta(cfg.model).get("prompt_style") or "full"))
        model = cfg.model
        if cfg.text_size:
            model = str(scaled_checkpoint(cfg.model, scratch / "scaled", cfg.text_size, cfg.seed))
        rows = []
        for mode in cfg.modes:
            row = measure_mode(mode, cfg, model, data)
            rows.append(row)
            if on_row is not None:
                on_row(row)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    by = {r["mode"]: r for r in rows}
    base = by.get("inference")
    for r in rows:
        if base is not None:
            r["ratio_to_inference"] = round(r["peak_mb"] / base["peak_mb"], 3)
            r["lifetime_ratio_to_inference"] = round(r["lifetime_peak_mb"] / base["lifetime_peak_mb"], 3)
        r["above_loaded_mb"] = round(r["peak_mb"] - r["rss_loaded_mb"], 1)
    overall: dict[str, Any] = {"target_ratio": TARGET_RATIO}
    for mode in ("mezo", "qzo", "backprop", "inference-int8"):
        if mode in by and base is not None:
            overall[f"{mode}_over_inference"] = by[mode]["ratio_to_inference"]
    if "qzo" in by and "inference-int8" in by:
        overall["qzo_over_inference_int8"] = round(by["qzo"]["peak_mb"] / by["inference-int8"]["peak_mb"], 3)
    adapt_ratios = [overall[k] for k in ("mezo_over_inference", "qzo_over_inference") if k in overall]
    if adapt_ratios:
        overall["adaptation_within_target"] = max(adapt_ratios) <= TARGET_RATIO
    config = cfg.model_dump(mode="json")
    return Report(benchmark="adapt_memory", overall=overall, rows=rows, config=config)


COLUMNS = ("mode", "values", "trainable", "weights_mb", "rss_loaded_mb", "peak_mb", "above_loaded_mb",
           "ratio_to_inference", "seconds_per_step")  # fmt: skip


def _main() -> None:
    job = json.loads(sys.argv[1])
    try:
        row = worker(job)
    except Exception as e:  # the parent reports the last line of stderr
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    _main()


__all__ = ["COLUMNS", "MODES", "TARGET_RATIO", "AdaptBenchConfig", "bench", "measure_mode", "scaled_checkpoint",
           "worker"]  # fmt: skip
