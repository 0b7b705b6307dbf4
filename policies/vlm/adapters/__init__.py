"""Per-architecture adapters: how a frame becomes tokens, where each token sits (RoPE positions), and
how one chunk is fed to the model. Everything else in the engine is architecture-agnostic."""

from __future__ import annotations

from typing import Any

from agentkit.policies.vlm.adapters.base import Adapter, Chunk, Template

_ARCH_OF_MODEL_TYPE = {
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_5_vl",
    "smolvlm": "smolvlm",
    "idefics3": "idefics3",
    "llava_onevision": "llava_onevision",
}

SUPPORTED_ARCHS = ("qwen2_vl", "qwen2_5_vl", "smolvlm", "idefics3", "llava_onevision")


def arch_of(config: Any) -> str | None:
    """The adapter name for a transformers config (``None`` when the architecture is not supported)."""
    return _ARCH_OF_MODEL_TYPE.get(getattr(config, "model_type", ""))


def make_adapter(arch: str, model: Any, tokenizer: Any, image_processor: Any) -> Adapter:
    """Construct the adapter of ``arch`` around a loaded model, tokenizer and image processor."""
    if arch in ("qwen2_vl", "qwen2_5_vl"):
        from agentkit.policies.vlm.adapters.qwen import QwenVLAdapter

        return QwenVLAdapter(arch, model, tokenizer, image_processor)
    if arch in ("smolvlm", "idefics3"):
        from agentkit.policies.vlm.adapters.idefics3 import Idefics3Adapter

        return Idefics3Adapter(arch, model, tokenizer, image_processor)
    if arch == "llava_onevision":
        from agentkit.policies.vlm.adapters.llava_onevision import LlavaOnevisionAdapter

        return LlavaOnevisionAdapter(arch, model, tokenizer, image_processor)
    raise ValueError(f"unsupported architecture {arch!r}; supported: {', '.join(SUPPORTED_ARCHS)}")


__all__ = ["SUPPORTED_ARCHS", "Adapter", "Chunk", "Template", "arch_of", "make_adapter"]
