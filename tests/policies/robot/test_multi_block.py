"""The robot policies on the multi-block world: the same instruction reaches the expert, the pixels heuristic
and the VLM; the named block (and only it) ends on the target; the pixels policy never sees the state."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agentkit.types import ActorStatus, Frame

pytestmark = pytest.mark.robot


@pytest.fixture(scope="module")
def multi():
    pytest.importorskip("gymnasium_robotics")
    pytest.importorskip("mujoco")
    from agentkit.envs.robot.fetch_multi import FetchMultiSim

    s = FetchMultiSim(320, 240)
    yield s
    s.close()


def _episode(sim, name, seed, **options):
    from agentkit.envs.robot.arm import RobotArm
    from agentkit.envs.robot.episode import ArmEpisodeEnv
    from agentkit.episode import run_episode
    from agentkit.policy import make_policy
    from agentkit.tools.robot import robot_toolbox

    robot = RobotArm(sim)
    env = ArmEpisodeEnv(robot, robot_toolbox(robot))
    return asyncio.run(run_episode(env, make_policy(name, **options), seed=seed))


def _others(sim):
    return {b.name: sim.block_pos(b.name) for b in sim.blocks if b is not sim.named}


def test_pixels_colours_follow_the_instruction_and_the_config():
    from agentkit.errors import ConfigError
    from agentkit.policies.robot.pixels import FetchPixelsPolicy

    policy = FetchPixelsPolicy()
    assert policy.colours() == ("blue", "red", "blue block")  # no instruction: the single-block world
    policy.instruct("put the block on the target")
    assert policy.colours() == ("blue", "red", "blue block")
    policy.instruct("put the yellow cylinder on the target")
    assert policy.colours() == ("yellow", "magenta", "yellow cylinder")
    assert FetchPixelsPolicy(target_colour="red").colours()[1] == "red"
    with pytest.raises(ConfigError, match="purple"):
        FetchPixelsPolicy(block_colour="purple")


def test_the_instruction_survives_the_first_frame_and_a_new_stream_forgets_it():
    from agentkit.policies.robot.pixels import FetchPixelsPolicy

    policy = FetchPixelsPolicy()
    policy.reset()  # the loop resets, hands over the instruction, then the first frame re-arms the episode
    policy.instruct("put the green block on the target")
    grey = np.full((240, 320, 3), 200, np.uint8)
    policy.step(Frame(grey, 0.0, 0.0, 0, status=ActorStatus(0, False, 0, 0)))
    policy.step(Frame(grey, 0.1, 0.1, 1, status=ActorStatus(1, False, 1, 0)))  # a new episode, same stream
    assert policy.colours()[0] == "green"
    policy.reset()
    assert policy.instruction == "" and policy.colours()[0] == "blue"


@pytest.mark.parametrize("seed", [1, 4, 21])
def test_expert_moves_the_named_block_and_only_it(multi, seed):
    multi.reset(seed=seed)
    start, others = multi.block_pos(multi.named.name), _others(multi)
    r = _episode(multi, "fetch-expert", seed)
    assert r.success, r.errors
    assert r.instruction == multi.instruction and r.extra["blocks"] == len(multi.blocks)
    picked = r.actions[0]["call"]["arguments"]["xyz"]
    assert np.allclose(picked[:2], start[:2], atol=1e-3)
    for name, after in _others(multi).items():
        assert np.linalg.norm(after - others[name]) < 0.01, name


def test_expert_reports_a_block_that_is_not_there(multi):
    from agentkit.policies.robot.expert import FetchExpertPolicy

    multi.reset(seed=1)
    absent = next(c for c in ("red", "green", "blue", "yellow") if c not in {b.colour for b in multi.blocks})
    policy = FetchExpertPolicy()
    policy.instruct(f"put the {absent} block on the target")
    frame = Frame(np.zeros((240, 320, 3), np.uint8), 0.0, 0.0, 0, status=ActorStatus(0, False, 0, 0))
    frame.privileged = multi.state()
    d = policy.step(frame)
    assert not d.tool_calls and f"no {absent} block" in d.errors[0]


@pytest.mark.parametrize("seed", [2, 4, 13])
def test_pixels_moves_the_named_block_without_privileged_state(multi, seed, monkeypatch):
    from agentkit.envs.robot.arm import RobotArm
    from agentkit.policies.robot.pixels import FetchPixelsPolicy

    seen = []
    original_step = FetchPixelsPolicy.step

    def spy(self, frame):
        seen.append((frame.privileged, self.instruction))
        return original_step(self, frame)

    monkeypatch.setattr(FetchPixelsPolicy, "step", spy)
    monkeypatch.setattr(RobotArm, "scene_state", lambda self: pytest.fail("the scene state was read"))
    multi.reset(seed=seed)
    others = _others(multi)
    r = _episode(multi, "fetch-pixels", seed)
    assert r.success, (r.instruction, r.errors)
    assert [c["call"]["name"] for c in r.actions][:3] == ["home", "pick", "place"]
    assert seen and all(state is None and text == r.instruction for state, text in seen)
    for name, after in _others(multi).items():  # the other blocks were not touched
        assert np.linalg.norm(after - others[name]) < 0.01, name


def test_pixels_with_the_wrong_colour_fails_honestly(multi):
    """Told to move a colour that is not in the scene, the heuristic finds no block and stops."""
    multi.reset(seed=1)
    absent = next(c for c in ("red", "green", "blue", "yellow") if c not in {b.colour for b in multi.blocks})
    r = _episode(multi, "fetch-pixels", 1, block_colour=absent)
    assert not r.success and any("no block" in e for e in r.errors)


@pytest.mark.vlm
def test_fetch_vlm_runs_end_to_end_on_the_multi_block_world(tiny_qwen):
    from agentkit.benchmarks.robot import EvalConfig, evaluate

    cfg = EvalConfig(policy="vlm", model=str(tiny_qwen), env="fetch-multi", episodes=1, seed=5000, max_steps=40)
    report = asyncio.run(evaluate(cfg))
    ep, row = report.episodes[0], report.rows[0]
    assert ep["decisions"] > 0 and row["instruction"] and 2 <= row["blocks"] <= 4
    assert all(c["ok"] or c["error"] for c in ep["actions"])
