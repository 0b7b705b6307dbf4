"""``agentkit adapt``: zeroth-order adaptation of a checkpoint on a few dozen recorded episodes.

The run: load the checkpoint through the engine's loader (the model the policy runs), read the data (an
exported dataset, or recording folders exported on the fly), score the held-out dialogues, then ``steps``
zeroth-order steps (:class:`~agentkit.policies.vlm.adapt.mezo.ZeroOrder`) on seeded batches of the training
dialogues (the trainer's :func:`~agentkit.policies.vlm.train.trainer.batches`), each step two forward passes
of the training loss (:class:`~agentkit.policies.vlm.adapt.objective.Objective`); every ``eval_every`` steps
the watched loss (held-out dialogues), with which the run keeps its best point and backs off a blow-up
(both by undoing logged steps: no weights are stored); at the end the held-out metrics again, through the
engine's streaming session (:func:`~agentkit.policies.vlm.train.evaluate.evaluate`), and the checkpoint is
saved.

- ``mezo``: every floating-point parameter (or those ``include`` / ``exclude`` select) moves.
- ``qzo``: the linear layers are quantised (``bits`` 8 or 4, per-output-channel scales) and only the scales
  (and biases, norms) move; the model is saved dequantised (weights ``int * scale``), an ordinary checkpoint.

Output folder ``OUT``: the checkpoint (``config.json model.safetensors tokenizer* preprocessor_config.json
agentkit_vlm.json``, whose ``adaptation`` entry says how it was made) and ``adaptation/``: ``log.jsonl`` (per
step: seed, projected gradient, lr, both losses: the run can be replayed from the seeds), ``eval.jsonl``
(watched loss, best points, backtracks), ``summary.json`` (before / after held-out loss and metrics,
steps/s, peak memory).
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentkit.errors import ConfigError
from agentkit.policies.vlm.train.loss import StateLoss

Method = Literal["mezo", "qzo"]


class AdaptConfig(BaseModel):
    """One adaptation run; a bad value names the field.

    Attributes:
        model: the checkpoint folder to adapt.
        data: an exported dataset (``agentkit data export``) or recording folders' parent (exported on the fly).
        out: the checkpoint folder to write.
        method: ``mezo`` (all float weights) or ``qzo`` (quantisation scales of an int8/int4 model).
        bits: QZO's integer width (8 or 4).
        steps: zeroth-order steps (two forward passes each); 0 with ``qzo``: quantise only.
        max_minutes: stop earlier when this much time has passed (the budget of a device).
        batch_size: dialogues per step (one system prefix per batch, as in training).
        micro_batch: dialogues per forward pass (bounds the activations; default: the whole batch).
        lr: learning rate (constant; ``lr_decay`` ``linear`` decays it to 0 at ``steps``).
        eps: perturbation size (relative to each tensor's unit: 1 for weights, a layer's scale RMS for QZO).
        weight_decay: for MeZO's matrices.
        clip: clip the projected gradient to ``[-clip, clip]`` (QZO's directional-derivative clipping).
        include / exclude: MeZO: regular expressions over parameter names (default: every parameter).
        biases / norms: QZO: also move the quantised layers' biases / the normalisation layers' parameters.
        state_loss / gamma: the training loss (as ``agentkit train``).
        eval_every: steps between measurements of the watched loss (held-out dialogues, else training ones).
        eval_dialogues: dialogues watched (the whole held-out set is scored at the start and the end).
        keep_best: end at the point of the run with the lowest watched loss (later steps are undone by
            replaying their seeds backwards: no weights are stored).
        backtrack: when the watched loss exceeds the best by ``backtrack_ratio`` (relative), return to the
            best point and halve the learning rate (zeroth-order runs can drift off and blow up).
        test_fraction: share held out when ``data`` holds recordings (exported here).
        save_dtype: the saved weights' dtype; float32 by default, since zeroth-order updates are small and
            float16 could round part of them away.
    """

    model_config = ConfigDict(extra="forbid")

    model: str
    data: Path
    out: Path
    method: Method = "mezo"
    bits: Literal[8, 4] = 8
    steps: int = Field(500, ge=0)
    max_minutes: float | None = Field(None, gt=0)
    batch_size: int = Field(4, ge=1)
    micro_batch: int | None = Field(None, ge=1)
    lr: float = Field(1e-4, gt=0)
    lr_decay: Literal["constant", "linear"] = "constant"
    eps: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    clip: float | None = Field(None, gt=0)
    include: str | None = None
    exclude: str | None = None
    biases: bool = True
    norms: bool = True
    state_loss: StateLoss = "focal"
    gamma: float = Field(2.0, ge=0)
    eval_every: int = Field(50, ge=0)
    eval_dialogues: int = Field(16, ge=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)
    tol: float = Field(0.02, gt=0)
    max_new_tokens: int = Field(96, ge=1)
    final_eval: bool = True
    keep_best: bool = True
    backtrack: bool = True
    backtrack_ratio: float = Field(0.5, gt=0)
    save_dtype: Literal["float16", "bfloat16", "float32"] = "float32"
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    log_every: int = Field(1, ge=1)
    progress: bool = True


def source_meta(model: str) -> dict[str, Any]:
    """The checkpoint's ``agentkit_vlm.json`` (``{}`` when it has none or it cannot be read)."""
    path = Path(model).expanduser() / "agentkit_vlm.json"
    try:
        meta = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}
    return meta if isinstance(meta, dict) else {}


