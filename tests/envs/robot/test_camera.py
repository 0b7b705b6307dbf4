"""The calibrated camera: project/deproject round trips against real MuJoCo renders."""

from __future__ import annotations

import numpy as np
import pytest

from agentkit.types import Point

pytestmark = pytest.mark.robot


def test_project_deproject_round_trip_is_exact(sim):
    sim.reset(seed=1)
    cam = sim.camera
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(100):
        xyz = rng.uniform([1.0, 0.4, 0.4], [1.6, 1.1, 0.9])
        try:
            point, depth = cam.project(xyz)
        except ValueError:  # off the image: project refuses, as it should
            continue
        assert np.allclose(cam.deproject(point, depth), xyz, atol=1e-9)
        checked += 1
    assert checked > 50


def test_intrinsics_and_extrinsics_are_consistent(sim):
    cam = sim.camera
    K, T = cam.K, cam.extrinsics
    assert K[0, 2] == sim.width / 2 and K[1, 2] == sim.height / 2 and K[0, 0] == K[1, 1] > 0
    assert np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-9)  # a rotation
    assert T[2, 3] > 1.0  # above the table
    assert T[:3, :3][2, 2] > 0.5  # camera -z (its view direction) points down: z axis points up-ish


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_rendered_depth_deprojects_to_the_block_top(sim, seed):
    from agentkit.envs.robot.arm import RobotArm

    robot = RobotArm(sim)
    robot.reset(seed=seed)
    robot.run_sync(robot.home())  # the arm out of the view
    _, depth = sim.render()
    top = sim.object_pos + np.array([0, 0, 0.025])
    point, _ = sim.camera.project(top)
    px, py = point.to_pixels(sim.width, sim.height)
    xyz = sim.camera.deproject(point, float(depth[py, px]))
    assert np.linalg.norm(xyz - top) < 0.012


def test_target_marker_is_visible_in_colour_and_depth(sim):
    sim.reset(seed=1)  # a target in the air
    rgb, depth = sim.render()
    target = sim.target_pos
    point, z = sim.camera.project(target)
    px, py = point.to_pixels(sim.width, sim.height)
    r, g, b = (int(v) for v in rgb[py, px])
    assert r > 150 and g < 60 and b < 60, (r, g, b)
    assert abs(float(depth[py, px]) - z) < 0.03  # the sphere's surface, 2 cm radius


def test_point_to_world_rejects_background(sim):
    from agentkit.errors import ToolError

    sim.reset(seed=0)
    with pytest.raises(ToolError, match="no depth"):
        sim.point_to_world(Point(0.5, 0.99))  # beyond the far edge of the floor: no depth in range
