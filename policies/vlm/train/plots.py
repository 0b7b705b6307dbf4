"""Training curves as one PNG: the loss, and the held-out state accuracy and point error, against the step.

Why: a glance at the curves says whether a run converged, over-fitted or stalled; ``agentkit train``
writes ``training/curves.png`` at every evaluation, and the model cards show it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def plot_curves(
    log: Sequence[dict[str, Any]], evals: Sequence[dict[str, Any]], path: str | Path, title: str = ""
) -> Path:
    """Write the curves of a run to ``path`` (PNG) from its ``log.jsonl`` and ``eval.jsonl`` rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    ax = axes[0]
    if log:
        ax.plot([r["step"] for r in log], [r["loss"] for r in log], lw=0.8, label="train loss")
        ax.plot([r["step"] for r in log], [r["state_loss"] for r in log], lw=0.8, alpha=0.7, label="state tokens")
        ax.plot([r["step"] for r in log], [r["answer_loss"] for r in log], lw=0.8, alpha=0.7, label="answer tokens")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax.set_xlabel("step")
    ax.set_title("loss (train)")
    ax = axes[1]
    if evals:
        steps = [r["step"] for r in evals]
        ax.plot(steps, [r["states"]["accuracy"] for r in evals], marker="o", label="state accuracy")
        ax.plot(steps, [r["states"]["macro_f1"] for r in evals], marker="o", label="state macro F1")
        if any(r.get("responses") for r in evals):
            ax.plot(
                steps,
                [(r.get("responses") or {}).get("calls_within") or 0 for r in evals],
                marker="s",
                label="calls within tol",
            )
            ax.plot(
                steps,
                [(r.get("responses") or {}).get("calls_exact") or 0 for r in evals],
                marker="^",
                label="calls exact",
            )
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("step")
    ax.set_title("held out")
    ax.legend(fontsize=7)
    ax = axes[2]
    pe = [(r["step"], (r.get("responses") or {}).get("point_error_mean")) for r in evals]
    pe = [(s, v) for s, v in pe if v is not None]
    if pe:
        ax.plot([s for s, _ in pe], [v for _, v in pe], marker="o", color="tab:red", label="mean")
        med = [(r["step"], (r.get("responses") or {}).get("point_error_median")) for r in evals]
        med = [(s, v) for s, v in med if v is not None]
        ax.plot([s for s, _ in med], [v for _, v in med], marker="o", color="tab:orange", label="median")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax.set_xlabel("step")
    ax.set_title("point error (normalized, held out)")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


__all__ = ["plot_curves"]
