"""CLI: ``agentkit data export|stats|eval`` (recordings -> a Streamo dataset) and ``agentkit train``.

torch, transformers, datasets and pyarrow are imported inside the commands (``pip install agentkit[train]``),
so ``agentkit --help`` stays fast and works without them.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from agentkit.apps.cli.common import check_writable, run_guarded
from agentkit.apps.cli.groups import app

data_app = typer.Typer(
    help="Training data: export recordings as a streaming dataset, inspect it.", no_args_is_help=True
)
app.add_typer(data_app, name="data")


@data_app.command("export")
def data_export(
    recordings: list[Path] = typer.Argument(..., help="recording folders, or folders holding them (--record DIR)"),
    out: Path = typer.Option(..., "--out", help="dataset folder to write"),
    fps: float = typer.Option(2.0, help="frames kept per second of stream time (0: every frame)"),
    max_turns: int = typer.Option(32, help="longest dialogue (turns)"),
    test_fraction: float = typer.Option(0.1, help="share of episodes held out (stable hash of the episode id)"),
    keep_text: bool = typer.Option(False, help="keep a Response's free text before its tool calls"),
    domain: str | None = typer.Option(None, help="gui | robot | narration (default: from each meta.json)"),
    prompt_style: str = typer.Option("full", help="tools in the system prompt: full (JSON schemas) | compact"),
    successful_only: bool = typer.Option(
        False, help="leave out episodes their run's report marks as failed (kept when no report says)"
    ),
    force: bool = typer.Option(False, help="replace an earlier export in --out"),
) -> None:
    """Turn recordings into a Streamo dataset: dialogues.parquet (+ .jsonl), frames/, stats.json, datasheet.md."""

    def body() -> int:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from agentkit.policies.vlm.train.dataset import export

        with Progress(
            TextColumn("[bold]export"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        ) as bar:
            task = bar.add_task("export", total=None)
            st = export(
                recordings,
                out,
                fps=fps or None,
                max_turns=max_turns,
                test_fraction=test_fraction,
                keep_text=keep_text,
                domain=domain,
                prompt_style=prompt_style,
                successful_only=successful_only,
                force=force,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        typer.echo((out / "datasheet.md").read_text())
        typer.echo(json.dumps({"episodes": st["episodes"], "turns": st["turns"], "states": st["states"]}))
        return 0

    run_guarded(body)


@data_app.command("stats")
def data_stats(
    dataset: Path = typer.Argument(..., help="an exported dataset folder"),
    json_out: Path | None = typer.Option(None, "--json", help="write the statistics JSON here"),
) -> None:
    """Counts per state, split, task and tool call of an exported dataset."""

    def body() -> int:
        from agentkit.policies.vlm.train.dataset import datasheet, load_dialogues, stats

        check_writable(json_out)
        st = stats(load_dialogues(dataset))
        saved = dataset / "stats.json"
        if saved.exists():
            st["export"] = json.loads(saved.read_text()).get("export", {})
        typer.echo(datasheet(st))
        if json_out is not None:
            json_out.write_text(json.dumps(st, indent=2))
        return 0

    run_guarded(body)


@data_app.command("eval")
def data_eval(
    dataset: Path = typer.Argument(..., help="an exported dataset folder"),
    model: str | None = typer.Option(None, help="checkpoint folder (default: the shipped one of --shipped)"),
    shipped: str | None = typer.Option(None, help="a shipped checkpoint: gui | fetch"),
    split: str = typer.Option("test", help="test | train | all"),
    limit: int | None = typer.Option(None, help="at most this many dialogues"),
    responses: bool = typer.Option(True, help="decode the Responses (point error, call match)"),
    tol: float = typer.Option(0.02, help="point tolerance, normalized"),
    json_out: Path | None = typer.Option(None, "--json", help="write the metrics JSON here"),
) -> None:
    """Held-out metrics of a checkpoint, streamed through the engine: state P/R per class, point error, calls."""

    def body() -> int:
        from agentkit.errors import ConfigError
        from agentkit.policies.vlm.checkpoints import shipped_checkpoint
        from agentkit.policies.vlm.decide import detect_state_tokens
        from agentkit.policies.vlm.loading import load
        from agentkit.policies.vlm.train.collate import state_token_ids
        from agentkit.policies.vlm.train.dataset import load_dialogues
        from agentkit.policies.vlm.train.evaluate import evaluate
        from agentkit.policies.vlm.train.trainer import frame_loader

        check_writable(json_out)
        if (model is None) == (shipped is None):
            raise ConfigError("give --model PATH or --shipped NAME")
        path = model or str(shipped_checkpoint(str(shipped)))
        loaded = load(path)
        names = detect_state_tokens(loaded.adapter)
        if names is None:
            raise ConfigError(f"{path} has no state tokens (train it with agentkit train)")
        ds = load_dialogues(dataset, None if split == "all" else split)
        ds = ds[:limit] if limit else ds
        if not ds:
            raise ConfigError(f"{dataset} has no {split} dialogues")
        ev = evaluate(
            loaded.adapter,
            ds,
            frame_loader(dataset),
            state_token_ids(loaded.adapter, names),
            tol=tol,
            responses=responses,
        )
        ev = {"model": path, "data": str(dataset), "split": split, **ev}
        text = json.dumps(ev, indent=2)
        typer.echo(text)
        if json_out is not None:
            json_out.write_text(text)
        return 0

    run_guarded(body)


@app.command("train")
def train_cmd(
    data: Path = typer.Option(..., "--data", help="an exported dataset folder (agentkit data export)"),
    out: Path = typer.Option(..., "--out", help="checkpoint folder to write"),
    arch: str | None = typer.Option(None, help="train a new model of this architecture from scratch (qwen2_vl...)"),
    model: str | None = typer.Option(None, help="or fine-tune this checkpoint folder"),
    preset: str = typer.Option("small", help="from-scratch size: tiny | mini | small | base"),
    max_pixels: int | None = typer.Option(None, help="pixels per frame (Qwen: tokens = pixels / 784)"),
    image_size: int | None = typer.Option(None, help="from scratch, SmolVLM: square frame side (tokens = (side/32)^2)"),
    steps: int = typer.Option(1000, help="optimizer steps"),
    batch_size: int = typer.Option(8, help="dialogues per step"),
    lr: float = typer.Option(1e-3, help="peak learning rate"),
    state_loss: str = typer.Option("focal", help="focal (Streamo, gamma) | ce | weighted (class weights)"),
    gamma: float = typer.Option(2.0, help="focal loss exponent"),
    pointer_loss: float = typer.Option(0.0, help="weight of the pointer-attention loss (0: off)"),
    lora: bool | None = typer.Option(None, "--lora/--full", help="LoRA or full fine-tuning (default: LoRA > 300M)"),
    eval_every: int = typer.Option(250, help="steps between held-out evaluations (0: at the end only)"),
    eval_dialogues: int = typer.Option(48, help="held-out dialogues per periodic evaluation"),
    save_every: int = typer.Option(250, help="steps between resumable checkpoints"),
    resume: bool = typer.Option(True, help="continue from OUT/training/last when it exists"),
    target_state_accuracy: float | None = typer.Option(None, help="stop early at this held-out state accuracy"),
    target_points_within: float | None = typer.Option(None, help="stop early at this share of points within tol"),
    target_calls_within: float | None = typer.Option(None, help="stop early at this share of calls within tol"),
    vocab_size: int = typer.Option(2000, help="from scratch: tokenizer vocabulary"),
    seed: int = typer.Option(0, help="random seed"),
    threads: int | None = typer.Option(None, help="torch CPU threads"),
    save_dtype: str = typer.Option("float16", help="dtype of the saved checkpoint: float16 | bfloat16 | float32"),
    bf16: bool | None = typer.Option(None, "--bf16/--fp32", help="autocast to bfloat16 (default: on CUDA)"),
) -> None:
    """Train a streaming Silence/Standby/Response policy (Streamo recipe) on an exported dataset."""

    def body() -> int:
        from agentkit.config import validate
        from agentkit.policies.vlm.train.trainer import TrainConfig, train

        cfg = validate(
            TrainConfig,
            {
                "data": data, "out": out, "arch": arch, "model": model, "preset": preset, "max_pixels": max_pixels,
                "image_size": image_size,
                "steps": steps, "batch_size": batch_size, "lr": lr, "state_loss": state_loss, "gamma": gamma,
                "pointer_loss": pointer_loss,
                "lora": lora, "eval_every": eval_every, "eval_dialogues": eval_dialogues, "save_every": save_every,
                "resume": resume, "target_state_accuracy": target_state_accuracy,
                "target_points_within": target_points_within, "target_calls_within": target_calls_within,
                "vocab_size": vocab_size, "seed": seed, "threads": threads, "save_dtype": save_dtype, "bf16": bf16,
            },
            "(options)",
        )  # fmt: skip
        summary = train(cfg)
        final = summary.get("final_eval") or {}
        brief = {k: summary[k] for k in ("steps", "seconds", "samples_per_s", "parameters", "stopped_early")}
        brief["held_out_states"] = {s: final.get("states", {}).get(s) for s in ("silence", "standby", "response")}
        brief["held_out_responses"] = final.get("responses")
        typer.echo(json.dumps(brief, indent=2))
        typer.echo(f"checkpoint: {out}  (curves: {out / 'training' / 'curves.png'})", err=True)
        return 0

    run_guarded(body)
