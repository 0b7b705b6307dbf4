"""Closed-loop motion primitives for the Fetch arm, written as step generators.

Why generators: a primitive (a pick takes ~50 control steps) must not block the event loop, must be
cancellable when a new instruction arrives, and must let the camera keep streaming while it runs. Each
primitive here yields after every control step; the async tools in ``agentkit.tools.robot`` drive them
with ``await asyncio.sleep(0)`` between chunks, and the synchronous evaluation simply exhausts them.

Every primitive validates its target against the workspace *before* it moves, stops with a
:class:`~agentkit.errors.ToolError` when it does not converge within its step budget, and leaves the
mocap target where it is on cancellation (the arm holds still: the safe state).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from agentkit.envs.robot.fetch import FetchSim
from agentkit.errors import ToolError
from agentkit.types import ActorStatus, Point

GRIPPER_CLEARANCE = 0.012  # the gripper site stays this far above the table top
GAIN = 12.0  # action per metre of error (an action of 1 moves the mocap 5 cm)
OPEN, CLOSE = 1.0, -1.0
GRASP_MIN_WIDTH = 0.015  # fingers closed on something, not on air
APPROACH_HEIGHT = 0.10

Steps = Generator[None, None, Any]


def _up(p: np.ndarray, dz: float) -> np.ndarray:
    """``p`` raised by ``dz`` metres."""
    return np.asarray(p, dtype=float) + np.array([0.0, 0.0, dz])


class RobotArm:
    """The arm's primitives over one world (:class:`FetchSim`, or ``PandaSim``), serialized by a lock.

    The world provides ``step/grip_pos/finger_width/point_to_world/workspace`` and the geometry
    ``table_top_z/object_half/home_pos``; nothing here is specific to one simulator.

    ``busy`` is true while a primitive runs; sources report it in ``Frame.status`` so a policy knows
    when its previous plan has finished.
    """

    def __init__(self, sim: FetchSim, move_steps: int = 60, chunk: int = 1, realtime: float = 0.0) -> None:
        self.sim = sim
        self.realtime = realtime  # 1.0: one control step per 0.04 s of wall time (live); 0: as fast as possible
        self.move_steps = move_steps
        self.chunk = max(1, chunk)
        self.lock = asyncio.Lock()
        self.busy = 0
        self.actions = 0  # tool calls finished (ok or not) since the robot was built
        self.grip_cmd = OPEN
        self.on_step: Callable[[FetchSim], None] | None = None  # e.g. a video recorder

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode of the simulation with the gripper command open."""
        self.sim.reset(seed=seed)
        self.grip_cmd = OPEN

    def status(self) -> ActorStatus:
        """What every frame carries about the robot (never the scene state: see :meth:`scene_state`)."""
        return ActorStatus(self.sim.episode, self.busy > 0, self.actions, self.sim.steps)

    def scene_state(self) -> dict[str, Any]:
        """PRIVILEGED: object, target and gripper positions (for the expert and for evaluation)."""
        return dict(self.sim.state())

    def render(self, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """The camera's colour image (and depth in metres when ``depth``)."""
        return self.sim.render(depth=depth)

    # -- async driver ------------------------------------------------------------------------------
    async def drive(self, gen: Steps) -> Any:
        """Run a primitive on the event loop, yielding control every ``chunk`` steps (cancellable)."""
        async with self.lock:
            self.busy += 1
            try:
                n = 0
                t0 = time.monotonic()
                period = self.sim.dt / self.realtime if self.realtime > 0 else 0.0
                while True:
                    try:
                        next(gen)
                    except StopIteration as stop:
                        return stop.value
                    n += 1
                    if period:
                        await asyncio.sleep(max(0.0, t0 + n * period - time.monotonic()))
                    elif n % self.chunk == 0:
                        await asyncio.sleep(0)
            finally:
                gen.close()
                self.busy -= 1

    @staticmethod
    def run_sync(gen: Steps) -> Any:
        """Exhaust a primitive synchronously (evaluation without an event loop)."""
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value

    # -- geometry ------------------------------------------------------------------------------------
    def resolve(self, point: Point | None = None, xyz: list[float] | None = None) -> np.ndarray:
        """A world point from an image point (self-filtered depth) or explicit world coordinates."""
        if (point is None) == (xyz is None):
            raise ToolError("give exactly one of 'point' (normalized image point) or 'xyz' (world metres)")
        if xyz is not None:
            return np.asarray(xyz, dtype=float)
        assert point is not None
        return self.sim.point_to_world(point)

    # -- low-level -----------------------------------------------------------------------------------
    def _act(self, delta: np.ndarray, grip: float) -> None:
        self.sim.step(np.concatenate([np.clip(delta * GAIN, -1.0, 1.0), [grip]]))
        if self.on_step is not None:
            self.on_step(self.sim)

    def move(self, target: np.ndarray, tol: float = 0.008, max_steps: int | None = None) -> Steps:
        """Closed-loop move of the gripper to ``target`` (checked against the workspace)."""
        target = np.asarray(target, dtype=float)
        self.sim.workspace.check(target)
        min_z = self.sim.table_top_z + GRIPPER_CLEARANCE
        if target[2] < min_z:
            raise ToolError(f"gripper target z={target[2]:.3f} m is below the safe height {min_z:.3f} m")
        budget = max_steps or self.move_steps
        for _ in range(budget):
            err = target - self.sim.grip_pos
            if np.linalg.norm(err) < tol:
                return {"reached": self.sim.grip_pos.round(4).tolist()}
            self._act(err, self.grip_cmd)
            yield
        err = float(np.linalg.norm(target - self.sim.grip_pos))
        raise ToolError(f"gripper did not reach the target within {budget} steps ({err * 100:.1f} cm away)")

    def gripper(self, cmd: float, steps: int = 8) -> Steps:
        self.grip_cmd = cmd
        for _ in range(steps):
            self._act(np.zeros(3), cmd)
            yield
        return {"finger_width": round(self.sim.finger_width, 4)}

    def holding(self) -> bool:
        return self.grip_cmd == CLOSE and self.sim.finger_width > GRASP_MIN_WIDTH

    # -- primitives ----------------------------------------------------------------------------------
    def go_to(self, xyz: np.ndarray) -> Steps:
        """Move the gripper (keeping the grip) to ``xyz`` via a safe height when descending far."""
        out = yield from self.move(xyz)
        return out

    def home(self) -> Steps:
        """Retract to the home pose, clear of the camera's view of the table."""
        out = yield from self.move(self.sim.home_pos, tol=0.02)
        return out

    def open_gripper(self) -> Steps:
        return (yield from self.gripper(OPEN))

    def close_gripper(self) -> Steps:
        return (yield from self.gripper(CLOSE))

    def pick(self, surface: np.ndarray) -> Steps:
        """Grasp the object whose visible surface is at ``surface`` and lift it."""
        surface = np.asarray(surface, dtype=float)
        self.sim.workspace.check(surface, "pick point")
        table = self.sim.table_top_z
        height = surface[2] - table
        grasp = surface.copy()
        grasp[2] = surface[2] - min(0.02, max(height, 0.0) / 2)
        grasp[2] = max(grasp[2], table + 0.015)
        above = _up(grasp, APPROACH_HEIGHT)
        self.sim.workspace.check(above, "approach point")
        yield from self.gripper(OPEN, steps=4)
        yield from self.move(above, tol=0.02)
        yield from self.move(grasp)
        yield from self.gripper(CLOSE, steps=8)
        yield from self.move(_up(grasp, APPROACH_HEIGHT), tol=0.02)
        if not self.holding():
            raise ToolError(f"grasp failed at ({', '.join(f'{v:.3f}' for v in grasp)}): the fingers closed on nothing")
        return {"grasped": True, "at": grasp.round(4).tolist(), "finger_width": round(self.sim.finger_width, 4)}

    def place(self, surface: np.ndarray, release: bool | None = None) -> Steps:
        """Bring the held object to ``surface``: put it down on a support, or hold it at a point in the air.

        A surface point less than one object height (+1.2 cm) above the table top is a support: the object's centre goes
        half its height above the table and the gripper opens. Any higher point is a point in space: the
        object is held there (opening would drop it), unless ``release`` says otherwise.
        """
        surface = np.asarray(surface, dtype=float)
        self.sim.workspace.check(surface, "place point")
        if not self.holding():
            raise ToolError("place: the gripper is not holding anything (pick first)")
        table, half = self.sim.table_top_z, self.sim.object_half
        on_table = surface[2] < table + 2 * half + 0.012
        goal = surface.copy()
        if on_table:
            goal[2] = table + half + 0.003
        do_release = on_table if release is None else release
        above = _up(goal, APPROACH_HEIGHT if on_table else 0.0)
        above[2] = max(above[2], self.sim.grip_pos[2])
        above[2] = min(above[2], self.sim.workspace.hi[2])
        yield from self.move(above, tol=0.02)
        yield from self.move(goal)
        if do_release:
            yield from self.gripper(OPEN, steps=6)
            yield from self.move(_up(goal, 0.06), tol=0.02)
        return {"placed": True, "at": goal.round(4).tolist(), "released": do_release}

    def push(self, start: np.ndarray, end: np.ndarray) -> Steps:
        """Push along the table from ``start`` to ``end`` with closed fingers at block height."""
        start, end = np.asarray(start, float), np.asarray(end, float)
        self.sim.workspace.check(start, "push start")
        self.sim.workspace.check(end, "push end")
        d = end[:2] - start[:2]
        if np.linalg.norm(d) < 1e-3:
            raise ToolError("push: start and end are the same point")
        u = d / np.linalg.norm(d)
        half = self.sim.object_half
        z = self.sim.table_top_z + half
        behind = np.array([*(start[:2] - u * (half + 0.03)), z])
        stop = np.array([*(end[:2] - u * (half + 0.01)), z])
        yield from self.gripper(CLOSE, steps=4)
        yield from self.move(_up(behind, APPROACH_HEIGHT), tol=0.02)
        yield from self.move(behind)
        yield from self.move(stop, max_steps=2 * self.move_steps)
        yield from self.move(_up(stop, APPROACH_HEIGHT), tol=0.02)
        return {"pushed": True, "to": end.round(4).tolist()}
