"""The streaming engine prompted with a tool set: the shared half of the GUI and robot VLM adapters.

A VLM drives a browser or a robot through exactly the tools the scripted and pixels policies use. What
differs per world is only the prompt (the role and the tools' schemas) and which calls are allowed; the
engine already parses ``<tool_call>`` JSON and UI-TARS / computer-use actions into normalized tool calls.
Calls to tools outside the set are dropped and recorded as an error on the step, never run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, ClassVar

from agentkit.policy import Policy
from agentkit.tooling import Tool
from agentkit.types import Decision, Frame


def tool_system_prompt(role: str, observation: str, tools: Iterable[type[Tool]]) -> str:
    """The system prompt: the decision protocol, the coordinate convention and the tools' JSON schemas.

    ``role`` says what the model does; ``observation`` names what it sees ("frame", "screenshot").
    """
    schemas = [cls.schema() for cls in tools]
    return (
        f"{role} After every {observation} answer with one state: silence, standby, or response followed by "
        f"tool calls. Points are [x, y] on the {observation}, normalized to 0-1 from the top-left corner. "
        'Call tools as <tool_call>{"name": ..., "arguments": {...}}</tool_call>. Tools:\n'
        + "\n".join(json.dumps(s, separators=(",", ":")) for s in schemas)
    )


class ToolVLMPolicy(Policy):
    """A :class:`~agentkit.policies.vlm.VLMPolicy` that keeps only the calls to ``tool_names``.

    Subclasses set ``name`` and ``tool_names`` and build the prompt with :func:`tool_system_prompt`.
    """

    tool_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, model: Any, prompt: str, instruction: str, **vlm_kw: Any) -> None:
        from agentkit.policies.vlm import VLMPolicy

        self.vlm = VLMPolicy(model, prompt=prompt, instruction=instruction, **vlm_kw)

    def reset(self) -> None:
        self.vlm.reset()

    def instruct(self, text: str, pts: float | None = None) -> None:
        self.vlm.instruct(text, pts)

    def close(self) -> None:
        self.vlm.close()

    def step(self, frame: Frame) -> Decision:
        d = self.vlm.step(frame)
        dropped = [c.name for c in d.tool_calls if c.name not in self.tool_names]
        if dropped:
            d.errors.append(f"{self.name}: dropped calls to tools outside its set: {', '.join(dropped)}")
            d.tool_calls = [c for c in d.tool_calls if c.name in self.tool_names]
        return d
