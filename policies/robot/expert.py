"""Scripted Fetch expert: reads the privileged state and calls pick / place with world coordinates.

Why: it is the upper bound of the primitives (no perception in the way) and a source of demonstrations.
It declares ``privileged = True`` and reads ``Frame.privileged`` (object and target positions), which
sources and runners fill only for privileged policies; the pixels policy never gets it.
"""

from __future__ import annotations

import numpy as np

from agentkit.envs.robot.fetch import OBJECT_HALF, SUCCESS_DISTANCE
from agentkit.policies.robot.plan import PlanPolicy
from agentkit.types import Decision, Frame, ToolCall


class FetchExpertPolicy(PlanPolicy):
    """Pick the block at its privileged position, place it at the goal."""

    name = "fetch-expert"
    privileged = True
    look_first = False

    def _state(self, frame: Frame) -> dict | None:
        state = frame.privileged
        return state if isinstance(state, dict) and "object_pos" in state else None

    def finished(self, frame: Frame) -> bool:
        state = self._state(frame)
        if state is None:
            return True
        dist = np.linalg.norm(np.subtract(state["object_pos"], state["target_pos"]))
        return bool(dist < SUCCESS_DISTANCE * 0.8)

    def plan(self, frame: Frame) -> Decision | None:
        state = self._state(frame)
        if state is None:
            return Decision.silence(errors=["fetch-expert needs the scene state in Frame.privileged"])
        obj = np.asarray(state["object_pos"], dtype=float)
        goal = np.asarray(state["target_pos"], dtype=float)
        if np.linalg.norm(obj - goal) < SUCCESS_DISTANCE * 0.8:
            return None
        calls = []
        if state.get("finger_width", 0.0) > 0.015 and np.linalg.norm(obj - state["grip_pos"]) < 0.03:
            calls.append(ToolCall("place", {"xyz": goal.round(4).tolist()}))
        else:
            top = obj + np.array([0.0, 0.0, float(state.get("object_half", OBJECT_HALF))])
            calls += [
                ToolCall("pick", {"xyz": top.round(4).tolist()}),
                ToolCall("place", {"xyz": goal.round(4).tolist()}),
            ]
        return Decision.response("pick the block and place it at the target", tool_calls=calls)
