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

import json
from typing import Any

from agentkit.policy import Policy, register_policy
from agentkit.types import Decision, Frame

ROBOT_TOOL_NAMES = ("pick", "place", "push", "go_to", "open_gripper", "close_gripper", "home")


def robot_system_prompt() -> str:
    """The system prompt: the Streamo protocol, the coordinate convention and the tool schemas."""
    from agentkit.tools.robot import ROBOT_TOOLS

    schemas = [cls.schema() for cls in ROBOT_TOOLS]
    return (
        "You control a robot arm seen by a fixed camera looking down at a table. After every frame answer "
        "with one state: silence, standby, or response followed by tool calls. Points are [x, y] in the "
        "image, normalized to 0-1 from the top-left corner. Call tools as "
        '<tool_call>{"name": ..., "arguments": {...}}</tool_call>. Tools:\n'
        + "\n".join(json.dumps(s, separators=(",", ":")) for s in schemas)
    )


@register_policy("fetch-vlm")
class FetchVLMPolicy(Policy):
    """A :class:`~agentkit.policies.vlm.VLMPolicy` prompted for the Fetch tools.

    Args:
        model: checkpoint folder (or a loaded model) for the VLM engine.
        task: the instruction, e.g. ``"put the block on the target"``.
        **vlm_kw: passed to ``VLMPolicy`` (device, dtype, thresholds, max_new_tokens...).
    """

    name = "fetch-vlm"

    def __init__(self, model: Any, task: str = "put the block on the target", **vlm_kw: Any) -> None:
        from agentkit.policies.vlm import VLMPolicy

        self.vlm = VLMPolicy(model, prompt=robot_system_prompt(), instruction=task, **vlm_kw)
        self.done = False  # the model never declares the episode over; evaluation runs to its budget

    def reset(self) -> None:
        self.vlm.reset()

    def instruct(self, text: str, pts: float | None = None) -> None:
        self.vlm.instruct(text, pts)

    def close(self) -> None:
        self.vlm.close()

    def step(self, frame: Frame) -> Decision:
        if frame.meta.get("busy"):
            return Decision.standby(seq=frame.seq, pts=frame.pts, text="robot busy")
        d = self.vlm.step(frame)
        kept = [c for c in d.tool_calls if c.name in ROBOT_TOOL_NAMES]
        dropped = [c.name for c in d.tool_calls if c.name not in ROBOT_TOOL_NAMES]
        if dropped:
            d.errors.append(f"fetch-vlm: dropped non-robot tool calls: {', '.join(dropped)}")
        d.tool_calls = kept
        return d
