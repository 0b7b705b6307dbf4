"""VLM wiring for GUI tasks: the streaming engine prompted with the GUI tools.

Why this module exists: a VLM drives a browser or a desktop through exactly the tools the OCR and oracle
policies use (``click``, ``type``, ``key``, ``scroll``...). The engine
(:class:`agentkit.policies.vlm.VLMPolicy`) already parses both answer grammars into normalized tool
calls - Qwen/Hermes ``<tool_call>{"name": "click", "arguments": {"point": [x, y]}}</tool_call>`` and
UI-TARS / Qwen computer-use actions (``click(point='<point>x y</point>')`` in resized-image pixels,
converted by :func:`agentkit.parsing.parse_response`). This adapter adds only what is
GUI-specific: the system prompt listing the GUI tools' schemas, the task as the instruction, and keeping
nothing but GUI tool calls (anything else is recorded as an error on the step).

Without ``model`` it loads the shipped ``gui`` checkpoint (:mod:`agentkit.policies.vlm.checkpoints`),
trained here on MiniWoB++ oracle episodes (screenshots at the benchmark's default scale 3, 480x630; the
checkpoint's image processor fixes the pixels per frame). A larger GUI model (UI-TARS-1.5, Qwen2.5-VL)
goes in with ``model=``.
"""

from __future__ import annotations

from agentkit.policies.vlm.decode import MaxNewTokens
from agentkit.policies.vlm.tool_policy import TOOL_PROMPTS, ToolVLMConfig, ToolVLMPolicy
from agentkit.tools.gui import GUI_TOOLS

GUI_TOOL_NAMES = tuple(cls.name for cls in GUI_TOOLS)


def gui_system_prompt(style: str = "full") -> str:
    """The system prompt: the decision protocol, the coordinate convention and the GUI tools' schemas."""
    return TOOL_PROMPTS["gui"].system(style)


class GuiVLMConfig(ToolVLMConfig):
    """Settings of :class:`GuiVLMPolicy`: the engine's options (see
    :class:`~agentkit.policies.vlm.config.VLMOptions`) with GUI defaults.

    Attributes:
        task: the instruction; empty until :meth:`~GuiVLMPolicy.instruct` (MiniWoB++ passes each episode's
            utterance), the model is told to wait for it meanwhile.
        max_new_tokens: 64, room for a few actions and their arguments (click, type, click).
    """

    task: str = ""
    max_new_tokens: MaxNewTokens = 64


class GuiVLMPolicy(ToolVLMPolicy):
    """The streaming engine prompted for the GUI tools; keeps only GUI tool calls.

    Example:
        >>> policy = GuiVLMPolicy(task="Click OK.")  # the shipped gui checkpoint  # doctest: +SKIP
        >>> policy = GuiVLMPolicy("/path/to/checkpoint", task="Click the OK button.")  # doctest: +SKIP
    """

    name = "vlm-gui"
    Config = GuiVLMConfig
    tool_names = GUI_TOOL_NAMES
    idle_instruction = TOOL_PROMPTS["gui"].instruction
    shipped = "gui"

    @classmethod
    def system_prompt(cls, style: str = "full") -> str:
        return gui_system_prompt(style)