def dataset_dir(data: Path, scratch: Path, test_fraction: float, prompt_style: str = "full") -> Path:
    """``data`` when it is an exported dataset, else its recordings exported into ``scratch`` with the
    checkpoint's ``prompt_style`` (how its system prompt describes the tools).

    Raises:
        ConfigError: ``data`` is neither, or it was exported with another prompt style than the checkpoint's
            (the model would be adapted to a prompt it never gets at run time).
    """
    if (data / "dialogues.parquet").exists():
        try:
            exported = json.loads((data / "stats.json").read_text()).get("export", {})
        except (OSError, json.JSONDecodeError):
            exported = {}
        style = exported.get("prompt_style", "full")
        if style != prompt_style:
            raise ConfigError(
                f"{data} was exported with prompt_style={style!r} but the checkpoint was trained with "
                f"{prompt_style!r}: export the recordings again with --prompt-style {prompt_style}"
            )
        return data
    from agentkit.policies.vlm.train.dataset import export, find_recordings

    if not data.exists() or not find_recordings([data]):
        raise ConfigError(f"{data} is neither an exported dataset (dialogues.parquet) nor a folder of recordings")
    out = scratch / "data"
    kw: dict[str, Any] = {"prompt_style": prompt_style} if prompt_style != "full" else {}
    export([data], out, test_fraction=test_fraction, **kw)
    return out


def load_model(cfg: AdaptConfig) -> tuple[Any, Any]:
    """``(Loaded, quant summary or None)``: the checkpoint through the engine's loader, quantised for QZO."""
    from agentkit.policies.vlm.loading import load

    loaded = load(cfg.model, dtype="float32")
    summary = None
    if cfg.method == "qzo":
        from agentkit.policies.vlm.adapt.memory import release
        from agentkit.policies.vlm.adapt.quant import quantize_model

        summary = quantize_model(loaded.adapter.model, cfg.bits)
        release()
    return loaded, summary


def trainable(cfg: AdaptConfig, model: Any) -> list[Any]:
    """The tensors the method moves."""
    for p in model.parameters():
        p.requires_grad_(False)
    if cfg.method == "qzo":
        from agentkit.policies.vlm.adapt.qzo import qzo_params

        return qzo_params(model, biases=cfg.biases, norms=cfg.norms)
    from agentkit.policies.vlm.adapt.mezo import select_params

    try:
        return select_params(model, cfg.include, cfg.exclude)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _loss(objective: Any, encoded: list[Any]) -> float:
    return float(objective(encoded).loss)


