"""Robot primitives as agentkit tools: pick, place, push, go_to, open_gripper, close_gripper, home.

Why: a policy (a VLM, the pixels policy, an expert) speaks in tool calls with *normalized image points*;
these tools ground each point through the robot's own RGB-D camera (self-filtered depth, so the arm
never hides what it looks for), check the workspace bounds before anything moves, and drive the
closed-loop primitives of an :class:`Arm` (``agentkit.envs.robot.arm.RobotArm`` is one) as cancellable
coroutines.
Each tool also accepts ``xyz`` (world metres) instead of ``point``: the expert uses it to bypass
perception and give an upper bound.

Failures are :class:`~agentkit.errors.ToolError` with one line (the ToolBox records them); a rejected
call never moves the arm.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentkit.tooling import NoArgs, NormPoint, Tool, ToolBox
from agentkit.transport.mqtt.link import RobotLink
from agentkit.transport.mqtt.toolbox import MqttToolBox
from agentkit.types import Point

XYZ = list[float]
Steps = Generator[None, None, Any]


class Arm(Protocol):
    """What the tools drive: primitives written as step generators, run (cancellably) by ``drive``."""

    actions: int

    async def drive(self, gen: Steps) -> Any: ...

    def resolve(self, point: Point | None = None, xyz: list[float] | None = None) -> np.ndarray: ...

    def pick(self, surface: np.ndarray) -> Steps: ...

    def place(self, surface: np.ndarray, release: bool | None = None) -> Steps: ...

    def push(self, start: np.ndarray, end: np.ndarray) -> Steps: ...

    def go_to(self, xyz: np.ndarray) -> Steps: ...

    def home(self) -> Steps: ...

    def open_gripper(self) -> Steps: ...

    def close_gripper(self) -> Steps: ...


class _Target(BaseModel):
    model_config = ConfigDict(extra="forbid")
    point: NormPoint | None = Field(None, description="normalized image point [x, y] in [0, 1], origin top-left")
    xyz: XYZ | None = Field(None, min_length=3, max_length=3, description="world position in metres")

    @model_validator(mode="after")
    def _one(self) -> _Target:
        if (self.point is None) == (self.xyz is None):
            raise ValueError("give exactly one of 'point' or 'xyz'")
        return self


class PickArgs(_Target):
    pass


class PlaceArgs(_Target):
    release: bool | None = Field(None, description="open the gripper at the end (default: only on a support)")


class GoToArgs(_Target):
    height: float = Field(0.05, ge=0.0, le=0.5, description="metres above the surface seen at the point")


class PushArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    point_from: NormPoint = Field(description="normalized image point of the object to push")
    point_to: NormPoint = Field(description="normalized image point to push it to")


class RobotTool(Tool):
    """A tool bound to one :class:`Arm`; counts finished calls in ``robot.actions``."""

    def __init__(self, robot: Arm) -> None:
        self.robot = robot

    async def run(self, args: Any) -> Any:
        try:
            return await self._run(args)
        finally:
            self.robot.actions += 1

    async def _run(self, args: Any) -> Any:  # pragma: no cover - every tool overrides it
        raise NotImplementedError


class Pick(RobotTool):
    name: ClassVar[str] = "pick"
    description: ClassVar[str] = "Grasp the object seen at an image point and lift it."
    Args: ClassVar[type[BaseModel]] = PickArgs

    async def _run(self, args: PickArgs) -> Any:
        xyz = self.robot.resolve(args.point, args.xyz)
        return await self.robot.drive(self.robot.pick(xyz))


class Place(RobotTool):
    name: ClassVar[str] = "place"
    description: ClassVar[str] = "Put the held object at the image point (on the table, or held at a point in the air)."
    Args: ClassVar[type[BaseModel]] = PlaceArgs

    async def _run(self, args: PlaceArgs) -> Any:
        xyz = self.robot.resolve(args.point, args.xyz)
        return await self.robot.drive(self.robot.place(xyz, args.release))


class GoTo(RobotTool):
    name: ClassVar[str] = "go_to"
    description: ClassVar[str] = "Move the gripper above the surface seen at an image point."
    Args: ClassVar[type[BaseModel]] = GoToArgs

    async def _run(self, args: GoToArgs) -> Any:
        xyz = self.robot.resolve(args.point, args.xyz)
        xyz[2] += args.height
        return await self.robot.drive(self.robot.go_to(xyz))


class Push(RobotTool):
    name: ClassVar[str] = "push"
    description: ClassVar[str] = "Push the object at point_from along the table to point_to."
    Args: ClassVar[type[BaseModel]] = PushArgs

    async def _run(self, args: PushArgs) -> Any:
        start = self.robot.resolve(args.point_from)
        end = self.robot.resolve(args.point_to)
        return await self.robot.drive(self.robot.push(start, end))


class OpenGripper(RobotTool):
    name: ClassVar[str] = "open_gripper"
    description: ClassVar[str] = "Open the gripper."
    Args: ClassVar[type[BaseModel]] = NoArgs

    async def _run(self, args: NoArgs) -> Any:
        return await self.robot.drive(self.robot.open_gripper())


class CloseGripper(RobotTool):
    name: ClassVar[str] = "close_gripper"
    description: ClassVar[str] = "Close the gripper."
    Args: ClassVar[type[BaseModel]] = NoArgs

    async def _run(self, args: NoArgs) -> Any:
        return await self.robot.drive(self.robot.close_gripper())


class Home(RobotTool):
    name: ClassVar[str] = "home"
    description: ClassVar[str] = "Retract the arm to its home pose, clear of the camera's view of the table."
    Args: ClassVar[type[BaseModel]] = NoArgs

    async def _run(self, args: NoArgs) -> Any:
        return await self.robot.drive(self.robot.home())


ROBOT_TOOLS: tuple[type[RobotTool], ...] = (Pick, Place, Push, GoTo, OpenGripper, CloseGripper, Home)


def robot_toolbox(robot: Arm, timeout_s: float = 30.0) -> ToolBox:
    """A :class:`ToolBox` with every robot primitive bound to ``robot``."""
    return ToolBox([cls(robot) for cls in ROBOT_TOOLS], timeout_s=timeout_s)


def remote_robot_toolbox(link: RobotLink, timeout_s: float = 30.0) -> MqttToolBox:
    """The robot primitives of a node behind ``link``: validated here, run (and validated again) there."""
    return MqttToolBox(link, [cls(None) for cls in ROBOT_TOOLS], timeout_s=timeout_s)  # type: ignore[arg-type]
