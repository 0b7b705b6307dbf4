"""``agentkit train``: the training loop (a plain torch loop), periodic held-out evaluation, resumable
checkpoints, early stopping, curves, and a checkpoint folder the engine loads.

Why a plain loop and not ``transformers.Trainer``: a batch here is several dialogues that share one long
system prefix (the tools' JSON schemas), which is run once per batch and its key/value cache repeated for
every row (:func:`~agentkit.policies.vlm.train.collate.forward`); and the periodic evaluation streams
through the engine's own session. Both are a few lines in a loop and awkward inside ``Trainer``.

Output folder ``OUT``::

    config.json model.safetensors tokenizer*.json preprocessor_config.json agentkit_vlm.json   the checkpoint
    training/log.jsonl        loss, state accuracy, learning rate, samples/s every ``log_every`` steps
    training/eval.jsonl       held-out metrics at every evaluation (``evaluate.evaluate``)
    training/final_eval.json  the last evaluation, on every held-out dialogue
    training/summary.json     steps, seconds, samples/s, parameters, the config and the final metrics
    training/curves.png       loss and held-out curves
    training/last/            the latest full-precision weights and optimizer state (``resume``)
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentkit.errors import ConfigError
from agentkit.policies.vlm.decide import STATE_TOKEN_SETS
from agentkit.policies.vlm.train.dataset import STATES, Dialogue, load_dialogues, prompt_style_of
from agentkit.policies.vlm.train.loss import StateLoss


class TrainConfig(BaseModel):
    """One training run; a bad value names the field.

    Attributes:
        data: an exported dataset folder (``agentkit data export``).
        out: the checkpoint folder to write.
        arch: train a new model of this architecture from scratch (with ``preset``) ...
        model: ... or fine-tune this checkpoint folder (state tokens added when missing).
        preset: from-scratch size (``tiny``, ``small``, ``base``; see ``model.PRESETS``).
        max_pixels: pixels per frame (Qwen): sets the vision tokens per frame (``max_pixels / 28**2``),
            stored in the checkpoint's image processor so the engine feeds the same size. Default: 48 tokens
            for a new model, the checkpoint's own otherwise.
        image_size: from scratch, SmolVLM / Idefics3: the square side frames are resized to (tokens per
            frame: ``(image_size / patch / 2) ** 2``); default: the preset's.
        vocab_size: from scratch: BPE vocabulary of the tokenizer trained on the dataset's text.
        state_tokens: which state-token names to use (``agentkit``: ``<silence>``...; ``streamo``).
        steps: optimizer steps.
        batch_size: dialogues per step.
        lr: peak learning rate (linear warm-up, cosine decay to ``lr * min_lr_ratio``).
        state_loss: ``focal`` (Streamo, ``gamma``), ``ce``, or ``weighted`` (inverse-frequency weights).
        pointer_loss: weight of the pointer-attention loss (:func:`~.loss.pointer_loss`: one head of the last
            layer is taught to look, from the tokens that write a point, at the image token it lies in);
            0 disables it. Training only: the saved model runs as any other.
        lora: LoRA (``peft``) instead of full fine-tuning; default: only for pretrained models above 300 M
            parameters. From-scratch models are always trained in full.
        bf16: autocast to bfloat16 (default: on CUDA). Gradient checkpointing follows ``gradient_checkpointing``
            (default: on CUDA for pretrained models).
        eval_every: steps between held-out evaluations (0: only at the end).
        eval_dialogues: held-out dialogues in a periodic evaluation (all of them at the end).
        save_every: steps between resumable checkpoints in ``training/last``.
        resume: continue from ``training/last`` when it exists.
        target_*: stop early once every given target is met at an evaluation.
        max_turns: cut longer dialogues to this many turns.
        tol: point tolerance (normalized) of ``points_within`` / ``calls_within``.
        save_dtype: dtype of the saved checkpoint (fp16 halves its size; the loader upcasts on CPU).
        threads: torch CPU threads (default: torch's choice).
    """

    model_config = ConfigDict(extra="forbid")

    data: Path
    out: Path
    arch: str | None = None
    model: str | None = None
    preset: str = "small"
    max_pixels: int | None = Field(None, gt=0)
    image_size: int | None = Field(None, gt=0)
    vocab_size: int = Field(2000, ge=300)
    state_tokens: Literal["agentkit", "streamo"] = "agentkit"
    steps: int = Field(1000, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup_steps: int = Field(50, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    state_loss: StateLoss = "focal"
    gamma: float = Field(2.0, ge=0)
    pointer_loss: float = Field(0.0, ge=0)
    lora: bool | None = None
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    bf16: bool | None = None
    gradient_checkpointing: bool | None = None
    eval_every: int = Field(250, ge=0)
    eval_dialogues: int = Field(48, ge=1)
    save_every: int = Field(250, ge=1)
    log_every: int = Field(10, ge=1)
    resume: bool = True
    seed: int = 0
    device: str | None = None
    target_state_accuracy: float | None = Field(None, gt=0, le=1)
    target_points_within: float | None = Field(None, gt=0, le=1)
    target_calls_within: float | None = Field(None, gt=0, le=1)
    max_turns: int | None = Field(None, ge=1)
    tol: float = Field(0.02, gt=0)
    max_new_tokens: int = Field(96, ge=1)
    save_dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    threads: int | None = Field(None, ge=1)
    progress: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> TrainConfig:
        if (self.arch is None) == (self.model is None):
            raise ValueError("give exactly one of arch (train from scratch) or model (fine-tune a checkpoint)")
        return self


def frame_loader(root: Path, cache: int = 256) -> Callable[[str], Any]:
    """Reads a dataset's frame (path relative to ``root``) as RGB, keeping the last ``cache`` in memory."""
    import cv2

    @functools.lru_cache(maxsize=cache)
    def load(rel: str) -> Any:
        img = cv2.imread(str(root / rel), cv2.IMREAD_COLOR)
        if img is None:
            raise ConfigError(f"cannot read the frame {root / rel}")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    return load


def corpus_of(dialogues: Sequence[Dialogue]) -> list[str]:
    """The texts a new tokenizer is trained on: prompts (weighted), questions and answers."""
    systems = sorted({d.system for d in dialogues} | {d.instruction for d in dialogues})
    texts = [t.question or "" for d in dialogues for t in d.turns] + [t.answer for d in dialogues for t in d.turns]
    return systems * 20 + [x for x in texts if x]


def batches(dialogues: Sequence[Dialogue], batch_size: int, seed: int) -> Iterator[list[Dialogue]]:
    """An endless, seeded stream of batches; a batch holds dialogues with one system prefix."""
    epoch = 0
    while True:
        order = list(range(len(dialogues)))
        random.Random(seed * 100_003 + epoch).shuffle(order)
        groups: dict[tuple[str, str], list[Dialogue]] = {}
        for i in order:
            d = dialogues[i]
            g = groups.setdefault((d.system, d.instruction), [])
            g.append(d)
            if len(g) == batch_size:
                yield list(g)
                g.clear()
        epoch += 1


def _lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(cfg.warmup_steps, 1)
        frac = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))

    return f


