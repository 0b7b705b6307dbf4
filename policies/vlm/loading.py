"""Load a checkpoint (local folder or hub id) into model + tokenizer + image processor + adapter.

A real checkpoint and a tiny one built by :mod:`agentkit.policies.vlm.build` take the same path:
``from_pretrained``. The architecture comes from the checkpoint's ``model_type`` through the registry
(:mod:`agentkit.policies.vlm.architectures`), which names the model class, the adapter and the image
processor: always the torchvision-free ``*ImageProcessorPil`` class (the HF fast processors need
torchvision, whose PyPI wheels do not import beside a CPU torch).
Device and dtype: CUDA with bf16 (fp16 where bf16 is unsupported) when present, else CPU fp32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkit.errors import PolicyError
from agentkit.policies.vlm.adapters import Adapter
from agentkit.policies.vlm.architectures import ARCH_NAMES, arch_of


@dataclass
class Loaded:
    """A loaded checkpoint."""

    arch: str
    adapter: Adapter
    source: str


def pick_device(device: str | None = None, dtype: str | None = None) -> tuple[Any, Any]:
    """``(torch.device, torch.dtype)`` for the requested or best available device."""
    import torch

    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dtype:
        names = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
        dt = getattr(torch, names.get(dtype, dtype), None)
        if not isinstance(dt, torch.dtype):
            raise PolicyError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16")
    elif dev.type == "cuda":
        dt = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dt = torch.float32
    return dev, dt


def load(
    model: str,
    device: str | None = None,
    dtype: str | None = None,
    max_pixels: int | None = None,
    attn_implementation: str | None = None,
) -> Loaded:
    """Load ``model`` (a checkpoint folder, or a hub id where a hub is reachable).

    Args:
        model: local directory with ``config.json``, or a hub id such as ``Qwen/Qwen2.5-VL-3B-Instruct``.
        device: ``cpu``, ``cuda``, ``cuda:1``...; default: CUDA when available.
        dtype: ``float32``/``bfloat16``/``float16``; default: bf16 on CUDA, fp32 on CPU.
        max_pixels: cap the pixels of a frame (fewer vision tokens per frame); only for architectures whose
            token count follows the frame's size (Qwen: ``ArchSpec.token_px``).
        attn_implementation: passed to ``from_pretrained`` (default: the library's choice, SDPA).

    Raises:
        PolicyError: the checkpoint is missing, unreachable or of an unsupported architecture.
    """
    from transformers import AutoConfig, AutoTokenizer

    local = Path(model).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise PolicyError(f"{local} has no config.json: not a transformers checkpoint folder")
        src = str(local)
    else:
        looks_like_hub_id = model.count("/") == 1 and not model.startswith((".", "/", "~"))
        if not looks_like_hub_id:
            raise PolicyError(f"model {model!r} is neither an existing folder nor a hub id (owner/name)")
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise PolicyError(f"model {model!r} is not a local folder and HF_HUB_OFFLINE=1 (no hub downloads)")
        src = model
    try:
        config = AutoConfig.from_pretrained(src)
    except (OSError, ValueError) as e:
        raise PolicyError(f"cannot load the config of {model!r}: {str(e).splitlines()[0]}") from e
    spec = arch_of(config)
    if spec is None:
        raise PolicyError(
            f"model type {getattr(config, 'model_type', '?')!r} is not supported; supported: {', '.join(ARCH_NAMES)}"
        )
    dev, dt = pick_device(device, dtype)
    kw: dict[str, Any] = {"dtype": dt}
    if attn_implementation:
        kw["attn_implementation"] = attn_implementation
    try:
        net = spec.load_model_class().from_pretrained(src, **kw).to(dev).eval()
        tokenizer = AutoTokenizer.from_pretrained(src)
        processor = spec.load_image_processor_class().from_pretrained(src)
    except (OSError, ValueError) as e:
        raise PolicyError(f"cannot load {model!r}: {str(e).splitlines()[0]}") from e
    if max_pixels and spec.token_px is not None:  # a pixel budget per frame (Qwen)
        size = dict(getattr(processor, "size", None) or {})
        lo = min(int(size.get("shortest_edge", 56 * 56)), int(max_pixels))
        processor.size = {"shortest_edge": lo, "longest_edge": int(max_pixels)}
    return Loaded(spec.name, spec.make_adapter(net, tokenizer, processor), src)
