"""The multi-block Fetch world: seeded scenes, visible non-overlapping blocks, an instruction naming one of
them, grasp detection and self-filtered depth with several objects, the eval CLI and the live app on it, and
the single-block world left as it was."""

from __future__ import annotations

import asyncio
import colorsys
import itertools
import json

import numpy as np
import pytest

pytestmark = pytest.mark.robot

# Hue bands (degrees) of each colour in the render, checked independently of the pixels policy's thresholds.
HUES = {"red": (-15, 15), "yellow": (40, 75), "green": (95, 150), "blue": (200, 245), "magenta": (285, 315)}


def _looks(rgb: np.ndarray, colour: str) -> bool:
    h, s, v = colorsys.rgb_to_hsv(*(rgb / 255.0))
    lo, hi = HUES[colour]
    hue = h * 360 - (360 if h * 360 > 345 else 0)
    return bool(s > 0.45 and v > 0.3 and lo <= hue <= hi)


@pytest.fixture(scope="module")
def multi():
    pytest.importorskip("gymnasium_robotics")
    pytest.importorskip("mujoco")
    from agentkit.envs.robot.worlds import make_sim

    s = make_sim("fetch-multi", 320, 240)
    yield s
    s.close()


@pytest.fixture()
def arm(multi):
    from agentkit.envs.robot.arm import RobotArm

    return RobotArm(multi)


def _top(sim, name):
    """Centre of the top face of block ``name``."""
    return sim.block_pos(name) + np.array([0.0, 0.0, sim.object_half])


def _scene(sim, seed):
    sim.reset(seed=seed)
    return (
        sim.instruction,
        [(b.name, b.colour, b.shape) for b in sim.blocks],
        np.round([sim.block_pos(b.name) for b in sim.blocks], 6).tolist(),
        np.round(sim.target_pos, 6).tolist(),
    )


def test_parse_instruction():
    from agentkit.envs.robot.fetch_multi import BlockQuery, parse_instruction

    assert parse_instruction("Put the YELLOW cylinder on the target") == BlockQuery("yellow", "cylinder")
    assert parse_instruction("move the green block onto the target") == BlockQuery("green", None)
    assert parse_instruction("place the cube on the target") == BlockQuery(None, "cube")
    assert parse_instruction("put the block on the target") == BlockQuery(None, None)
    assert BlockQuery("red", None).matches("red", "cylinder")
    assert not BlockQuery("red", "cube").matches("red", "cylinder")


def test_same_seed_same_scene_different_seeds_differ(multi):
    first = _scene(multi, 5)
    _scene(multi, 6)
    assert _scene(multi, 5) == first  # blocks, colours, shapes, positions, target and wording
    scenes = [_scene(multi, s) for s in range(12)]
    assert len({json.dumps(s) for s in scenes}) == 12
    assert len({s[0] for s in scenes}) > 4  # the instruction varies
    assert {len(s[1]) for s in scenes} == {2, 3, 4}
    assert {shape for s in scenes for _, _, shape in s[1]} == {"cube", "cylinder"}


def test_blocks_are_apart_on_the_table_and_the_target_is_clear(multi):
    from agentkit.envs.robot.fetch import TABLE_TOP_Z
    from agentkit.envs.robot.fetch_multi import MIN_GAP

    for seed in range(30):
        multi.reset(seed=seed)
        xyz = np.array([multi.block_pos(b.name) for b in multi.blocks])
        colours = [b.colour for b in multi.blocks]
        assert 2 <= len(xyz) <= 4 and len(set(colours)) == len(colours)
        assert np.allclose(xyz[:, 2], TABLE_TOP_Z + multi.object_half, atol=0.002)
        assert all(multi.workspace.contains(p) for p in xyz)
        for a, b in itertools.combinations(xyz, 2):
            assert np.linalg.norm(a[:2] - b[:2]) >= MIN_GAP
        assert all(np.linalg.norm(multi.target_pos[:2] - p[:2]) >= MIN_GAP for p in xyz)


def test_blocks_stay_put_when_the_physics_runs(multi):
    multi.reset(seed=3)
    before = np.array([multi.block_pos(b.name) for b in multi.blocks])
    for _ in range(25):
        multi.step(np.zeros(4))
    after = np.array([multi.block_pos(b.name) for b in multi.blocks])
    assert np.abs(after - before).max() < 0.003


