"""The streaming VLM engine: a persistent KV cache per stream, Silence/Standby/Response per frame.

``make_policy("vlm", model=PATH)`` (an entry point) builds :class:`VLMPolicy`; this package stays
light: torch and transformers are imported when a policy is constructed.

Modules: :mod:`.engine` (session, cache, eviction), :mod:`.adapters` (per-architecture tokens and
positions), :mod:`.decide` (state choice), :mod:`.decode` (response decoding), :mod:`.loading`
(checkpoints), :mod:`.reference` (exactness check), :mod:`.tiny` (offline random checkpoints),
:mod:`.bench` (speed and memory).
"""

from __future__ import annotations

from agentkit.policies.vlm.policy import VLMPolicy

__all__ = ["VLMPolicy"]
