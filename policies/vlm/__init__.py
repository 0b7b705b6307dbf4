"""The streaming VLM engine: a persistent KV cache per stream, Silence/Standby/Response per frame.

``make_policy("vlm", model=PATH)`` (an entry point) builds :class:`VLMPolicy` from a :class:`VLMConfig`;
this package stays light: torch and transformers are imported when a policy is constructed.

Modules: :mod:`.architectures` (the registry of supported architectures), :mod:`.config` (the typed
options), :mod:`.engine` (session and eviction), :mod:`.cache` (the KV cache and its layers),
:mod:`.adapters` (per-architecture tokens and positions), :mod:`.decide` (state choice), :mod:`.decode`
(response decoding), :mod:`.loading` (checkpoints), :mod:`.build` (offline random checkpoints),
:mod:`.reference` and :mod:`.verify` (exactness check), :mod:`.tool_policy` (the GUI and robot policies'
shared half). Speed and memory: ``agentkit.benchmarks.vlm_stream``.
"""

from __future__ import annotations

from agentkit.policies.vlm.config import VLMConfig
from agentkit.policies.vlm.policy import VLMPolicy

__all__ = ["VLMConfig", "VLMPolicy"]
