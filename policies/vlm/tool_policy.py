"""The streaming engine prompted with a tool set: the shared half of the GUI and robot VLM adapters.

A VLM drives a browser or a robot through exactly the tools the scripted and pixels policies use. What
differs per world is only the prompt (the role and the tools' schemas), the default task and which calls
are allowed; the engine already parses ``<tool_call>`` JSON and UI-TARS / computer-use actions into
normalized tool calls. Calls to tools outside the set are dropped and recorded as an error on the step,
never run.
"""

from __future__ import annotations

import abc
import importlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from agentkit.policies.vlm.config import VLMOptions, split_model_argument
from agentkit.policies.vlm.loading import Loaded
from agentkit.policy import Policy
from agentkit.tooling import Tool
from agentkit.types import Decision, Frame

PROMPT_STYLES = ("full", "compact")
"""How the tools are described in the system prompt: ``full`` (their JSON schemas, for a model that reads
schemas, such as a pretrained instruct model) or ``compact`` (one line per tool: name, arguments and what
it does; ~10x fewer tokens, for a model trained on this prompt, such as the shipped checkpoints)."""


def tool_system_prompt(role: str, observation: str, tools: Iterable[type[Tool]], style: str = "full") -> str:
    """The system prompt: the decision protocol, the coordinate convention and the tools (``style``:
    :data:`PROMPT_STYLES`).

    ``role`` says what the model does; ``observation`` names what it sees ("frame", "screenshot").
    """
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt style must be one of {', '.join(PROMPT_STYLES)}, got {style!r}")
    schemas = [cls.schema() for cls in tools]
    head = (
        f"{role} After every {observation} answer with one state: silence, standby, or response followed by "
        f"tool calls. Points are [x, y] on the {observation}, normalized to 0-1 from the top-left corner. "
        'Call tools as <tool_call>{"name": ..., "arguments": {...}}</tool_call>. Tools:\n'
    )
    if style == "compact":
        lines = []
        for s in schemas:
            fn = s["function"]
            args = ", ".join(fn.get("parameters", {}).get("properties", {}))
            lines.append(f"{fn['name']}({args}): {fn.get('description', '')}")
        return head + "\n".join(lines)
    return head + "\n".join(json.dumps(s, separators=(",", ":")) for s in schemas)


@dataclass(frozen=True)
class ToolPrompt:
    """What a tool-calling VLM policy of one world is told: the system prompt's parts and the instruction.

    Stated once here, so the run-time policies (``vlm-gui``, ``fetch-vlm``) and the training data export
    (:mod:`agentkit.policies.vlm.train`) build the very same prompt, without the training code importing
    the GUI or robot packages.

    Attributes:
        role: what the model does (the first sentence of the system prompt).
        observation: what it sees ("frame", "screenshot").
        tools: import path (``"module:attribute"``) of the world's tuple of :class:`~agentkit.tooling.Tool`
            classes.
        instruction: the instruction the stream starts with (the first user turn, in the cache's sink)
            when no task is given.
    """

    role: str
    observation: str
    tools: str
    instruction: str

    def tool_classes(self) -> tuple[type[Tool], ...]:
        """The world's tool classes (imports the tools' module)."""
        module, _, attr = self.tools.partition(":")
        return tuple(getattr(importlib.import_module(module), attr))

    def system(self, style: str = "full") -> str:
        """The system prompt (:func:`tool_system_prompt` of the role, observation and tools)."""
        return tool_system_prompt(self.role, self.observation, self.tool_classes(), style)


TOOL_PROMPTS: dict[str, ToolPrompt] = {
    "gui": ToolPrompt(
        role="You operate a computer screen to complete the user's task.",
        observation="screenshot",
        tools="agentkit.tools.gui:GUI_TOOLS",
        instruction="Wait for the task.",
    ),
    "robot": ToolPrompt(
        role="You control a robot arm seen by a fixed camera looking down at a table.",
        observation="frame",
        tools="agentkit.tools.robot:ROBOT_TOOLS",
        instruction="put the block on the target",
    ),
}
"""The prompt of each tool-calling world by name: ``gui`` (``vlm-gui``) and ``robot`` (``fetch-vlm``)."""


