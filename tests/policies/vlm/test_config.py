"""VLMPolicy's typed config: every option validated before a checkpoint is loaded, every way of passing
the model (path first, ``model=``, a loaded model, a config object or dict) building the same policy."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentkit.errors import ConfigError
from agentkit.policies.vlm import VLMConfig, VLMPolicy
from agentkit.policies.vlm.decide import DEFAULT_PROBE, DecisionConfig
from agentkit.policies.vlm.decode import DecodeConfig
from agentkit.policies.vlm.engine import WindowConfig
from agentkit.policies.vlm.loading import load
from agentkit.policy import make_policy

pytestmark = pytest.mark.vlm


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("window_tokens", 0),
        ("window_s", -1.0),
        ("window_questions", -1),
        ("max_new_tokens", 0),
        ("temperature", -0.1),
        ("top_p", 0.0),
        ("top_p", 1.5),
        ("response_threshold", 1.5),
        ("standby_threshold", -0.5),
        ("decision", "maybe"),
        ("state_tokens", "klingon"),
        ("state_tokens", ["<a>", "<b>"]),
        ("window", 16),  # not an option: unknown fields are errors, never silently ignored
    ],
)
def test_bad_options_fail_before_loading_and_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"policy 'vlm'.*{field}="):
        make_policy("vlm", model="/nonexistent/checkpoint", **{field: value})


def test_a_model_is_required_once() -> None:
    with pytest.raises(ConfigError, match="give model=PATH"):
        VLMPolicy()
    with pytest.raises(ConfigError, match="both positionally"):
        VLMPolicy("/a", model="/b")


def test_every_way_of_giving_the_model_builds_the_same_policy(tiny_checkpoint) -> None:
    path = tiny_checkpoint("qwen2_vl")
    opts = {"max_new_tokens": 12, "window_s": 8, "stop": ["."], "decision": "tokens"}
    loaded = load(str(path))
    policies = [
        make_policy("vlm", model=str(path), **opts),
        VLMPolicy(path, **opts),  # a Path, first, as callers from before the typed config do
        VLMPolicy(str(path), **opts),
        VLMPolicy(loaded, **opts),
        VLMPolicy(loaded=loaded, **opts),
        VLMPolicy({"model": str(path), **opts}),
        VLMPolicy(VLMConfig(model=str(path), **opts)),
        VLMPolicy(VLMConfig(model=str(path)), **opts),  # options over a config
    ]
    for pol in policies:
        assert pol.window == WindowConfig(seconds=8.0)
        assert pol.decode_cfg == DecodeConfig(max_new_tokens=12, stop=(".",))
        assert pol.decision_cfg == DecisionConfig(mode="tokens")
        assert pol.state_ids == policies[0].state_ids
    assert policies[0].config.model == str(path) and policies[3].config.model is None
    with pytest.raises(ConfigError, match="not both"):
        VLMPolicy(model=str(path), loaded=loaded)


def test_defaults_and_derived_settings(tiny_checkpoint) -> None:
    pol = VLMPolicy(tiny_checkpoint("qwen2_vl"), probe="", decision="zero_shot", response_threshold=0.7)
    assert pol.decision_cfg.probe == DEFAULT_PROBE  # empty probe: the default one, as before
    assert pol.decision_cfg.response_threshold == 0.7 and pol.decision_cfg.mode == "zero_shot"
    cfg = VLMConfig()
    assert (cfg.max_new_tokens, cfg.window_questions, cfg.decision, cfg.coord_format) == (48, 8, "auto", "auto")
    assert cfg.window() == WindowConfig() and not cfg.window().enabled


def test_engine_settings_are_frozen_and_validated() -> None:
    with pytest.raises(ValueError, match="top_p"):
        DecodeConfig(top_p=0)
    with pytest.raises(ValueError, match="tokens"):
        WindowConfig(tokens=0)
    with pytest.raises(ValueError, match="mode"):
        DecisionConfig(mode="auto")
    cfg = DecisionConfig()
    with pytest.raises(ValueError, match="frozen"):
        cfg.mode = "zero_shot"  # type: ignore[misc]
    assert cfg.model_copy(update={"response_threshold": 0.0}).response_threshold == 0.0


def test_yaml_style_values_are_accepted(tmp_path: Path) -> None:
    """``--policy-arg`` and YAML give lists and ints where the config holds tuples and floats."""
    cfg = VLMConfig.model_validate(
        {"model": tmp_path, "stop": ["###"], "state_tokens": ["<s>", "<w>", "<r>"], "window_s": 16, "top_p": 1}
    )
    assert cfg.model == str(tmp_path) and cfg.stop == ("###",) and cfg.state_tokens == ("<s>", "<w>", "<r>")
    assert cfg.window().seconds == 16.0
