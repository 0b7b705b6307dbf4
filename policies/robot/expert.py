"""Scripted Fetch expert: reads the privileged state and calls pick / place with world coordinates.

Why: it is the upper bound of the primitives (no perception in the way) and a source of demonstrations.
It declares ``privileged = True`` and reads ``Frame.privileged`` (object and target positions), which
sources and runners fill only for privileged policies; the pixels policy never gets it.

In a world with several blocks (``fetch-multi``) it reads the same instruction the other policies get
(``instruct``) and picks the block it names (colour and shape) from the privileged list of blocks; without
a colour or shape in the instruction it moves ``object_pos``, the block the world itself names.
"""

from __future__ import annotations

import numpy as np

from agentkit.envs.robot.fetch import OBJECT_HALF, SUCCESS_DISTANCE
from agentkit.envs.robot.fetch_multi import parse_instruction
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

    def _object(self, state: dict) -> tuple[np.ndarray | None, str]:
        """Position and description of the block the instruction names (``None``: no such block)."""
        query = parse_instruction(self.instruction)
        blocks = state.get("blocks")
        if not blocks or (query.colour is None and query.shape is None):
            return np.asarray(state["object_pos"], dtype=float), "the block"
        for b in blocks:
            if query.matches(b["colour"], b["shape"]):
                return np.asarray(b["pos"], dtype=float), f"the {b['colour']} {b['shape']}"
        return None, " ".join(w for w in (query.colour, query.shape or "block") if w)

    def finished(self, frame: Frame) -> bool:
        state = self._state(frame)
        if state is None:
            return True
        obj, _ = self._object(state)
        if obj is None:
            return True
        dist = np.linalg.norm(obj - np.asarray(state["target_pos"], dtype=float))
        return bool(dist < SUCCESS_DISTANCE * 0.8)

    def plan(self, frame: Frame) -> Decision | None:
        state = self._state(frame)
        if state is None:
            return Decision.silence(errors=["fetch-expert needs the scene state in Frame.privileged"])
        obj, what = self._object(state)
        if obj is None:
            return Decision.silence(errors=[f"fetch-expert: there is no {what} in the scene"])
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
        return Decision.response(f"pick {what} and place it at the target", tool_calls=calls)
