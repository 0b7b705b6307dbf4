"""The simulated robot as a live :class:`~agentkit.sources.Source`.

Why: in a live run the camera must keep streaming while a primitive moves the arm. This source renders
the fixed RGB-D camera at ``fps`` on the event-loop thread (the same thread the primitives step the
simulation on, so MuJoCo is never touched from two threads) and tags every frame with the robot's
:class:`~agentkit.types.ActorStatus` (and, only when built ``privileged``, the scene state in
``Frame.privileged``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np

from agentkit.envs.robot.arm import RobotArm
from agentkit.sources import Source
from agentkit.types import Frame


class RobotCameraSource(Source):
    """Frames from the Fetch camera at ``fps`` (lossy, live). The latest depth is kept in ``last_depth``."""

    name = "fetch"
    lossless = False

    def __init__(
        self,
        robot: RobotArm,
        fps: float = 10.0,
        privileged: bool = False,
        max_frames: int | None = None,
        depth: bool = False,
    ) -> None:
        self.robot = robot
        self.fps = float(fps)
        self._period = 1.0 / self.fps
        self.privileged = privileged
        self.max_frames = max_frames
        self.depth = depth
        self.last_depth: np.ndarray | None = None
        self._stopped = False

    def stop(self) -> None:
        """End the stream after the current frame."""
        self._stopped = True

    async def frames(self) -> AsyncIterator[Frame]:
        start = time.monotonic()
        seq = 0
        period = self._period
        while not self._stopped and (self.max_frames is None or seq < self.max_frames):
            rgb, depth = self.robot.render(depth=self.depth)
            self.last_depth = depth
            now = time.monotonic()
            yield Frame(
                rgb,
                t=now,
                pts=now - start,
                seq=seq,
                source=self.name,
                status=self.robot.status(),
                privileged=self.robot.scene_state() if self.privileged else None,
            )
            seq += 1
            await asyncio.sleep(max(0.0, start + seq * period - time.monotonic()))
