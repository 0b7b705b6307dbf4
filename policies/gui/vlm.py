"""VLM wiring for GUI tasks: the streaming engine prompted with the GUI tools.

Why this module exists: a VLM drives a browser or a desktop through exactly the tools the OCR and oracle
policies use (``click``, ``type``, ``key``, ``scroll``...). The engine
(:class:`agentkit.policies.vlm.VLMPolicy`) already parses both answer grammars into normalized tool
calls - Qwen/Hermes ``<tool_call>{"name": "click", "arguments": {"point": [x, y]}}</tool_call>`` and
UI-TARS / Qwen computer-use actions (``click(point='<point>x y</point>')`` in resized-image pixels,
converted by :func:`agentkit.parsing.parse_response`). This adapter adds only what is
GUI-specific: the system prompt listing the GUI tools' schemas, the task as the instruction, and keeping
nothing but GUI tool calls (anything else is recorded as an error on the step).

No pretrained checkpoint can be downloaded on the machines this project is built on: with a tiny random
model the wiring runs end to end but succeeds by chance only; a GUI model (UI-TARS-1.5, Qwen2.5-VL) or a
checkpoint fine-tuned on ``agentkit eval miniwob --record`` episodes is what makes it useful.
"""

from __future__ import annotations

from typing import Any

from agentkit.policies.vlm.tool_policy import ToolVLMPolicy, tool_system_prompt
from agentkit.tools.gui import GUI_TOOLS

GUI_TOOL_NAMES = tuple(cls.name for cls in GUI_TOOLS)


def gui_system_prompt() -> str:
    """The system prompt: the decision protocol, the coordinate convention and the GUI tools' schemas."""
    return tool_system_prompt("You operate a computer screen to complete the user's task.", "screenshot", GUI_TOOLS)


class GuiVLMPolicy(ToolVLMPolicy):
    """The streaming engine prompted for the GUI tools.

    Args:
        model: checkpoint folder (or a loaded model) for the VLM engine.
        task: the instruction; replaced by :meth:`instruct` (MiniWoB++ passes each episode's utterance).
        **vlm_kw: passed to ``VLMPolicy`` (device, dtype, coord_format, max_new_tokens...).
    """

    name = "vlm-gui"
    tool_names = GUI_TOOL_NAMES

    def __init__(self, model: Any, task: str = "", **vlm_kw: Any) -> None:
        vlm_kw.setdefault("max_new_tokens", 64)
        super().__init__(model, gui_system_prompt(), task or "Wait for the task.", **vlm_kw)
