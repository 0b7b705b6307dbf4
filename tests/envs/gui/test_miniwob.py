"""MiniWoB++ on real Chromium: seeds, oracle episodes, one OCR episode, and bad steps recorded as errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agentkit.benchmarks.miniwob import evaluate, run_task_episode, summarize
from agentkit.envs.gui.miniwob import AsyncMiniWoBEnv, task_names
from agentkit.policies.gui.oracle import MiniWoBOracle
from agentkit.policy import Policy, make_policy
from agentkit.types import Decision, Frame, ToolCall

pytestmark = pytest.mark.browser


def test_tasks_are_shipped() -> None:
    names = task_names()
    assert len(names) >= 100
    assert {"click-button", "enter-text", "click-tab"} <= set(names)


def test_seeds_are_reproducible() -> None:
    async def run() -> list[str]:
        async with AsyncMiniWoBEnv("click-checkboxes") as env:
            out = []
            for seed in (7, 8, 7):
                obs, info = await env.reset(seed=seed)
                assert obs.meta["utterance"] == info["instruction"]
                out.append(info["instruction"])
            return out

    a, b, c = asyncio.run(run())
    assert a == c
    assert a != b


def test_oracle_episodes_and_recording(tmp_path: Path) -> None:
    oracle = make_policy("miniwob-oracle")
    assert isinstance(oracle, MiniWoBOracle)
    results = asyncio.run(
        evaluate(oracle, ["click-button", "enter-text", "click-checkboxes"], 2, seed=0, record_dir=tmp_path)
    )
    report = summarize(results)
    assert report.overall["episodes"] == 6
    assert report.overall["success_rate"] == 1.0, [r.errors for r in results]
    assert all(r.reward > 0 for r in results)
    ep = tmp_path / "enter-text-0"
    assert {"frames.mp4", "decisions.jsonl", "actions.jsonl", "episode.json"} <= {p.name for p in ep.iterdir()}
    actions = [json.loads(line) for line in (ep / "actions.jsonl").read_text().splitlines()]
    assert [a["call"]["name"] for a in actions][:2] == ["click", "type"]
    assert all(a["ok"] for a in actions)
    assert json.loads((ep / "episode.json").read_text())["success"] is True


class _Scripted(Policy):
    """Unit-test policy: replays fixed decisions (bad ones included)."""

    def __init__(self, decisions: list[Decision]) -> None:
        self.decisions = decisions

    def step(self, frame: Frame) -> Decision:
        return self.decisions.pop(0) if self.decisions else Decision.silence()


def test_bad_actions_are_recorded_and_the_episode_goes_on() -> None:
    bad = Decision.response(
        tool_calls=[
            ToolCall("click", {"point": {"x": 1.4, "y": 0.5}}),  # outside the viewport
            ToolCall("teleport", {}),  # unknown tool
            ToolCall("type", {"txt": 3}),  # malformed arguments
        ]
    )

    async def run():
        async with AsyncMiniWoBEnv("click-test") as env:
            _obs, _ = await env.reset(seed=0)
            _, _, _, _, info = await env.step(bad.tool_calls)
            dom = await env.dom()
            button = next(d for d in dom if d["tag"] == "button")
            point = {"x": (button["x"] + button["w"] / 2) / 160, "y": (button["y"] + button["h"] / 2) / 210}
            _, reward, terminated, _, _ = await env.step([ToolCall("click", {"point": point})])
            # a whole episode through the runner with a policy emitting the same bad calls first
            res = await run_task_episode(
                env, _Scripted([bad, Decision.response(tool_calls=[ToolCall("click", {"point": point})])]), seed=0
            )
            return info, reward, terminated, res

    info, reward, terminated, res = asyncio.run(run())
    assert len(info.errors) == 3
    assert "Point.x must be a normalized coordinate" in info.errors[0]
    assert "unknown tool 'teleport'" in info.errors[1]
    assert "type: invalid arguments" in info.errors[2]
    assert all(not r.ok for r in info.results)
    assert terminated and reward > 0  # the episode went on after the bad step
    assert res.success and len(res.errors) == 3 and res.steps == 2


def test_hung_page_is_an_error_and_the_next_episode_runs() -> None:
    async def run():
        async with AsyncMiniWoBEnv("click-test") as env:
            await env.reset(seed=0)
            await env.session.page.evaluate("() => setTimeout(() => { while (true) {} }, 50)")
            await asyncio.sleep(0.2)
            obs, _, terminated, truncated, info = await env.step([ToolCall("wait", {"seconds": 0.1})])
            res = await run_task_episode(env, make_policy("miniwob-oracle"), seed=1)
            return obs, terminated, truncated, info, res, env.session.restarts

    obs, terminated, truncated, info, res, restarts = asyncio.run(run())
    assert obs is None and truncated and not terminated
    assert any("page unresponsive" in e for e in info.errors)
    assert restarts == 1
    assert res.success


def test_blocked_url_in_a_task_page_is_recorded(tmp_path: Path) -> None:
    async def run():
        async with AsyncMiniWoBEnv("click-test") as env:
            await env.reset(seed=0)
            await env.session.page.evaluate(
                "() => { const i = new Image(); i.src = 'https://tracker.example.com/t.gif'; }"
            )
            await asyncio.sleep(0.5)
            _, _, _, _, info = await env.step([])
            return info

    info = asyncio.run(run())
    assert info.blocked == ["https://tracker.example.com/t.gif"]
    assert any("blocked request" in e for e in info.errors)


def test_ocr_policy_click_button_from_pixels_only() -> None:
    policy = make_policy("ocr")
    assert not policy.privileged

    async def run():
        async with AsyncMiniWoBEnv("click-button") as env:

            async def no_dom() -> None:
                raise AssertionError("the OCR policy must never see the DOM")

            env.dom = no_dom  # type: ignore[method-assign]
            return await run_task_episode(env, policy, seed=2)

    res = asyncio.run(run())
    assert res.success, res.errors
    assert res.steps == 1