def test_every_block_and_the_target_are_visible_in_their_colour(multi, arm):
    from agentkit.envs.robot.fetch_multi import TARGET_COLOUR

    for seed in range(10):
        arm.reset(seed=seed)
        arm.run_sync(arm.home())
        rgb, _ = multi.render(depth=False)
        things = [(_top(multi, b.name), b.colour) for b in multi.blocks]
        things.append((multi.target_pos, TARGET_COLOUR))
        for xyz, colour in things:
            point, _ = multi.camera.project(xyz)  # raises if off the image
            px, py = point.to_pixels(multi.width, multi.height)
            patch = rgb[max(py - 3, 0) : py + 4, max(px - 3, 0) : px + 4].reshape(-1, 3).astype(int)
            hits = sum(_looks(p, colour) for p in patch)
            assert hits >= 20, (seed, colour, hits)  # of 49: the block's own colour is there, not hidden


def test_instruction_names_exactly_one_existing_block(multi):
    from agentkit.envs.robot.fetch_multi import parse_instruction

    for seed in range(20):
        state = _state(multi, seed)
        query = parse_instruction(multi.instruction)
        matches = [b for b in state["blocks"] if query.matches(b["colour"], b["shape"])]
        assert query.colour is not None and len(matches) == 1, multi.instruction
        assert matches[0]["name"] == state["named"] == multi.named.name
        assert state["object_pos"] == matches[0]["pos"]  # object_pos is the named block
        assert state["instruction"] == multi.instruction and not state["success"]


def _state(sim, seed):
    sim.reset(seed=seed)
    return sim.state()


def test_grasp_detection_and_self_filtered_depth_follow_the_held_block(multi, arm):
    arm.reset(seed=4)
    arm.run_sync(arm.home())
    other = next(b for b in multi.blocks if b is not multi.named)
    top = _top(multi, other.name)
    assert multi.held_block() is None and not multi.is_grasped()
    arm.run_sync(arm.pick(top))
    assert multi.held_block() == other and multi.is_grasped()
    # the held block is hidden from the self-filtered depth: below it the camera sees the table
    point, depth_to_block = multi.camera.project(_top(multi, other.name))
    px, py = point.to_pixels(multi.width, multi.height)
    assert multi.self_filtered_depth()[py, px] > depth_to_block + 0.03
    _, full = multi.render()
    assert full[py, px] < depth_to_block + 0.01  # ... while the full render still shows it
    assert not multi.is_success()  # the wrong block does not count


def test_unused_blocks_are_parked_out_of_sight(multi):
    from agentkit.envs.robot.fetch import HIDDEN_GROUP

    for seed in range(8):
        multi.reset(seed=seed)
        used = {b.name for b in multi.blocks}
        for name, geoms in multi.block_geoms.items():
            if name in used:
                continue
            assert all(multi.model.geom_group[g] == HIDDEN_GROUP for g in geoms.values())
            with pytest.raises(ValueError):
                multi.camera.project(multi.block_pos(name))


def test_eval_cli_on_fetch_multi_reports_instruction_and_blocks(tmp_path):
    from typer.testing import CliRunner

    import agentkit.apps.cli.robot  # noqa: F401  (registers the commands)
    from agentkit.apps.cli.groups import app

    out = tmp_path / "r.json"
    args = ["eval", "fetch", "--env", "fetch-multi", "--policy", "expert", "--episodes", "2", "--seed", "7"]
    res = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["config"]["env"] == "fetch-multi" and report["overall"]["success_rate"] == 1.0
    for row in report["rows"]:
        assert 2 <= row["blocks"] <= 4 and row["instruction"].endswith("target")
    assert all(e["instruction"] for e in report["episodes"])


def test_live_app_uses_the_world_instruction(tmp_path):
    from agentkit.apps.robot import LiveConfig, run_live

    result = asyncio.run(run_live(LiveConfig(env="fetch-multi", policy="pixels", seed=9, duration_s=40, realtime=4.0)))
    assert result["success"], result
    assert result["task"] == result["state"]["instruction"] and result["state"]["blocks"]


def test_single_block_world_is_unchanged(sim):
    """Seed 0 of ``fetch`` puts the block and the goal where they always were (values from before fetch-multi)."""
    state = _state(sim, 0)
    keys = "episode finger_width grip_pos object_half object_pos seed steps success target_pos"
    assert sorted(state) == keys.split()
    assert np.allclose(state["object_pos"], [1.20423, 0.60406, 0.42489], atol=1e-5)
    assert np.allclose(state["target_pos"], [1.43591, 0.87293, 0.42489], atol=1e-5)
    assert not getattr(sim, "instruction", "")  # no instruction of its own: the given task (or the default) is used
