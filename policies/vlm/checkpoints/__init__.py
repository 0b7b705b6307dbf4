"""Checkpoints trained by this project and shipped inside the package.

Why: ``--policy vlm`` must do something useful on a machine with no model hub. Each folder here is an
ordinary Hugging Face checkpoint (``config.json``, ``model.safetensors`` in fp16, tokenizer files,
``preprocessor_config.json``) with a model card (``README.md``: data, steps, time, figures, licence),
trained on CPU by ``agentkit train`` from this project's own recorded episodes (``gui`` from scratch,
``fetch`` starting from ``gui``; see ``docs/training.md``). They load through the same
``from_pretrained`` path as any checkpoint; the loader upcasts fp16 to fp32 on CPU.

- ``gui``: MiniWoB++ screenshots -> Silence / Standby / Response + GUI tool calls (``vlm-gui``); 0.64 on
  six MiniWoB++ tasks at unseen seeds (its model card).
- ``fetch``: Fetch camera frames -> home / pick / place calls (``fetch-vlm``); 0.88 on Fetch at unseen seeds.

Example:
    >>> from agentkit.policies.vlm.checkpoints import SHIPPED
    >>> sorted(SHIPPED)
    ['fetch', 'gui']
"""

from __future__ import annotations

from pathlib import Path

from agentkit.errors import ConfigError

HERE = Path(__file__).resolve().parent
SHIPPED: dict[str, str] = {
    "gui": "MiniWoB++ GUI agent (vlm-gui): screenshots -> states + click/type/key tool calls",
    "fetch": "Fetch pick-and-place (fetch-vlm): camera frames -> states + home/pick/place tool calls",
}
"""The shipped checkpoints by name, with what each is for."""


def shipped_checkpoint(name: str) -> Path:
    """The folder of the shipped checkpoint ``name``.

    Raises:
        ConfigError: ``name`` is not a shipped checkpoint, or this install lacks its files (then a model
            must be given with ``--model PATH``).
    """
    if name not in SHIPPED:
        raise ConfigError(f"no shipped checkpoint {name!r}; shipped: {', '.join(sorted(SHIPPED))}")
    path = HERE / name
    if not (path / "config.json").exists() or not (path / "model.safetensors").exists():
        raise ConfigError(
            f"the shipped checkpoint {name!r} is missing from this install ({path}); give --model PATH "
            "(a checkpoint folder; `agentkit train` makes one)"
        )
    return path


__all__ = ["SHIPPED", "shipped_checkpoint"]
