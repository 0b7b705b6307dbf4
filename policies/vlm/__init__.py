"""The streaming VLM engine: a persistent KV cache per stream, Silence/Standby/Response per frame.

Importing this package registers the ``vlm`` policy (``make_policy("vlm", model=PATH)``) and stays
light: torch and transformers are imported when a policy is constructed.

Modules: :mod:`.engine` (session, cache, eviction), :mod:`.adapters` (per-architecture tokens and
positions), :mod:`.decide` (state choice), :mod:`.decode` (response decoding), :mod:`.loading`
(checkpoints), :mod:`.reference` (exactness check), :mod:`.tiny` (offline random checkpoints),
:mod:`.bench` (speed and memory).
"""

from __future__ import annotations

from agentkit.policies.vlm.policy import VLMPolicy
from agentkit.policy import register_policy

register_policy("vlm")(VLMPolicy)

__all__ = ["VLMPolicy"]
