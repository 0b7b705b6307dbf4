"""VLM wiring for GUI tasks: the streaming engine prompted with the GUI tools.

Why this module exists: a VLM drives a browser or a desktop through exactly the tools the OCR and oracle
policies use (``click``, ``type``, ``key``, ``scroll``...). The engine
(:class:`agentkit.policies.vlm.VLMPolicy`) already parses both answer grammars into normalized tool
calls - Qwen/Hermes ``<tool_call>{"name": "click", "arguments": {"point": [x, y]}}</tool_call>`` and
UI-TARS / Qwen computer-use actions (``click(point='<point>x y</point>')`` in resized-image pixels,
converted by :func:`agentkit.policies.parsing.parse_response`). This adapter adds only what is
GUI-specific: the system prompt listing the GUI tools' schemas, the task as the instruction, and keeping
nothing but GUI tool calls (anything else is recorded as an error on the step).

No pretrained checkpoint can be downloaded on the machines this project is built on: with a tiny random
model the wiring runs end to end but succeeds by chance only; a GUI model (UI-TARS-1.5, Qwen2.5-VL) or a
checkpoint fine-tuned on ``agentkit eval miniwob --record`` episodes is what makes it useful.
"""

from __future__ import annotations

import json
from typing import Any

from agentkit.policy import Policy, register_policy
from agentkit.types import Decision, Frame

GUI_TOOL_NAMES = (
    "click",
    "double_click",
    "right_click",
    "type",
    "key",
    "scroll",
    "drag",
    "move",
    "wait",
    "finished",
)


def gui_system_prompt() -> str:
    """The system prompt: the decision protocol, the coordinate convention and the GUI tool schemas."""
    from agentkit.tools.gui import GUI_TOOLS

    schemas = [cls.schema() for cls in GUI_TOOLS]
    return (
        "You operate a computer screen to complete the user's task. After every screenshot answer with one "
        "state: silence, standby, or response followed by tool calls. Points are [x, y] on the screenshot, "
        "normalized to 0-1 from the top-left corner. Call tools as "
        '<tool_call>{"name": ..., "arguments": {...}}</tool_call>. Tools:\n'
        + "\n".join(json.dumps(s, separators=(",", ":")) for s in schemas)
    )


@register_policy("vlm-gui")
class GuiVLMPolicy(Policy):
    """A :class:`~agentkit.policies.vlm.VLMPolicy` prompted for the GUI tools.

    Args:
        model: checkpoint folder (or a loaded model) for the VLM engine.
        task: the instruction; replaced by :meth:`instruct` (MiniWoB++ passes each episode's utterance).
        **vlm_kw: passed to ``VLMPolicy`` (device, dtype, coord_format, max_new_tokens...).
    """

    name = "vlm-gui"
    needs_dom = False

    def __init__(self, model: Any, task: str = "", **vlm_kw: Any) -> None:
        from agentkit.policies.vlm import VLMPolicy

        vlm_kw.setdefault("max_new_tokens", 64)
        self.vlm = VLMPolicy(model, prompt=gui_system_prompt(), instruction=task or "Wait for the task.", **vlm_kw)

    def reset(self) -> None:
        self.vlm.reset()

    def instruct(self, text: str, pts: float | None = None) -> None:
        self.vlm.instruct(text, pts)

    def close(self) -> None:
        self.vlm.close()

    def step(self, frame: Frame) -> Decision:
        d = self.vlm.step(frame)
        kept = [c for c in d.tool_calls if c.name in GUI_TOOL_NAMES]
        dropped = [c.name for c in d.tool_calls if c.name not in GUI_TOOL_NAMES]
        if dropped:
            d.errors.append(f"vlm-gui: dropped non-GUI tool calls: {', '.join(dropped)}")
        d.tool_calls = kept
        return d
