"""VLM wiring for GUI tasks: UI-TARS / tool-call text -> GUI tool calls -> real MiniWoB++ page."""

from __future__ import annotations

import asyncio

import pytest

from agentkit.types import Decision, Frame

pytestmark = [pytest.mark.vlm, pytest.mark.browser]


def test_prompt_lists_every_gui_tool() -> None:
    from agentkit.policies.gui.vlm import GUI_TOOL_NAMES, gui_system_prompt

    prompt = gui_system_prompt()
    for name in GUI_TOOL_NAMES:
        assert f'"name":"{name}"' in prompt


def test_ui_tars_action_clicks_the_button(tiny_qwen, monkeypatch) -> None:
    """A UI-TARS answer in resized-image pixels, parsed by the engine's parser, lands on the real button."""
    from agentkit.benchmarks.miniwob import run_task_episode
    from agentkit.envs.gui.miniwob import AsyncMiniWoBEnv
    from agentkit.parsing import parse_response, smart_resize
    from agentkit.policies.gui.vlm import GuiVLMPolicy

    policy = GuiVLMPolicy(tiny_qwen)

    async def run():
        async with AsyncMiniWoBEnv("click-test") as env:
            await env.reset(seed=0)
            button = next(d for d in await env.dom() if d["tag"] == "button")
            cx, cy = (button["x"] + button["w"] / 2) / 160, (button["y"] + button["h"] / 2) / 210

            def fake_step(frame: Frame) -> Decision:  # what the engine returns after decoding this text
                h, w = smart_resize(frame.height, frame.width)
                text = f"Action: click(point='<point>{round(cx * w)} {round(cy * h)}</point>')"
                parsed = parse_response(text, "ui_tars", resized_size=(w, h))
                return Decision.response(parsed.text, tool_calls=list(parsed.tool_calls), errors=list(parsed.errors))

            monkeypatch.setattr(policy.vlm, "step", fake_step)
            return await run_task_episode(env, policy, seed=0)

    res = asyncio.run(run())
    assert res.success, res.errors


def test_tiny_model_runs_an_episode_without_crashing(tiny_qwen) -> None:
    from agentkit.benchmarks.miniwob import run_task_episode
    from agentkit.envs.gui.miniwob import AsyncMiniWoBEnv
    from agentkit.policies.gui.vlm import GuiVLMPolicy

    policy = GuiVLMPolicy(tiny_qwen, max_new_tokens=8)

    async def run():
        async with AsyncMiniWoBEnv("click-test", max_steps=3, scale=1.0) as env:
            return await run_task_episode(env, policy, seed=0)

    res = asyncio.run(run())
    assert 1 <= res.steps <= 3  # whatever the random model said was validated and recorded, never raised


def test_config_defaults_and_task(tiny_qwen) -> None:
    """The GUI config: the engine's options with GUI defaults; the task is the engine's instruction."""
    from agentkit.errors import ConfigError
    from agentkit.policies.gui.vlm import GuiVLMConfig, GuiVLMPolicy, gui_system_prompt
    from agentkit.policy import make_policy

    policy = make_policy("vlm-gui", model=str(tiny_qwen))
    assert isinstance(policy.config, GuiVLMConfig)
    assert policy.vlm.decode_cfg.max_new_tokens == 64 and policy.vlm.instruction == "Wait for the task."
    assert policy.vlm.prompt == gui_system_prompt()
    policy = GuiVLMPolicy(tiny_qwen, task="Click OK.", max_new_tokens=8, window_s=4)
    assert policy.vlm.instruction == "Click OK." and policy.vlm.decode_cfg.max_new_tokens == 8
    assert policy.vlm.window.seconds == 4
    with pytest.raises(ConfigError, match="instruction="):  # the task is the instruction; the prompt is fixed
        GuiVLMPolicy(tiny_qwen, instruction="Click OK.")
