"""Per-architecture adapters: how a frame becomes tokens, where each token sits (RoPE positions), and
how one chunk is fed to the model. Everything else in the engine is architecture-agnostic.

Which adapter serves which architecture is stated in the registry,
:mod:`agentkit.policies.vlm.architectures` (``ArchSpec.adapter``, built with ``ArchSpec.make_adapter``).
"""

from __future__ import annotations

from agentkit.policies.vlm.adapters.base import Adapter, Chunk, Template

__all__ = ["Adapter", "Chunk", "Template"]