class ToolVLMConfig(VLMOptions):
    """Settings of a tool-calling VLM policy: the engine's options and the task.

    The system prompt is the policy's own (its tools), so it is not an option; only how the tools are
    described is.

    Attributes:
        task: the instruction the stream starts with (the first user turn); ``instruct`` adds new ones.
        prompt_style: ``full`` (the tools' JSON schemas), ``compact`` (one line per tool), or ``auto``: what
            the checkpoint was trained with (``prompt_style`` in its ``agentkit_vlm.json``), else ``full``.
    """

    task: str = ""
    prompt_style: Literal["auto", "full", "compact"] = "auto"


def checkpoint_prompt_style(path: str | os.PathLike[str] | None) -> str:
    """The prompt style a checkpoint folder was trained with (``agentkit_vlm.json``), else ``full``."""
    if path is None:
        return "full"
    info = Path(path) / "agentkit_vlm.json"
    try:
        style = json.loads(info.read_text()).get("prompt_style", "full") if info.is_file() else "full"
    except (OSError, json.JSONDecodeError, AttributeError):
        return "full"
    return style if style in PROMPT_STYLES else "full"


class ToolVLMPolicy(Policy):
    """A :class:`~agentkit.policies.vlm.VLMPolicy` prompted with a tool set that keeps only calls to it.

    Subclasses set ``name``, ``Config`` (defaults of their world), ``tool_names``, :meth:`system_prompt`
    (built with :func:`tool_system_prompt`) and ``shipped``: the checkpoint trained by this project for
    their world (:mod:`agentkit.policies.vlm.checkpoints`), loaded when no model is given.

    Args:
        config: the subclass's config or a dict of its fields; also a checkpoint path or a loaded model.
        loaded: an already loaded model, used instead of loading ``config.model``.
        on_token: called with each piece of response text as it is decoded.
        **options: config fields, over ``config``.
    """

    Config: ClassVar[type[ToolVLMConfig]] = ToolVLMConfig
    tool_names: ClassVar[tuple[str, ...]] = ()
    idle_instruction: ClassVar[str] = ""
    """The instruction while the task is empty."""
    shipped: ClassVar[str | None] = None
    """Name of the shipped checkpoint used when neither ``model`` nor ``loaded`` is given."""

    def __init__(
        self,
        config: ToolVLMConfig | dict[str, Any] | str | os.PathLike[str] | Loaded | None = None,
        *,
        loaded: Loaded | None = None,
        on_token: Callable[[str], None] | None = None,
        **options: Any,
    ) -> None:
        from agentkit.policies.vlm import VLMPolicy

        config, options, loaded = split_model_argument(config, options, loaded)
        self.config = self.configure(config, options, self.Config)
        engine = self.config.model_dump(include=set(VLMOptions.model_fields))  # the world's own fields stay here
        if engine["model"] is None and loaded is None and self.shipped is not None:
            from agentkit.policies.vlm.checkpoints import shipped_checkpoint

            engine["model"] = str(shipped_checkpoint(self.shipped))
        style = self.config.prompt_style
        if style == "auto":
            style = checkpoint_prompt_style(engine["model"] or (loaded.source if loaded is not None else None))
        self.prompt_style = style
        engine.update(prompt=self.system_prompt(style), instruction=self.config.task or self.idle_instruction)
        self.vlm = VLMPolicy(engine, loaded=loaded, on_token=on_token)

    @classmethod
    @abc.abstractmethod
    def system_prompt(cls, style: str = "full") -> str:
        """The system prompt: the decision protocol, the coordinate convention and the tools."""

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
