"""CLI: ``agentkit adapt`` (zeroth-order adaptation: MeZO, QZO) and ``agentkit bench adapt`` (its memory).

torch and transformers are imported inside the commands, so ``agentkit --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from agentkit.apps.cli.common import check_writable, run_guarded
from agentkit.apps.cli.groups import app, bench_app


@app.command("adapt")
def adapt_cmd(
    model: str = typer.Option(..., "--model", help="checkpoint folder to adapt (e.g. a shipped one)"),
    data: Path = typer.Option(..., "--data", help="exported dataset (agentkit data export) or recordings (--record)"),
    out: Path = typer.Option(..., "--out", help="checkpoint folder to write"),
    method: str = typer.Option("mezo", help="mezo (every weight) | qzo (quantisation scales of an int8/int4 model)"),
    bits: int = typer.Option(8, help="qzo: integer width, 8 or 4"),
    steps: int = typer.Option(500, help="zeroth-order steps, two forward passes each (qzo: 0 = quantise only)"),
    max_minutes: float | None = typer.Option(None, help="stop after this many minutes"),
    batch_size: int = typer.Option(4, help="dialogues per step"),
    micro_batch: int | None = typer.Option(None, help="dialogues per forward pass (bounds activation memory)"),
    lr: float = typer.Option(1e-4, help="learning rate (constant, or --lr-decay linear)"),
    lr_decay: str = typer.Option("constant", help="constant | linear"),
    eps: float = typer.Option(1e-3, help="perturbation size"),
    weight_decay: float = typer.Option(0.0, help="mezo: weight decay of the matrices"),
    clip: float | None = typer.Option(None, help="clip the projected gradient to [-clip, clip]"),
    include: str | None = typer.Option(None, help="mezo: only parameters whose name matches this regex"),
    exclude: str | None = typer.Option(None, help="mezo: not the parameters whose name matches this regex"),
    norms: bool = typer.Option(True, help="qzo: also move the normalisation layers' parameters"),
    biases: bool = typer.Option(True, help="qzo: also move the quantised layers' biases"),
    state_loss: str = typer.Option("focal", help="focal | ce | weighted (as agentkit train)"),
    eval_every: int = typer.Option(50, help="steps between held-out loss measurements (0: start and end only)"),
    eval_dialogues: int = typer.Option(16, help="held-out dialogues per periodic measurement"),
    final_eval: bool = typer.Option(True, help="stream the held-out dialogues through the engine before and after"),
    keep_best: bool = typer.Option(True, help="end at the best watched point (later steps undone from their seeds)"),
    backtrack: bool = typer.Option(True, help="on a blow-up, go back to the best point and halve the lr"),
    save_dtype: str = typer.Option("float32", help="float32 | float16 | bfloat16 (zeroth-order updates are small)"),
    seed: int = typer.Option(0, help="random seed (batches and perturbations)"),
    threads: int | None = typer.Option(None, help="torch CPU threads (1 is fastest on a shared 2-core machine)"),
) -> None:
    """Adapt a checkpoint to new episodes with forward passes only (MeZO / QZO): about inference's memory."""

    def body() -> int:
        from agentkit.config import validate
        from agentkit.policies.vlm.adapt.run import AdaptConfig, adapt

        cfg = validate(
            AdaptConfig,
            {
                "model": model, "data": data, "out": out, "method": method, "bits": bits, "steps": steps,
                "max_minutes": max_minutes, "batch_size": batch_size, "micro_batch": micro_batch, "lr": lr,
                "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay, "clip": clip, "include": include,
                "exclude": exclude, "norms": norms, "biases": biases, "state_loss": state_loss,
                "eval_every": eval_every, "eval_dialogues": eval_dialogues, "final_eval": final_eval,
                "keep_best": keep_best, "backtrack": backtrack,
                "save_dtype": save_dtype, "seed": seed, "threads": threads,
            },
            "(options)",
        )  # fmt: skip
        s = adapt(cfg)
        keys = (
            "method",
            "steps",
            "kept_step",
            "backtracks",
            "stopped_by",
            "seconds",
            "steps_per_s",
            "trainable_values",
        )
        brief = {k: s[k] for k in keys}
        brief["memory_mb"] = s["memory_mb"]
        brief["train_loss"] = s["train_loss"]
        brief["held_out"] = {"before": s["before"]["held_out"], "after": s["after"]["held_out"]}
        typer.echo(json.dumps(brief, indent=2))
        typer.echo(f"checkpoint: {out}  (log: {out / 'adaptation'})", err=True)
        return 0

    run_guarded(body)


@bench_app.command("adapt")
def bench_adapt(
    model: str = typer.Option(..., "--model", help="checkpoint folder"),
    data: Path = typer.Option(..., "--data", help="exported dataset or recordings (the batches measured)"),
    json_out: Path | None = typer.Option(None, "--json", help="write the report JSON here"),
    modes: str = typer.Option(
        "inference,inference-int8,mezo,qzo,backprop", help="comma-separated modes to measure (each in its own process)"
    ),
    steps: int = typer.Option(2, help="steps (batches) measured per mode"),
    batch_size: int = typer.Option(4, help="dialogues per step (every mode sees the same batches)"),
    micro_batch: int | None = typer.Option(None, help="mezo/qzo: dialogues per forward pass"),
    bits: int = typer.Option(8, help="qzo and inference-int8: 8 or 4"),
    threads: int = typer.Option(1, help="torch CPU threads in every mode"),
    text_size: str | None = typer.Option(None, help="measure a larger random model instead: HIDDENxINTERxLAYERS"),
    seed: int = typer.Option(0, help="batch order"),
) -> None:
    """Peak memory of inference, MeZO, QZO and backprop fine-tuning on one model (one fresh process each)."""

    def body() -> int:
        from agentkit.benchmarks.adapt import COLUMNS, AdaptBenchConfig, bench
        from agentkit.benchmarks.report import print_report
        from agentkit.config import validate

        check_writable(json_out)
        cfg = validate(
            AdaptBenchConfig,
            {
                "model": model, "data": data, "modes": [m.strip() for m in modes.split(",") if m.strip()],
                "steps": steps, "batch_size": batch_size, "micro_batch": micro_batch, "bits": bits,
                "threads": threads, "text_size": text_size, "seed": seed,
            },
            "(options)",
        )  # fmt: skip
        report = bench(cfg, on_row=lambda r: typer.echo(f"{r['mode']}: peak {r['peak_mb']} MB", err=True))
        print_report(report, (*COLUMNS, "lifetime_ratio_to_inference"))
        if json_out is not None:
            report.write(json_out)
        return 0

    run_guarded(body)