def _targets_met(cfg: TrainConfig, ev: dict[str, Any]) -> bool:
    checks = []
    if cfg.target_state_accuracy is not None:
        checks.append(ev["states"]["accuracy"] >= cfg.target_state_accuracy)
    resp = ev.get("responses") or {}
    if cfg.target_points_within is not None:
        checks.append((resp.get("points_within") or 0.0) >= cfg.target_points_within)
    if cfg.target_calls_within is not None:
        checks.append((resp.get("calls_within") or 0.0) >= cfg.target_calls_within)
    return bool(checks) and all(checks)


def _append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


class Run:
    """A training run's state (model, optimizer, data) between steps; :func:`train` drives it."""

    def __init__(self, cfg: TrainConfig) -> None:
        import torch

        from agentkit.policies.vlm.train import model as mdl
        from agentkit.policies.vlm.train.collate import state_token_ids

        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.dir = cfg.out / "training"
        self.last = self.dir / "last"
        self.train_set = self._cut(load_dialogues(cfg.data, "train"))
        self.test_set = self._cut(load_dialogues(cfg.data, "test"))
        if not self.train_set:
            raise ConfigError(f"{cfg.data} has no training dialogues")
        self.load_frame = frame_loader(Path(cfg.data))
        names = STATE_TOKEN_SETS[cfg.state_tokens]
        resuming = cfg.resume and (self.last / "trainer_state.json").exists()
        self.state: dict[str, Any] = (
            json.loads((self.last / "trainer_state.json").read_text()) if resuming else {"step": 0, "seconds": 0.0}
        )
        if resuming and self.state.get("lora"):
            self.t = mdl.load_pretrained(str(cfg.model), state_tokens=names, max_pixels=cfg.max_pixels, lora=True,
                                         lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, device=cfg.device)  # fmt: skip
            from peft import set_peft_model_state_dict
            from safetensors.torch import load_file

            set_peft_model_state_dict(self.t.peft, load_file(str(self.last / "adapter_model.safetensors")))
        elif resuming:
            self.t = mdl.load_pretrained(str(self.last), state_tokens=names, lora=False, device=cfg.device)
            self.t.source = self.state.get("source", self.t.source)
        elif cfg.arch is not None:
            self.t = mdl.new_model(
                cfg.arch,
                cfg.preset,
                corpus_of(self.train_set),
                vocab_size=cfg.vocab_size,
                state_tokens=names,
                max_pixels=cfg.max_pixels,
                image_size=cfg.image_size,
                seed=cfg.seed,
            )
        else:
            self.t = mdl.load_pretrained(
                str(cfg.model),
                state_tokens=names,
                max_pixels=cfg.max_pixels,
                lora=cfg.lora,
                lora_r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                device=cfg.device,
            )
        self.device = self.t.adapter.device
        cuda = self.device.type == "cuda"
        self.bf16 = cfg.bf16 if cfg.bf16 is not None else cuda
        ckpt = (
            cfg.gradient_checkpointing if cfg.gradient_checkpointing is not None else (cuda and cfg.model is not None)
        )
        if ckpt:
            self.t.model.gradient_checkpointing_enable()
        self.state_ids = state_token_ids(self.t.adapter, names)
        counts = Counter(t.state for d in self.train_set for t in d.turns)
        from agentkit.policies.vlm.train.loss import class_weights

        self.weights = class_weights([counts.get(s, 0) for s in STATES])
        params = [p for p in self.t.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _lr_lambda(cfg))
        if resuming:
            saved = torch.load(self.last / "optimizer.pt", map_location="cpu", weights_only=False)
            self.opt.load_state_dict(saved["optimizer"])
            self.sched.load_state_dict(saved["scheduler"])
            torch.set_rng_state(saved["torch_rng"])
        self.resumed_from = self.state["step"] if resuming else None
        self.stream = batches(self.train_set, cfg.batch_size, cfg.seed)
        for _ in range(self.state["step"]):  # the batches already trained on
            next(self.stream)
        self.n_params = sum(p.numel() for p in self.t.model.parameters())
        self.n_trainable = sum(p.numel() for p in params)

    def _cut(self, ds: list[Dialogue]) -> list[Dialogue]:
        if self.cfg.max_turns:
            for d in ds:
                d.turns = d.turns[: self.cfg.max_turns]
        return ds

    def step(self) -> dict[str, Any]:
        """One optimizer step on the next batch; returns its log row."""
        import contextlib

        import torch

        from agentkit.policies.vlm.train.collate import collate, encode_dialogue, forward
        from agentkit.policies.vlm.train.loss import pointer_loss, streaming_loss

        cfg = self.cfg
        t0 = time.perf_counter()
        dialogues = next(self.stream)
        adapter = self.t.adapter
        enc = [encode_dialogue(adapter, d, self.load_frame, self.state_ids) for d in dialogues]
        pad = self.t.tokenizer.pad_token_id if self.t.tokenizer.pad_token_id is not None else 0
        batch = collate(enc, pad, adapter.pos_axes)
        self.t.model.train()
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext()
        point = cfg.pointer_loss > 0 and batch.pointers is not None and batch.pointers.numel() > 0
        if point:
            self._attention("eager")
        with amp:
            out = forward(self.t.model, adapter, batch, attentions=point)
        logits, attentions = out if point else (out, None)
        parts = streaming_loss(
            logits, batch.labels, batch.states, self.state_ids, mode=cfg.state_loss, gamma=cfg.gamma,
            weights=self.weights,
        )  # fmt: skip
        loss = parts.loss
        ptr = pointer_loss(attentions, batch.pointers) if point else None
        if ptr is not None:
            loss = loss + cfg.pointer_loss * ptr
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        self.state["step"] += 1
        self.state["seconds"] += dt
        self.state["samples"] = self.state.get("samples", 0) + batch.n_samples
        self.state["tokens"] = self.state.get("tokens", 0) + batch.n_tokens
        return {
            "step": self.state["step"],
            "loss": round(float(parts.loss.detach()), 5),
            "state_loss": round(parts.state_loss, 5),
            "answer_loss": round(parts.answer_loss, 5),
            "state_acc": round(parts.state_correct / max(parts.state_tokens, 1), 4),
            "pointer_loss": round(float(ptr.detach()), 5) if ptr is not None else None,
            "lr": self.sched.get_last_lr()[0],
            "samples_per_s": round(batch.n_samples / dt, 3),
            "tokens_per_s": round(batch.n_tokens / dt, 1),
            "seconds": round(self.state["seconds"], 2),
        }

    def style_meta(self) -> dict[str, str]:
        """``{"prompt_style": ...}`` when every training dialogue used one style (the tool policies then send
        the same prompt at run time), for the final checkpoint and the resumable one alike."""
        styles = {prompt_style_of(d) for d in self.train_set}
        style = styles.pop() if len(styles) == 1 else None
        return {"prompt_style": style} if style is not None else {}

    def _attention(self, kind: str) -> None:
        """Switch the model's attention implementation (eager exposes the probabilities the pointer loss
        needs; SDPA is faster for evaluation and is what the saved checkpoint uses)."""
        if getattr(self, "_attn", "sdpa") != kind:
            self.t.model.set_attn_implementation(kind)
            self._attn = kind

    def evaluate(self, limit: int | None) -> dict[str, Any]:
        from agentkit.policies.vlm.train.evaluate import evaluate

        self._attention("sdpa")
        ds = self.test_set if limit is None else self.test_set[:limit]
        ev = evaluate(
            self.t.adapter,
            ds,
            self.load_frame,
            self.state_ids,
            tol=self.cfg.tol,
            max_new_tokens=self.cfg.max_new_tokens,
        )
        return {"step": self.state["step"], **ev}

    def save_last(self) -> None:
        import torch

        self._attention("sdpa")
        self.last.mkdir(parents=True, exist_ok=True)
        if self.t.peft is not None:
            self.t.peft.save_pretrained(self.last)
            self.t.tokenizer.save_pretrained(self.last)
        else:
            from agentkit.policies.vlm.train.model import save

            save(self.t, self.last, dtype="float32", meta=self.style_meta())
        torch.save(
            {
                "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(),
                "torch_rng": torch.get_rng_state(),
            },
            self.last / "optimizer.pt",
        )
        state = {**self.state, "lora": self.t.peft is not None, "source": self.t.source}
        tmp = self.last / "trainer_state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, self.last / "trainer_state.json")  # written last: a half-saved folder is never resumed


