"""Robot tools through the real ToolBox: bad input is a recorded error and the arm does not move."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agentkit.types import ToolCall

pytestmark = pytest.mark.robot


def _run(robot, name, args, timeout_s=30.0):
    from agentkit.tools.robot import robot_toolbox

    return asyncio.run(robot_toolbox(robot, timeout_s=timeout_s).run(ToolCall(name, args)))


def _still(robot, before):
    assert robot.sim.steps == before[0]
    assert np.allclose(robot.sim.grip_pos, before[1])
    assert robot.busy == 0 and not robot.lock.locked()


@pytest.mark.parametrize(
    ("name", "args", "match"),
    [
        ("pick", {"xyz": [2.5, 0.75, 0.45]}, "outside the workspace"),
        ("place", {"xyz": [1.3, 0.75, 0.1]}, "outside the workspace"),
        ("go_to", {"xyz": [1.3, 3.0, 0.6]}, "outside the workspace"),
        ("pick", {"point": [0.5, 0.99]}, "no depth"),
        ("pick", {"point": [1.5, 0.5]}, "invalid arguments"),  # off the image
        ("pick", {"point": "the block"}, "invalid arguments"),
        ("pick", {}, "exactly one of"),
        ("pick", {"point": [0.5, 0.5], "xyz": [1.3, 0.75, 0.45]}, "exactly one of"),
        ("pick", {"point": [0.5, 0.5], "force": 3}, "invalid arguments"),
        ("go_to", {"xyz": [1.3, 0.75, 0.401], "height": 0.0}, "below the safe height"),
        ("fly", {}, "unknown tool 'fly'"),
        ("place", {"xyz": [1.3, 0.75, 0.45]}, "not holding"),
    ],
)
def test_rejections_are_errors_and_the_arm_stays_still(robot, name, args, match):
    before = (robot.sim.steps, robot.sim.grip_pos)
    result = _run(robot, name, args)
    assert not result.ok
    assert match in result.error
    assert "\n" not in result.error
    _still(robot, before)


def test_pick_on_empty_table_fails_cleanly(robot):
    sim = robot.sim
    empty = sim.object_pos + np.array([0.0, 0.12 if sim.object_pos[1] < 0.75 else -0.12, 0.0])
    result = _run(robot, "pick", {"xyz": empty.tolist()})
    assert not result.ok and "closed on nothing" in result.error


def test_home_open_close_and_go_to_point(robot):
    assert _run(robot, "home", {}).ok
    assert _run(robot, "close_gripper", {}).ok and robot.sim.finger_width < 0.01
    assert _run(robot, "open_gripper", {}).ok and robot.sim.finger_width > 0.05
    point, _ = robot.sim.camera.project(robot.sim.object_pos + np.array([0, 0, 0.025]))
    result = _run(robot, "go_to", {"point": point.to_dict(), "height": 0.1})
    assert result.ok, result.error
    assert np.linalg.norm(robot.sim.grip_pos[:2] - robot.sim.object_pos[:2]) < 0.02


def test_push_moves_the_block_towards_the_goal(robot):
    sim = robot.sim
    robot.run_sync(robot.home())
    start = sim.object_pos.copy()
    goal = start + np.array([0.0, 0.1 if start[1] < 0.75 else -0.1, 0.0])
    p_from, _ = sim.camera.project(start + np.array([0, 0, 0.025]))
    p_to, _ = sim.camera.project(goal)
    result = _run(robot, "push", {"point_from": p_from.to_dict(), "point_to": p_to.to_dict()})
    assert result.ok, result.error
    assert np.linalg.norm(sim.object_pos[:2] - goal[:2]) < np.linalg.norm(start[:2] - goal[:2]) - 0.05


def test_primitives_are_cancellable_and_leave_the_robot_idle(robot):
    from agentkit.tools.robot import robot_toolbox

    robot.realtime = 1.0  # 0.04 s per step, so the pick is still running when cancelled
    box = robot_toolbox(robot)

    async def go():
        top = robot.sim.object_pos + np.array([0, 0, 0.025])
        task = asyncio.create_task(box.run(ToolCall("pick", {"xyz": top.tolist()})))
        await asyncio.sleep(0.3)
        assert robot.busy == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        steps = robot.sim.steps
        await asyncio.sleep(0.1)
        return steps

    steps = asyncio.run(go())
    assert 0 < steps < 40 and robot.sim.steps == steps  # stopped mid-way, nothing moves afterwards
    assert robot.busy == 0 and not robot.lock.locked()
