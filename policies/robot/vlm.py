"""VLM wiring for the Fetch robot: the streaming engine, prompted with the robot's tools.

Why: the same pick/place tools the pixels policy calls can be called by a VLM that answers in the
Qwen/Hermes ``<tool_call>{"name": "pick", "arguments": {"point": [x, y]}}</tool_call>`` form; the engine
(:class:`agentkit.policies.vlm.VLMPolicy`) parses those calls into normalized points. This adapter only
adds what is robot-specific: the system prompt listing the tools, the task as the instruction, never
acting while the robot is still running the last plan, knowing when the model says the task is done,
and keeping nothing but robot tool calls.

Without ``model`` it loads the shipped ``fetch`` checkpoint (:mod:`agentkit.policies.vlm.checkpoints`),
trained here on ``fetch-pixels`` recordings: pixels in, ``home`` / ``pick`` / ``place`` calls out
(``docs/training.md``). The policy is not privileged: it sees ``Frame.image`` and the robot's status (busy,
actions done), never the scene state.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agentkit.policies.vlm.decode import MaxNewTokens
from agentkit.policies.vlm.tool_policy import TOOL_PROMPTS, ToolVLMConfig, ToolVLMPolicy
from agentkit.tools.robot import ROBOT_TOOLS
from agentkit.types import ActorStatus, Decision, DecisionKind, Frame

ROBOT_TOOL_NAMES = tuple(cls.name for cls in ROBOT_TOOLS)
PLAN_TOOLS = frozenset({"pick", "place", "push"})  # a Response with these moved something: the task began


def robot_system_prompt(style: str = "full") -> str:
    """The system prompt: the Streamo protocol, the coordinate convention and the robot tools' schemas."""
    return TOOL_PROMPTS["robot"].system(style)


class FetchVLMConfig(ToolVLMConfig):
    """Settings of :class:`FetchVLMPolicy`: the engine's options (see
    :class:`~agentkit.policies.vlm.config.VLMOptions`) and the task.

    Attributes:
        task: the instruction, by default the Fetch pick-and-place goal.
        max_new_tokens: 96: room for a pick and a place call (44 to 52 tokens with the small tokenizers
            trained here, where every digit is a token); decoding stops at the end of the turn anyway.
        ask_when_busy: show the model the frames while the robot runs a plan (it was trained to answer
            Standby on them, and its history then matches a live training stream); ``False`` answers
            Standby without the model. A Response while busy is never acted on either way.
        patience: frames to wait for the executor to start a plan before the model is asked again.
    """

    task: str = TOOL_PROMPTS["robot"].instruction
    max_new_tokens: MaxNewTokens = 96
    ask_when_busy: bool = True
    patience: int = Field(8, ge=1)


class FetchVLMPolicy(ToolVLMPolicy):
    """The streaming engine prompted for the Fetch tools; never acts while the robot is busy.

    ``done`` once the model answers Silence on an idle frame after it has moved something (a pick, place
    or push): the model says the task is finished, and a runner may end the episode.

    Example:
        >>> policy = FetchVLMPolicy()  # the shipped fetch checkpoint  # doctest: +SKIP
        >>> policy = FetchVLMPolicy("/path/to/checkpoint", response_threshold=0.5)  # doctest: +SKIP
    """

    name = "fetch-vlm"
    Config = FetchVLMConfig
    config: FetchVLMConfig
    tool_names = ROBOT_TOOL_NAMES
    shipped = "fetch"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reset_plan()

    @classmethod
    def system_prompt(cls, style: str = "full") -> str:
        return robot_system_prompt(style)

    @property
    def done(self) -> bool:
        return self._done

    def _reset_plan(self) -> None:
        self._episode: object = None
        self._await_actions = 0  # actions the executor must have finished before the model may act again
        self._waited = 0
        self._moved = False
        self._done = False

    def reset(self) -> None:
        super().reset()
        self._reset_plan()

    def instruct(self, text: str, pts: float | None = None) -> None:
        super().instruct(text, pts)
        self._done = False

    def step(self, frame: Frame) -> Decision:
        status = frame.status or ActorStatus()
        if status.episode != self._episode:  # a new episode on the same stream re-arms the policy
            episode = status.episode
            self._reset_plan()
            self._episode = episode
        waiting = status.actions < self._await_actions and self._waited < self.config.patience
        if waiting:
            self._waited += 1
        if status.busy or waiting:
            why = "robot busy" if status.busy else "waiting for the plan to start"
            if not self.config.ask_when_busy:
                return Decision.standby(seq=frame.seq, pts=frame.pts, text=why)
            d = super().step(frame)
            if d.kind is DecisionKind.RESPONSE:  # never act on top of a running plan
                d.errors.append(f"{self.name}: a Response while the {why.split(' ', 1)[1]} was not acted on")
                d = Decision.standby(
                    seq=frame.seq, pts=frame.pts, text=why, errors=d.errors, model_ms=d.model_ms, meta=d.meta
                )
            return d
        d = super().step(frame)
        if d.kind is DecisionKind.RESPONSE and d.tool_calls:
            self._await_actions = status.actions + len(d.tool_calls)
            self._waited = 0
            self._moved = self._moved or any(c.name in PLAN_TOOLS for c in d.tool_calls)
        elif d.kind is DecisionKind.SILENCE and self._moved:
            self._done = True
        return d