def train(cfg: TrainConfig, on_log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train, evaluate and save as :class:`TrainConfig` says; returns the run's summary.

    Raises:
        ConfigError: bad data or options (one line naming the problem).
    """
    from agentkit.policies.vlm.train.model import save
    from agentkit.policies.vlm.train.plots import plot_curves

    run = Run(cfg)
    run.dir.mkdir(parents=True, exist_ok=True)
    log_path, eval_path = run.dir / "log.jsonl", run.dir / "eval.jsonl"
    if run.resumed_from is None:  # a fresh run: earlier logs in this folder are not its own
        for p in (log_path, eval_path):
            p.unlink(missing_ok=True)
    progress = _Progress(cfg.steps, run.state["step"]) if cfg.progress else None
    stopped_early = False
    try:
        while run.state["step"] < cfg.steps:
            row = run.step()
            step = row["step"]
            if progress is not None:
                progress.update(row)
            if step % cfg.log_every == 0 or step == cfg.steps:
                _append_jsonl(log_path, row)
                if on_log is not None:
                    on_log(row)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps and run.test_set:
                ev = run.evaluate(cfg.eval_dialogues)
                _append_jsonl(eval_path, ev)
                if progress is not None:
                    progress.note(ev)
                plot_curves(_read_jsonl(log_path), _read_jsonl(eval_path), run.dir / "curves.png", str(cfg.out))
                if _targets_met(cfg, ev):
                    stopped_early = True
                    run.save_last()
                    break
            if step % cfg.save_every == 0 or step == cfg.steps:
                run.save_last()
    finally:
        if progress is not None:
            progress.close()
    final = run.evaluate(None) if run.test_set else None
    if final is not None:
        _append_jsonl(eval_path, final)
        (run.dir / "final_eval.json").write_text(json.dumps(final, indent=2))
    plot_curves(_read_jsonl(log_path), _read_jsonl(eval_path), run.dir / "curves.png", str(cfg.out))
    st = run.state
    summary = {
        "steps": st["step"],
        "resumed_from": run.resumed_from,
        "stopped_early": stopped_early,
        "seconds": round(st["seconds"], 1),
        "samples": st.get("samples", 0),
        "samples_per_s": round(st.get("samples", 0) / max(st["seconds"], 1e-9), 3),
        "tokens_per_s": round(st.get("tokens", 0) / max(st["seconds"], 1e-9), 1),
        "parameters": run.n_params,
        "trainable_parameters": run.n_trainable,
        "lora": run.t.peft is not None,
        "device": str(run.device),
        "threads": _threads(),
        "train_dialogues": len(run.train_set),
        "test_dialogues": len(run.test_set),
        "config": cfg.model_dump(mode="json"),
        "final_eval": final,
    }
    meta: dict[str, Any] = {
        "training": {k: summary[k] for k in ("steps", "seconds", "samples_per_s", "parameters", "lora")}
    }
    meta.update(run.style_meta())
    run._attention("sdpa")
    save(run.t, cfg.out, dtype=cfg.save_dtype, meta=meta)
    (run.dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


class _Progress:
    """A rich progress bar with the running loss, state accuracy and speed."""

    def __init__(self, total: int, done: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.task = self.bar.add_task("train", total=total, completed=done, info="")
        self.loss: float | None = None
        self.held = ""
        self.bar.start()

    def update(self, row: dict[str, Any]) -> None:
        self.loss = row["loss"] if self.loss is None else 0.9 * self.loss + 0.1 * row["loss"]
        info = f"loss {self.loss:.4f}  {row['samples_per_s']:.1f} samples/s{self.held}"
        self.bar.update(self.task, completed=row["step"], info=info)

    def note(self, ev: dict[str, Any]) -> None:
        resp = ev.get("responses") or {}
        pe = resp.get("point_error_mean")
        self.held = f"  held-out: states {ev['states']['accuracy']:.3f}" + (
            f", point err {pe:.4f}" if pe is not None else ""
        )

    def close(self) -> None:
        self.bar.stop()


__all__ = ["Run", "TrainConfig", "batches", "corpus_of", "frame_loader", "train"]
