"""panda-gym behind the same world interface: camera round trip, the same tools and policies."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

pytestmark = pytest.mark.robot


@pytest.fixture(scope="module")
def panda():
    pytest.importorskip("panda_gym")
    pytest.importorskip("pybullet")
    from agentkit.envs.robot.panda import PandaSim

    sim = PandaSim(320, 240)
    yield sim
    sim.close()


def test_panda_camera_deprojects_the_rendered_block(panda):
    panda.reset(seed=0)
    _, depth = panda.render()
    top = panda.object_pos + np.array([0, 0, panda.object_half])
    point, z = panda.camera.project(top)
    px, py = point.to_pixels(panda.width, panda.height)
    assert abs(float(depth[py, px]) - z) < 0.01
    assert np.linalg.norm(panda.camera.deproject(point, float(depth[py, px])) - top) < 0.012


@pytest.mark.parametrize("name", ["fetch-expert", "fetch-pixels"])
def test_same_policies_and_tools_succeed_on_panda(panda, name):
    from agentkit.envs.robot.arm import RobotArm
    from agentkit.envs.robot.episode import ArmEpisodeEnv
    from agentkit.episode import run_episode
    from agentkit.policy import make_policy
    from agentkit.tools.robot import robot_toolbox

    robot = RobotArm(panda)
    r = asyncio.run(run_episode(ArmEpisodeEnv(robot, robot_toolbox(robot)), make_policy(name), seed=3))
    assert r.success, r.errors


def test_panda_rejects_out_of_workspace(panda):
    from agentkit.envs.robot.arm import RobotArm
    from agentkit.tools.robot import robot_toolbox
    from agentkit.types import ToolCall

    robot = RobotArm(panda)
    robot.reset(seed=0)
    steps = panda.steps
    res = asyncio.run(robot_toolbox(robot).run(ToolCall("pick", {"xyz": [0.9, 0.0, 0.02]})))
    assert not res.ok and "outside the workspace" in res.error and panda.steps == steps
