"""VLM wiring for the Fetch robot: the streaming engine, prompted with the robot's tools.

Why: the same pick/place tools the pixels policy calls can be called by a VLM that answers in the
Qwen/Hermes ``<tool_call>{"name": "pick", "arguments": {"point": [x, y]}}</tool_call>`` form; the engine
(:class:`agentkit.policies.vlm.VLMPolicy`) parses those calls into normalized points. This adapter only
adds what is robot-specific: the system prompt listing the tools, the task as the instruction, holding
back while the robot is busy, and keeping nothing but robot tool calls.

No pretrained checkpoint can be downloaded on the machines this project is built on: with a tiny random
model the wiring runs end to end but succeeds by chance only; a fine-tuned checkpoint (trained on
``fetch-expert``/``fetch-pixels`` recordings) is what makes it useful.
"""

from __future__ import annotations

from agentkit.policies.vlm.tool_policy import ToolVLMConfig, ToolVLMPolicy, tool_system_prompt
from agentkit.tools.robot import ROBOT_TOOLS
from agentkit.types import Decision, Frame

ROBOT_TOOL_NAMES = tuple(cls.name for cls in ROBOT_TOOLS)


def robot_system_prompt() -> str:
    """The system prompt: the Streamo protocol, the coordinate convention and the robot tools' schemas."""
    return tool_system_prompt(
        "You control a robot arm seen by a fixed camera looking down at a table.", "frame", ROBOT_TOOLS
    )


class FetchVLMConfig(ToolVLMConfig):
    """Settings of :class:`FetchVLMPolicy`: the engine's options (see
    :class:`~agentkit.policies.vlm.config.VLMOptions`) and the task.

    Attributes:
        task: the instruction, by default the Fetch pick-and-place goal.
    """

    task: str = "put the block on the target"


class FetchVLMPolicy(ToolVLMPolicy):
    """The streaming engine prompted for the Fetch tools; holds back while the robot is busy.

    Example:
        >>> policy = FetchVLMPolicy("/path/to/checkpoint", response_threshold=0.5)  # doctest: +SKIP
    """

    name = "fetch-vlm"
    Config = FetchVLMConfig
    tool_names = ROBOT_TOOL_NAMES

    @classmethod
    def system_prompt(cls) -> str:
        return robot_system_prompt()

    def step(self, frame: Frame) -> Decision:
        if frame.status is not None and frame.status.busy:
            return Decision.standby(seq=frame.seq, pts=frame.pts, text="robot busy")
        return super().step(frame)
