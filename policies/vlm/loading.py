"""Load a checkpoint (local folder or hub id) into model + tokenizer + image processor + adapter.

A real checkpoint and a tiny one built by :mod:`agentkit.policies.vlm.build` take the same path:
``from_pretrained``. The image processor is always the torchvision-free ``*ImageProcessorPil`` class
(the HF fast processors need torchvision, whose PyPI wheels do not import beside a CPU torch).
Device and dtype: CUDA with bf16 (fp16 where bf16 is unsupported) when present, else CPU fp32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkit.errors import PolicyError
from agentkit.policies.vlm.adapters import SUPPORTED_ARCHS, Adapter, arch_of, make_adapter


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


def _pil_image_processor(arch: str, path: str) -> Any:
    cls: Any
    if arch in ("qwen2_vl", "qwen2_5_vl"):
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil as cls
    elif arch == "llava_onevision":
        from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
            LlavaOnevisionImageProcessorPil as cls,
        )
    elif arch == "smolvlm":
        from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil as cls
    else:
        from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil as cls
    return cls.from_pretrained(path)


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
        max_pixels: Qwen only: cap the pixels of a frame (fewer vision tokens per frame).
        attn_implementation: passed to ``from_pretrained`` (default: the library's choice, SDPA).

    Raises:
        PolicyError: the checkpoint is missing, unreachable or of an unsupported architecture.
    """
    from transformers import AutoConfig, AutoTokenizer

    from agentkit.policies.vlm.build import model_class

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
    arch = arch_of(config)
    if arch not in SUPPORTED_ARCHS:
        raise PolicyError(
            f"model type {getattr(config, 'model_type', '?')!r} is not supported; "
            f"supported: {', '.join(SUPPORTED_ARCHS)}"
        )
    dev, dt = pick_device(device, dtype)
    kw: dict[str, Any] = {"dtype": dt}
    if attn_implementation:
        kw["attn_implementation"] = attn_implementation
    try:
        net = model_class(arch).from_pretrained(src, **kw).to(dev).eval()
        tokenizer = AutoTokenizer.from_pretrained(src)
        processor = _pil_image_processor(arch, src)
    except (OSError, ValueError) as e:
        raise PolicyError(f"cannot load {model!r}: {str(e).splitlines()[0]}") from e
    if max_pixels and arch in ("qwen2_vl", "qwen2_5_vl"):
        size = dict(getattr(processor, "size", None) or {})
        lo = min(int(size.get("shortest_edge", 56 * 56)), int(max_pixels))
        processor.size = {"shortest_edge": lo, "longest_edge": int(max_pixels)}
    return Loaded(arch, make_adapter(arch, net, tokenizer, processor), src)
