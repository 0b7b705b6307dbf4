"""The shipped checkpoints: small, complete, loaded by the engine, exact when streamed, useful on real pages;
``--policy vlm`` without ``--model`` uses them; the VLM policies never see privileged state."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentkit.policies.vlm.checkpoints import SHIPPED, shipped_checkpoint

pytestmark = pytest.mark.vlm
FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_checkpoint_is_complete_small_and_documented(name: str) -> None:
    path = shipped_checkpoint(name)
    for f in (*FILES, "README.md", "agentkit_vlm.json"):
        assert (path / f).exists(), f
    size = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    assert size <= 20 * 1024 * 1024, f"{name}: {size / 1e6:.1f} MB"
    card = (path / "README.md").read_text()
    for heading in ("## Data", "## Training", "## Results", "## Licence"):
        assert heading in card, heading
    meta = json.loads((path / "agentkit_vlm.json").read_text())
    assert meta["trained"] and not meta["random_weights"]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_checkpoint_streams_exactly(name: str) -> None:
    from agentkit.policies.vlm.verify import stream_and_compare

    for window in (None, 300):
        res = stream_and_compare(str(shipped_checkpoint(name)), frames=6, window_tokens=window)
        assert res.report.ok(1e-4), res.report


def test_missing_shipped_checkpoint_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import agentkit.policies.vlm.checkpoints as ck
    from agentkit.errors import ConfigError

    monkeypatch.setattr(ck, "HERE", tmp_path)
    for name in ("gui", "fetch"):
        with pytest.raises(ConfigError, match="missing from this install"):
            ck.shipped_checkpoint(name)
    with pytest.raises(ConfigError, match="no shipped checkpoint"):
        ck.shipped_checkpoint("narration")


@pytest.mark.browser
def test_gui_checkpoint_clicks_the_button_on_real_pages() -> None:
    """Useful on real frames, not only on its training set: click-test pages it never saw (seeds far from the
    training ones), real Chromium, pixels only. A random clicker hits the button on ~3% of clicks."""
    from agentkit.benchmarks.miniwob import evaluate
    from agentkit.policies.gui.vlm import GuiVLMPolicy

    results = asyncio.run(evaluate(GuiVLMPolicy(), ["click-test"], episodes=5, seed=900_000))
    assert sum(r.success for r in results) >= 3, results


@pytest.mark.browser
def test_gui_checkpoint_types_the_name_the_instruction_gives() -> None:
    """enter-text on unseen pages: the name to type must come from this episode's instruction; a model that
    memorized names instead of copying them types a wrong one (the run before this checkpoint scored 0 of
    20 on enter-text)."""
    from agentkit.benchmarks.miniwob import evaluate
    from agentkit.policies.gui.vlm import GuiVLMPolicy

    results = asyncio.run(evaluate(GuiVLMPolicy(), ["enter-text"], episodes=5, seed=900_000))
    typed = [a["call"]["arguments"]["text"] for r in results for a in r.actions if a["call"]["name"] == "type"]
    wanted = [r.instruction.split('"')[1] for r in results]
    assert sum(t in wanted for t in typed) >= 3, (typed, wanted)
    assert sum(r.success for r in results) >= 3, results


@pytest.mark.robot
def test_fetch_checkpoint_picks_the_block_on_a_real_frame() -> None:
    """A quick sanity check (not the evaluation): home first, then a pick near the block, from pixels only."""
    from agentkit.envs.robot.arm import RobotArm
    from agentkit.envs.robot.episode import ArmEpisodeEnv
    from agentkit.envs.robot.worlds import make_sim
    from agentkit.policies.robot.vlm import FetchVLMPolicy
    from agentkit.tools.robot import robot_toolbox

    sim = make_sim("fetch", 320, 240)
    try:
        robot = RobotArm(sim)
        env = ArmEpisodeEnv(robot, robot_toolbox(robot))
        policy = FetchVLMPolicy()  # no model: the shipped fetch checkpoint

        async def two_steps():
            frame, _ = await env.reset(seed=987_654)
            first = policy.step(frame)
            frame, *_ = await env.step(first.tool_calls)
            return first, policy.step(frame)

        first, second = asyncio.run(two_steps())
        assert [c.name for c in first.tool_calls] == ["home"]
        assert [c.name for c in second.tool_calls] == ["pick", "place"], second
        block, _ = sim.camera.project(sim.object_pos)
        p = second.tool_calls[0].arguments["point"]
        assert abs(p["x"] - block.x) < 0.03 and abs(p["y"] - block.y) < 0.03, (p, block)
    finally:
        sim.close()


@pytest.mark.robot
def test_fetch_vlm_never_receives_privileged_state(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentkit.benchmarks.robot import EvalConfig, evaluate
    from agentkit.policies.robot.vlm import FetchVLMPolicy

    seen: list[object] = []
    real_step = FetchVLMPolicy.step

    def spy(self: FetchVLMPolicy, frame):  # type: ignore[no-untyped-def]
        seen.append(frame.privileged)
        return real_step(self, frame)

    monkeypatch.setattr(FetchVLMPolicy, "step", spy)
    assert FetchVLMPolicy.privileged is False
    report = asyncio.run(evaluate(EvalConfig(policy="vlm", model=str(shipped_checkpoint("fetch")), episodes=2, seed=5)))
    assert seen and all(p is None for p in seen)
    assert report.overall["episodes"] == 2


def test_cli_policy_vlm_without_model_uses_the_shipped_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import agentkit.apps.cli.narrate  # noqa: F401
    import agentkit.apps.cli.robot as robot_cli
    from agentkit.apps.cli.groups import app
    from agentkit.policies.gui.vlm import GuiVLMPolicy

    assert robot_cli.vlm_model("vlm", None) == str(shipped_checkpoint("fetch"))
    assert robot_cli.vlm_model("vlm", "/x") == "/x" and robot_cli.vlm_model("pixels", None) is None
    assert robot_cli.vlm_model("vlm", None, "panda") is None  # trained on Fetch only
    assert GuiVLMPolicy().vlm.loaded.source == str(shipped_checkpoint("gui"))
    r = CliRunner().invoke(app, ["narrate", "test-pattern", "--policy", "vlm", "--max-frames", "2"])
    assert r.exit_code == 1 and "--model" in r.output  # no narration checkpoint: one clear error
    r = CliRunner().invoke(app, ["eval", "fetch", "--policy", "vlm", "--episodes", "1", "--seed", "7000"])
    assert r.exit_code == 0 and '"episodes": 1' in r.output, r.output
