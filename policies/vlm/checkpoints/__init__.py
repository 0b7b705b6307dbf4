"""Checkpoints trained by this project and shipped inside the package.

Why: ``--policy vlm`` must do something useful on a machine with no model hub. Each folder here is an
ordinary Hugging Face checkpoint (``config.json``, ``model.safetensors`` in fp16, tokenizer files,
``preprocessor_config.json``) with a model card (``README.md``: data, steps, time, figures, licence),
trained from scratch on CPU by ``agentkit train`` from this project's own recorded episodes (see
``docs/training.md``). They load through the same ``from_pretrained`` path as any checkpoint; the loader
upcasts fp16 to fp32 on CPU.

- ``gui``: MiniWoB++ screenshots -> Silence / Standby / Response + GUI tool calls (``vlm-gui``).

Not shipped: ``fetch`` (Fetch camera frames -> pick / place points). Runs on 2 CPU cores did not learn pick
points precise enough to grasp (held-out median error ~0.2 of the frame); ``--policy vlm`` on Fetch needs
``--model PATH`` until a run on a GPU (or from pretrained weights) produces one (``docs/training.md``).

Example:
    >>> from agentkit.policies.vlm.checkpoints import SHIPPED
    >>> sorted(SHIPPED)
    ['gui']
"""

from __future__ import annotations

from pathlib import Path

from agentkit.errors import ConfigError

HERE = Path(__file__).resolve().parent
SHIPPED: dict[str, str] = {
    "gui": "MiniWoB++ GUI agent (vlm-gui): screenshots -> states + click/type/key tool calls",
}
"""The shipped checkpoints by name, with what each is for."""

NOT_SHIPPED: dict[str, str] = {
    "fetch": "training on 2 CPU cores did not reach usable pick points (docs/training.md)",
}
"""Checkpoints a policy may look for that this release does not ship, with why."""


def shipped_checkpoint(name: str) -> Path:
    """The folder of the shipped checkpoint ``name``.

    Raises:
        ConfigError: ``name`` is not a shipped checkpoint, or this install lacks its files (then a model
            must be given with ``--model PATH``).
    """
    if name in NOT_SHIPPED:
        raise ConfigError(f"no {name!r} checkpoint is shipped: {NOT_SHIPPED[name]}; give --model PATH")
    if name not in SHIPPED:
        raise ConfigError(f"no shipped checkpoint {name!r}; shipped: {', '.join(sorted(SHIPPED))}")
    path = HERE / name
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        raise ConfigError(
            f"the shipped checkpoint {name!r} is missing from this install ({path}); give --model PATH "
            "(a checkpoint folder; `agentkit train` makes one)"
        )
    return path


__all__ = ["NOT_SHIPPED", "SHIPPED", "shipped_checkpoint"]
