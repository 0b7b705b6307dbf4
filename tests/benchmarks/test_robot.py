"""Whole episodes through policy -> tool calls -> ToolBox -> primitives -> MuJoCo, and the live loop."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

pytestmark = pytest.mark.robot


def _episode(robot, name, seed):
    from agentkit.envs.robot.episode import ArmEpisodeEnv
    from agentkit.episode import run_episode
    from agentkit.policy import make_policy
    from agentkit.tools.robot import robot_toolbox

    env = ArmEpisodeEnv(robot, robot_toolbox(robot))
    return asyncio.run(run_episode(env, make_policy(name), seed=seed))


def test_expert_episode_succeeds(robot):
    r = _episode(robot, "fetch-expert", seed=7)
    assert r.success, r.errors
    assert [c["call"]["name"] for c in r.actions] == ["pick", "place"]
    assert all("xyz" in c["call"]["arguments"] for c in r.actions)


def test_pixels_episode_succeeds_without_privileged_state(robot, monkeypatch):
    from agentkit.envs.robot.arm import RobotArm
    from agentkit.policies.robot.pixels import FetchPixelsPolicy

    seen = []
    original_step = FetchPixelsPolicy.step

    def spy(self, frame):
        seen.append(frame.privileged)
        return original_step(self, frame)

    monkeypatch.setattr(FetchPixelsPolicy, "step", spy)
    monkeypatch.setattr(RobotArm, "scene_state", lambda self: pytest.fail("the scene state was read"))
    r = _episode(robot, "fetch-pixels", seed=11)
    assert r.success, r.errors
    names = [c["call"]["name"] for c in r.actions]
    assert names[:3] == ["home", "pick", "place"]
    assert all("point" in c["call"]["arguments"] for c in r.actions if c["call"]["name"] != "home")
    assert seen and all(s is None for s in seen)  # the pixels policy never got the scene state


def test_detector_finds_block_and_target_where_the_camera_projects_them(robot):
    from agentkit.policies.robot.pixels import detect

    sim = robot.sim
    for seed in (3, 4, 8):
        robot.reset(seed=seed)
        robot.run_sync(robot.home())
        rgb, _ = sim.render(depth=False)
        det = detect(rgb)
        block, _ = sim.camera.project(sim.object_pos + np.array([0, 0, 0.025]))
        target, _ = sim.camera.project(sim.target_pos)
        assert det["block"] is not None and det["target"] is not None
        assert np.hypot(det["block"].point.x - block.x, det["block"].point.y - block.y) < 0.03
        assert np.hypot(det["target"].point.x - target.x, det["target"].point.y - target.y) < 0.02


def test_pixels_policy_reports_missing_objects():
    from agentkit.policies.robot.pixels import FetchPixelsPolicy
    from agentkit.types import ActorStatus, Frame

    policy = FetchPixelsPolicy()
    grey = np.full((240, 320, 3), 200, np.uint8)
    first = policy.step(Frame(grey, 0.0, 0.0, 0, status=ActorStatus(0, False, 0, 0)))
    assert [c.name for c in first.tool_calls] == ["home"]
    second = policy.step(Frame(grey, 0.1, 0.1, 1, status=ActorStatus(0, False, 1, 0)))
    assert not second.tool_calls and "no block or target" in second.errors[0]


def test_live_app_runs_the_loop_and_writes_an_annotated_video(tmp_path):
    pytest.importorskip("av")
    from agentkit.apps.robot import LiveConfig, run_live

    cfg = LiveConfig(
        policy="pixels",
        seed=2,
        fps=10,
        duration_s=40,
        video=tmp_path / "live.mp4",
        record=tmp_path / "rec",
        realtime=2.0,
    )
    result = asyncio.run(run_live(cfg))
    assert result["success"], result
    assert (tmp_path / "live.mp4").stat().st_size > 10_000
    actions = [json.loads(line) for line in (tmp_path / "rec" / "actions.jsonl").read_text().splitlines()]
    assert [a["call"]["name"] for a in actions][:3] == ["home", "pick", "place"] and all(a["ok"] for a in actions)


def test_eval_cli_writes_the_report(tmp_path):
    from typer.testing import CliRunner

    import agentkit.apps.cli.robot  # noqa: F401  (registers the commands)
    from agentkit.apps.cli.groups import app

    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["eval", "fetch", "--policy", "expert", "--episodes", "2", "--json", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert set(report["overall"]) >= {"success_rate", "episodes", "mean_steps", "mean_seconds"}
    assert report["overall"]["episodes"] == 2 and len(report["episodes"]) == 2
    bad = CliRunner().invoke(app, ["eval", "fetch", "--episodes", "0"])
    assert bad.exit_code == 1 and "episodes=0" in bad.output


def test_new_instruction_interrupts_a_running_pick_and_the_task_still_succeeds(robot):
    from agentkit.envs.robot.source import RobotCameraSource
    from agentkit.loop import LoopConfig, StreamLoop
    from agentkit.policy import make_policy
    from agentkit.sinks import Sink
    from agentkit.tools.robot import robot_toolbox

    robot.realtime = 2.0  # a pick lasts ~0.6 s of wall time
    robot.reset(seed=5)
    policy = make_policy("fetch-pixels")
    loop = StreamLoop(
        RobotCameraSource(robot, fps=20), policy, toolbox=robot_toolbox(robot), config=LoopConfig(duration_s=40)
    )
    events = {"interrupted_at": None, "results": []}

    class Watch(Sink):
        def on_decision(self, decision, frame):
            # home done (1 action), the pick running: interrupt with a new instruction
            if events["interrupted_at"] is None and frame.status.busy and frame.status.actions == 1:
                events["interrupted_at"] = robot.sim.steps
                loop.instruct("put the block on the target")
            if policy.done and not frame.status.busy and events["interrupted_at"] is not None:
                loop.stop()

        def on_action(self, result):
            events["results"].append((result.call.name, result.ok))

    loop.sinks.append(Watch())
    asyncio.run(loop.run())
    names = [n for n, _ in events["results"]]
    assert events["interrupted_at"] is not None
    assert names[0] == "home" and "pick" in names and names.count("home") == 2, names
    assert "open_gripper" in names  # released whatever it held before looking again
    assert names.index("open_gripper") < len(names) - 2  # then the re-plan: home, pick, place
    assert names == ["home", "open_gripper", "home", "pick", "place"], names
    assert robot.sim.is_success(), events


def test_perturb_place_moves_the_point_within_the_radius_and_inside_the_frame():
    from agentkit.envs.robot.episode import perturb_place
    from agentkit.types import Point, ToolCall

    rng = np.random.default_rng(0)
    for _ in range(50):
        moved = perturb_place(ToolCall("place", {"point": {"x": 0.5, "y": 0.5}}), 0.2, rng)
        p = moved.arguments["point"]
        assert isinstance(p, Point) and 0.1 - 1e-3 <= np.hypot(p.x - 0.5, p.y - 0.5) <= 0.2 + 1e-3
    corner = perturb_place(ToolCall("place", {"point": Point(0.01, 0.99)}), 0.4, rng).arguments["point"]
    assert 0.02 <= corner.x <= 0.98 and 0.02 <= corner.y <= 0.98
    xyz = ToolCall("place", {"xyz": [1.3, 0.7, 0.42]})
    assert perturb_place(xyz, 0.2, rng) is xyz  # no image point: nothing to move


def test_place_noise_moves_only_the_first_executed_place_and_the_demonstrator_recovers(robot):
    """DART recording: the decision (the label) keeps the policy's point; the executed one is moved; the
    pixels policy sees the miss and plans again, and its second place runs as decided."""
    from agentkit.envs.robot.episode import ArmEpisodeEnv
    from agentkit.episode import run_episode
    from agentkit.policy import make_policy
    from agentkit.sinks import Sink
    from agentkit.tools.robot import robot_toolbox

    env = ArmEpisodeEnv(robot, robot_toolbox(robot), place_noise=0.25)
    seen: list[dict] = []

    class Decisions(Sink):
        def on_decision(self, decision, frame):
            seen.append(decision.to_dict())

    r = asyncio.run(run_episode(env, make_policy("fetch-pixels"), seed=11, sinks=[Decisions()]))
    decided = [c["arguments"]["point"] for d in seen for c in d.get("tool_calls", []) if c["name"] == "place"]
    executed = [a["call"]["arguments"]["point"] for a in r.actions if a["call"]["name"] == "place"]
    assert len(decided) == 2 and len(executed) == 2, (decided, executed)  # a miss, then a second plan
    assert np.hypot(executed[0]["x"] - decided[0]["x"], executed[0]["y"] - decided[0]["y"]) >= 0.125 - 1e-3
    assert executed[1] == pytest.approx(decided[1])
    assert r.success, r.errors


def test_place_noise_is_refused_with_a_robot_node():
    from agentkit.benchmarks.robot import EvalConfig
    from agentkit.config import validate
    from agentkit.errors import ConfigError

    with pytest.raises(ConfigError, match="place_noise"):
        validate(EvalConfig, {"place_noise": 0.2, "node": "mqtt://127.0.0.1:1883/arm"}, "(options)")
