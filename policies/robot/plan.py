"""The plan/wait/check cycle shared by the Fetch policies.

Why: a robot policy in a streaming loop answers every frame, but its tool calls take many frames to
run. Both the expert and the pixels policy emit a plan once, then answer Standby while the robot reports
``busy`` (``Frame.status``, an :class:`~agentkit.types.ActorStatus`), and look again only when the plan's
primitives have finished. A new ``episode`` number re-arms the policy.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from pydantic import Field

from agentkit.policy import Policy, PolicyConfig
from agentkit.types import ActorStatus, Decision, Frame, ToolCall

_IDLE = ActorStatus()  # frames without a status (a plain video) count as an idle actor


class PlanConfig(PolicyConfig):
    """Settings of the plan/wait/check policies.

    Attributes:
        max_attempts: plans tried before the policy gives up (a failed check triggers a retry).
        patience: frames to wait for the executor to start a plan before looking again.
    """

    max_attempts: int = Field(2, ge=1)
    patience: int = Field(8, ge=1)


class PlanPolicy(Policy):
    """Emit a plan when the robot is idle, wait for it to finish, re-plan up to ``max_attempts`` times.

    Subclasses implement :meth:`plan` (tool calls, or ``None`` when the task looks done / impossible) and
    :meth:`finished` (checked once after a plan ran; ``False`` triggers a retry from a clear view).
    """

    Config = PlanConfig
    look_first: ClassVar[bool] = True  # clear the camera's view (``home``) before the first plan

    def __init__(self, config: PlanConfig | None = None, **options: Any) -> None:
        self.config = self.configure(config, options, PlanConfig)
        self.max_attempts = self.config.max_attempts
        self.patience = self.config.patience
        self.instruction = ""  # the last task given with :meth:`instruct` (kept across episodes of a stream)
        self.reset()

    @property
    def done(self) -> bool:
        return self._done

    def reset(self) -> None:
        """A new stream: forget the instruction and the plan."""
        self.instruction = ""
        self._new_episode()

    def _new_episode(self) -> None:
        self._episode: object = None
        self._attempts = 0
        self._homed = False
        self._await_actions = 0
        self._idle = 0
        self._checked = False
        self._interrupted = False
        self._done = False

    def instruct(self, text: str, pts: float | None = None) -> None:
        """The task. Once a plan has started, a new instruction interrupts it: the loop cancels the running
        plan; the policy releases what it holds, looks again and re-plans."""
        started = self._attempts > 0 or self._homed
        self.instruction = text
        self._attempts = 0
        self._homed = False
        self._await_actions = 0
        self._idle = 0
        self._checked = False
        self._interrupted = started
        self._done = False

    def _rearm(self, frame: Frame) -> None:
        ep = (frame.status or _IDLE).episode
        if ep != self._episode:
            self._new_episode()
            self._episode = ep

    def step(self, frame: Frame) -> Decision:
        self._rearm(frame)
        status = frame.status or _IDLE
        if status.busy:
            self._idle = 0
            return Decision.standby(seq=frame.seq, pts=frame.pts, text="robot busy")
        if status.actions < self._await_actions and self._idle < self.patience:
            self._idle += 1  # the executor may not have started the plan yet
            return Decision.standby(seq=frame.seq, pts=frame.pts, text="waiting for the plan to start")
        if self._done:
            return Decision.silence(seq=frame.seq, pts=frame.pts)
        if self._attempts > 0 and not self._checked:
            self._checked = True
            if self._attempts >= self.max_attempts or self.finished(frame):
                self._done = True
                return Decision.silence(seq=frame.seq, pts=frame.pts, text="task done")
            self._homed = False  # retry: look again from a clear view
        if self._interrupted:  # whatever the arm held when it was stopped: put it down, then look again
            self._interrupted = False
            self._homed = True
            calls = [ToolCall("open_gripper", {}), ToolCall("home", {})]
            return self._emit(frame, calls, "interrupted: releasing and clearing the view", [])
        if self.look_first and not self._homed:
            self._homed = True
            return self._emit(frame, [ToolCall("home", {})], "clearing the camera's view", [])
        decision = self.plan(frame)
        if decision is None or not decision.tool_calls:
            self._done = True
            if decision is None:
                return Decision.silence(seq=frame.seq, pts=frame.pts)
            decision.seq, decision.pts = frame.seq, frame.pts
            return decision
        self._attempts += 1
        self._checked = False
        return self._emit(frame, decision.tool_calls, decision.text, decision.points, decision)

    def _emit(
        self,
        frame: Frame,
        calls: list[ToolCall],
        text: str | None,
        points: list,
        decision: Decision | None = None,
    ) -> Decision:
        self._await_actions = (frame.status or _IDLE).actions + len(calls)
        self._idle = 0
        d = decision or Decision.response(text)
        d.seq, d.pts, d.tool_calls, d.text, d.points = frame.seq, frame.pts, calls, text, points
        return d

    def finished(self, frame: Frame) -> bool:
        """Whether the last plan achieved the task (checked once after it ran, before any retry)."""
        return True

    @abc.abstractmethod
    def plan(self, frame: Frame) -> Decision | None:
        """Tool calls for this frame, a Decision without calls (with errors) or ``None`` when done."""
