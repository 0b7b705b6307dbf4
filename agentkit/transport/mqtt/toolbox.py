"""A ToolBox whose tools run on a remote node over MQTT.

Why: the loop's executor only knows :class:`~agentkit.tooling.ToolBox`. This one validates a call against
the node's tool schemas locally (a malformed call never leaves the process), sends it on the node's
``action`` topic with the frame it was decided on, and turns the node's ``result`` (or a timeout, or a
lost broker) into an :class:`~agentkit.types.ActionResult`. The node validates again: it trusts nobody.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from agentkit.tooling import Tool, ToolBox
from agentkit.transport.mqtt.link import RobotLink
from agentkit.types import ToolCall


class MqttToolBox(ToolBox):
    """``tools`` (only their schemas are used here) executed by the node behind ``link``.

    ``timeout_s`` bounds each call's round trip.
    """

    def __init__(self, link: RobotLink, tools: Iterable[Tool], timeout_s: float = 30.0) -> None:
        super().__init__(tools, timeout_s=timeout_s)
        self.link = link
        self.frame_to_action_ms: list[float] = []

    async def execute(self, tool: Tool, args: BaseModel, call: ToolCall, seq: int) -> tuple[bool, Any, str | None]:
        """Send the validated call to the node with the frame it was decided on; its result is the answer."""
        body: dict[str, Any] = {
            "call": {"name": call.name, "arguments": args.model_dump(mode="json", exclude_none=True)},
        }
        if seq >= 0:  # -1: not decided on a frame
            body["frame_seq"] = seq
            frame_t = self.link.frame_time(seq)
            if frame_t is not None:
                body["frame_t"] = frame_t
        reply = await self.link.request("action", body, self.timeout_s)
        if reply.get("frame_to_action_ms") is not None:
            self.frame_to_action_ms.append(float(reply["frame_to_action_ms"]))
        out = reply.get("output")
        if isinstance(out, dict):
            out = {**out, "frame_to_action_ms": reply.get("frame_to_action_ms")}
        return bool(reply.get("ok")), out, reply.get("error")
