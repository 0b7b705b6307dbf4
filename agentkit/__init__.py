"""agentkit: streaming video and embodied agents.

Frames from cameras, videos, screens, browsers and simulated robots flow through an asyncio loop into a
streaming policy that decides Silence / Standby / Response for every frame; an executor turns decisions
into narration, GUI actions or robot primitives.
"""

from agentkit.types import ActionResult, ActorStatus, Box, Decision, DecisionKind, Frame, Point, ToolCall

__all__ = ["ActionResult", "ActorStatus", "Box", "Decision", "DecisionKind", "Frame", "Point", "ToolCall"]
__version__ = "0.1.0"
