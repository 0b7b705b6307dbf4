"""The VLM wiring: robot prompt, busy gating, robot-only tool calls; a tiny random model end to end."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agentkit.types import ActorStatus, Decision, Frame

pytestmark = [pytest.mark.vlm, pytest.mark.robot]


def test_prompt_lists_every_robot_tool():
    from agentkit.policies.robot.vlm import ROBOT_TOOL_NAMES, robot_system_prompt

    prompt = robot_system_prompt()
    for name in ROBOT_TOOL_NAMES:
        assert f'"name":"{name}"' in prompt
    assert "normalized to 0-1" in prompt


def test_model_text_becomes_robot_tool_calls(tiny_qwen, monkeypatch):
    from agentkit.parsing import parse_response
    from agentkit.policies.robot.vlm import FetchVLMPolicy

    policy = FetchVLMPolicy(tiny_qwen)
    text = (
        '<tool_call>{"name": "pick", "arguments": {"point": [0.42, 0.37]}}</tool_call>'
        '<tool_call>{"name": "click", "arguments": {"point": [0.5, 0.5]}}</tool_call>'
        '<tool_call>{"name": "place", "arguments": {"point": [0.61, 0.66]}}</tool_call>'
    )

    def fake_step(frame):  # what the engine returns after decoding `text`
        parsed = parse_response(text)
        return Decision.response(parsed.text, tool_calls=list(parsed.tool_calls), errors=list(parsed.errors))

    monkeypatch.setattr(policy.vlm, "step", fake_step)
    img = np.zeros((240, 320, 3), np.uint8)
    busy = policy.step(Frame(img, 0, 0, 0, status=ActorStatus(busy=True)))
    assert busy.kind.value == "standby" and not busy.tool_calls
    d = policy.step(Frame(img, 0, 0, 1, status=ActorStatus(busy=False)))
    assert [c.name for c in d.tool_calls] == ["pick", "place"]
    assert d.tool_calls[0].arguments["point"] == {"x": 0.42, "y": 0.37}
    assert any("click" in e for e in d.errors)


def test_tiny_model_drives_the_real_tools_without_crashing(tiny_qwen):
    from agentkit.benchmarks.robot import EvalConfig, evaluate

    report = asyncio.run(evaluate(EvalConfig(policy="vlm", model=str(tiny_qwen), episodes=1, seed=0, max_steps=40)))
    ep = report.episodes[0]
    assert ep["decisions"] > 0  # every frame got a decision; whatever the random model said was validated
    assert all(c["ok"] or c["error"] for c in ep["actions"])


def test_config_defaults_and_task(tiny_qwen):
    from agentkit.errors import ConfigError
    from agentkit.policies.robot.vlm import FetchVLMConfig, robot_system_prompt
    from agentkit.policy import make_policy

    policy = make_policy("fetch-vlm", model=str(tiny_qwen))
    assert isinstance(policy.config, FetchVLMConfig)
    assert policy.vlm.instruction == "put the block on the target" and policy.vlm.prompt == robot_system_prompt()
    assert policy.vlm.decode_cfg.max_new_tokens == 96  # a pick and a place call with small tokenizers
    policy = make_policy("fetch-vlm", model=str(tiny_qwen), task="push the block left", response_threshold=0.5)
    assert policy.vlm.instruction == "push the block left" and policy.vlm.decision_cfg.response_threshold == 0.5
    with pytest.raises(ConfigError, match="max_new_tokens=0"):
        make_policy("fetch-vlm", model=str(tiny_qwen), max_new_tokens=0)