def _append(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def adapt(cfg: AdaptConfig, on_log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Adapt, evaluate and save as :class:`AdaptConfig` says; returns the run's summary.

    Raises:
        ConfigError: bad data or options (one line naming the problem).
    """
    import torch

    from agentkit.policies.vlm.adapt import memory
    from agentkit.policies.vlm.adapt.mezo import ZeroOrder
    from agentkit.policies.vlm.adapt.objective import Objective
    from agentkit.policies.vlm.decide import detect_state_tokens
    from agentkit.policies.vlm.train.collate import state_token_ids
    from agentkit.policies.vlm.train.dataset import STATES, load_dialogues
    from agentkit.policies.vlm.train.evaluate import evaluate
    from agentkit.policies.vlm.train.loss import class_weights
    from agentkit.policies.vlm.train.model import Trainable, save
    from agentkit.policies.vlm.train.trainer import batches, frame_loader

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if cfg.out.resolve() == Path(cfg.model).expanduser().resolve():
        raise ConfigError("--out must differ from --model (the starting checkpoint is kept)")
    scratch = Path(tempfile.mkdtemp(prefix="agentkit-adapt-"))
    try:
        src_meta = source_meta(cfg.model)
        data = dataset_dir(cfg.data, scratch, cfg.test_fraction, str(src_meta.get("prompt_style") or "full"))
        train_set = load_dialogues(data, "train")
        test_set = load_dialogues(data, "test")
        if not train_set:
            raise ConfigError(f"{cfg.data} has no training dialogues")
        load_frame = frame_loader(data)
        loaded, qsum = load_model(cfg)
        adapter = loaded.adapter
        names = detect_state_tokens(adapter)
        if names is None:
            raise ConfigError(f"{cfg.model} has no state tokens (train it with agentkit train first)")
        state_ids = state_token_ids(adapter, names)
        counts = Counter(t.state for d in train_set for t in d.turns)
        objective = Objective(
            adapter, state_ids, load_frame, mode=cfg.state_loss, gamma=cfg.gamma,
            weights=class_weights([counts.get(s, 0) for s in STATES]), micro_batch=cfg.micro_batch,
        )  # fmt: skip
        params = trainable(cfg, adapter.model)
        zo = ZeroOrder(params, eps=cfg.eps, lr=cfg.lr, weight_decay=cfg.weight_decay, clip=cfg.clip, seed=cfg.seed)
        log_dir = cfg.out / "adaptation"
        log_dir.mkdir(parents=True, exist_ok=True)
        for name in ("log.jsonl", "eval.jsonl"):
            (log_dir / name).unlink(missing_ok=True)

        def held_out(limit: int | None) -> dict[str, Any] | None:
            if not test_set:
                return None
            v = objective.of(test_set if limit is None else test_set[:limit])
            return {"loss": round(v.loss, 6), "state_accuracy": round(v.state_accuracy, 4), "targets": v.targets}

        def metrics() -> dict[str, Any] | None:
            if not (test_set and cfg.final_eval):
                return None
            return evaluate(adapter, test_set, load_frame, state_ids, tol=cfg.tol, max_new_tokens=cfg.max_new_tokens)

        t_start = time.perf_counter()
        before = {"held_out": held_out(None), "metrics": metrics()}
        train_before = objective.of(train_set[: cfg.eval_dialogues])
        watch = test_set[: cfg.eval_dialogues] or train_set[: cfg.eval_dialogues]  # what keep_best / backtrack watch
        guard = _Guard(zo, objective.of(watch).loss, cfg.backtrack_ratio if cfg.backtrack else None)
        stream = batches(train_set, cfg.batch_size if len(train_set) >= cfg.batch_size else len(train_set), cfg.seed)
        memory.reset_peak()
        rss_start = memory.rss_mb()
        progress = _Progress(cfg.steps) if cfg.progress else None
        t0 = time.perf_counter()
        step_seconds = 0.0
        stopped_by = "steps"
        ema: float | None = None
        try:
            for k in range(cfg.steps):
                if cfg.max_minutes is not None and time.perf_counter() - t0 > 60 * cfg.max_minutes:
                    stopped_by = "max_minutes"
                    break
                encoded = objective.encode(next(stream))
                lr = (cfg.lr * (1 - k / cfg.steps) if cfg.lr_decay == "linear" else cfg.lr) * guard.lr_scale
                rec = zo.step(functools.partial(_loss, objective, encoded), lr=lr)
                guard.records.append(rec)
                step_seconds += rec.seconds
                ema = rec.loss if ema is None else 0.95 * ema + 0.05 * rec.loss
                row = {
                    "step": rec.step, "seed": rec.seed, "grad": rec.grad, "lr": rec.lr,
                    "loss_plus": round(rec.loss_plus, 6), "loss_minus": round(rec.loss_minus, 6),
                    "clipped": rec.clipped, "skipped": rec.skipped, "seconds": round(rec.seconds, 3),
                }  # fmt: skip
                if rec.step % cfg.log_every == 0:
                    _append(log_dir / "log.jsonl", row)
                    if on_log is not None:
                        on_log(row)
                if cfg.eval_every and rec.step % cfg.eval_every == 0 and rec.step < cfg.steps:
                    loss = objective.of(watch).loss
                    event = guard.check(rec.step, loss)
                    _append(log_dir / "eval.jsonl", {"step": rec.step, "watched_loss": round(loss, 6), **event})
                if progress is not None:
                    progress.update(rec.step, ema)
        finally:
            if progress is not None:
                progress.close()
        peak_steps = memory.peak_mb()
        steps_done = zo.steps
        final_watch = objective.of(watch).loss
        kept = guard.finish(steps_done, final_watch) if cfg.keep_best else {"kept_step": steps_done}
        after = {"held_out": held_out(None), "metrics": metrics()}
        train_after = objective.of(train_set[: cfg.eval_dialogues])
        _append(log_dir / "eval.jsonl", {"step": steps_done, "watched_loss": round(final_watch, 6), **kept})
        n_params = sum(p.numel() for p in adapter.model.parameters()) + sum(
            b.numel() for b in adapter.model.buffers() if not b.dtype.is_floating_point
        )
        summary: dict[str, Any] = {
            "method": cfg.method,
            "bits": cfg.bits if cfg.method == "qzo" else None,
            "model": cfg.model,
            "data": str(cfg.data),
            "steps": steps_done,
            "stopped_by": stopped_by,
            "seconds": round(time.perf_counter() - t_start, 1),
            "step_seconds": round(step_seconds, 1),
            "steps_per_s": round(steps_done / step_seconds, 4) if step_seconds else None,
            "forward_passes": 2 * steps_done,
            "kept_step": kept["kept_step"],
            "backtracks": guard.backtracks,
            "watched": "held-out" if test_set else "train",
            "trainable_values": zo.numel,
            "model_values": int(n_params),
            "quantized": None if qsum is None else qsum.__dict__,
            "train_dialogues": len(train_set),
            "test_dialogues": len(test_set),
            "threads": int(torch.get_num_threads()),
            "memory_mb": {"rss_at_start": round(rss_start, 1), "peak_during_steps": round(peak_steps, 1),
                          "lifetime_peak": round(memory.lifetime_peak_mb(), 1)},
            "train_loss": {"before": round(train_before.loss, 6), "after": round(train_after.loss, 6),
                           "dialogues": min(cfg.eval_dialogues, len(train_set))},
            "before": before,
            "after": after,
            "config": cfg.model_dump(mode="json"),
        }  # fmt: skip
        if cfg.method == "qzo":
            from agentkit.policies.vlm.adapt.quant import dequantize_model

            dequantize_model(adapter.model)
        t = Trainable(loaded.arch, adapter.model, adapter.tokenizer, adapter.image_processor, adapter, cfg.model)
        # what the source checkpoint says of itself (prompt style, training) stays true of the adapted one
        meta = {k: v for k, v in src_meta.items() if k not in ("arch", "random_weights", "trained", "source", "dtype")}
        keys = ("method", "bits", "model", "steps", "seconds", "trainable_values")
        meta["adaptation"] = {k: summary[k] for k in keys}
        save(t, cfg.out, dtype=cfg.save_dtype, meta=meta)
        (log_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
        return summary
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _Guard:
    """Keeps the best point of a run without storing weights: the steps since the best evaluation are kept
    as records (seed, gradient, lr) and undone by replaying them backwards (:meth:`ZeroOrder.replay`).

    ``backtrack``: when the watched loss rises above ``best * (1 + ratio)`` (zeroth-order runs can drift off
    and blow up), go back to the best point and halve the learning rate.
    """

    def __init__(self, zo: Any, start_loss: float, ratio: float | None) -> None:
        self.zo = zo
        self.best = start_loss
        self.best_step = 0
        self.ratio = ratio
        self.records: list[Any] = []
        self.lr_scale = 1.0
        self.backtracks = 0

    def check(self, step: int, loss: float) -> dict[str, Any]:
        if math.isfinite(loss) and loss < self.best:
            self.best, self.best_step = loss, step
            self.records.clear()
            return {"best": True}
        if self.ratio is not None and not (math.isfinite(loss) and loss <= self.best * (1 + self.ratio)):
            self.zo.replay(self.records, undo=True)
            self.records.clear()
            self.lr_scale *= 0.5
            self.backtracks += 1
            return {"backtrack_to": self.best_step, "lr_scale": self.lr_scale}
        return {}

    def finish(self, step: int, loss: float) -> dict[str, Any]:
        """Undo the steps after the best point when the end is worse than it."""
        if math.isfinite(loss) and loss <= self.best:
            return {"kept_step": step}
        self.zo.replay(self.records, undo=True)
        self.records.clear()
        return {"kept_step": self.best_step, "undone_to_best": True}


def _json_default(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


class _Progress:
    """A rich progress bar with the running loss."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("[bold]adapt"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.task = self.bar.add_task("adapt", total=total, info="")
        self.bar.start()

    def update(self, step: int, loss: float | None) -> None:
        self.bar.update(self.task, completed=step, info=f"loss {loss:.4f}" if loss is not None else "")

    def close(self) -> None:
        self.bar.stop()


__all__ = ["AdaptConfig", "Method", "adapt", "dataset_dir", "load_model", "source_meta", "trainable"]
