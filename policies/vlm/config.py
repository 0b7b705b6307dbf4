"""The VLM policies' typed configs: every option of the streaming engine, validated in one place.

Why: ``make_policy("vlm", model=PATH, max_new_tokens=32)``, a YAML ``policy_args`` block and ``--policy-arg
KEY=VALUE`` all reach the engine as the same flat options; validating them here (before a checkpoint is
loaded) means a bad value fails at once with a :class:`~agentkit.errors.ConfigError` naming the field and
the value. The constraints are those of the engine's own settings (:class:`~.engine.WindowConfig`,
:class:`~.decode.DecodeConfig`, :class:`~.decide.DecisionConfig`), which the config builds.

:class:`VLMOptions` holds what every VLM policy shares (the checkpoint, where it runs, decisions, decoding,
eviction); :class:`VLMConfig` adds the prompt and instruction of the plain streaming policy; the tool
policies' config (:class:`~.tool_policy.ToolVLMConfig`) adds a task instead.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import field_validator

from agentkit.errors import ConfigError
from agentkit.policies.vlm.decide import STATE_TOKEN_SETS, DecisionConfig, Probability
from agentkit.policies.vlm.decode import DecodeConfig, MaxNewTokens, Temperature, TopP
from agentkit.policies.vlm.engine import PinnedQuestions, WindowConfig, WindowSeconds, WindowTokens
from agentkit.policies.vlm.loading import Loaded
from agentkit.policy import PolicyConfig

DEFAULT_SYSTEM = (
    "You are a streaming video assistant. After every frame answer with one state: silence when nothing "
    "relevant is happening, standby when something relevant has started, response followed by your answer."
)
DEFAULT_INSTRUCTION = "Narrate what happens in the video."


class VLMOptions(PolicyConfig):
    """The streaming engine's settings, shared by every VLM policy.

    Attributes:
        model: checkpoint folder or hub id (a supported architecture, see
            :mod:`~agentkit.policies.vlm.architectures`); not needed when a loaded model is passed.
        device: ``cpu`` / ``cuda`` / ``cuda:1``...; default CUDA when available.
        dtype: ``float32`` / ``bfloat16`` / ``float16``; default bf16 on CUDA, fp32 on CPU.
        decision: ``tokens`` (state tokens), ``zero_shot`` (probe), or ``auto`` (tokens when the tokenizer
            has a known state-token set).
        state_tokens: ``"agentkit"``, ``"streamo"`` or three token strings (silence, standby, response);
            default: the first known set the tokenizer has.
        response_threshold: choose Response when its probability is at least this (``None``: argmax).
        standby_threshold: otherwise Standby when its probability is at least this (``None``: argmax).
        probe: the zero-shot question (``None``: :data:`~agentkit.policies.vlm.decide.DEFAULT_PROBE`).
        max_new_tokens: hard cap on a Response's tokens.
        temperature: 0 for greedy, else the sampling temperature.
        top_p: nucleus sampling mass (sampling only).
        seed: seed of the sampling generator (reset per stream).
        stop: strings that end a Response (the text is cut before them).
        window_tokens: eviction: most non-sink tokens kept (``None``: no token limit).
        window_s: eviction: drop segments older than this many seconds of stream time (``None``: no limit).
        window_questions: most recent questions kept pinned against eviction.
        max_pixels: pixels per frame, for architectures whose token count follows the frame size (Qwen).
        coord_format: how coordinates in answers are read (``auto``, ``qwen2_vl``, ``qwen2_5_vl``...).
        record: keep a trace for :func:`~agentkit.policies.vlm.reference.compare_with_full_forward`
            (memory grows with the stream: checks and tests only).
    """

    model: str | None = None
    device: str | None = None
    dtype: str | None = None
    decision: Literal["auto", "tokens", "zero_shot"] = "auto"
    state_tokens: str | tuple[str, str, str] | None = None
    response_threshold: Probability | None = None
    standby_threshold: Probability | None = None
    probe: str | None = None
    max_new_tokens: MaxNewTokens = 48
    temperature: Temperature = 0.0
    top_p: TopP = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    window_tokens: WindowTokens | None = None
    window_s: WindowSeconds | None = None
    window_questions: PinnedQuestions = 8
    max_pixels: int | None = None
    coord_format: str = "auto"
    record: bool = False

    @field_validator("model", mode="before")
    @classmethod
    def _path_to_str(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("state_tokens", mode="before")
    @classmethod
    def _known_set_or_three(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in STATE_TOKEN_SETS:
            raise ValueError(f"must be one of {sorted(STATE_TOKEN_SETS)} or three tokens")
        if isinstance(value, (list, tuple)) and len(value) != 3:
            raise ValueError("needs three tokens (silence, standby, response)")
        return value

    def window(self) -> WindowConfig:
        """What eviction keeps besides the sink."""
        return WindowConfig(tokens=self.window_tokens, seconds=self.window_s, questions=self.window_questions)

    def decoding(self) -> DecodeConfig:
        """How a Response is decoded."""
        return DecodeConfig(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=self.stop,
        )

    def decision_config(self, mode: Literal["tokens", "zero_shot"]) -> DecisionConfig:
        """How a state is chosen, once ``decision="auto"`` is resolved to ``mode``."""
        probe = {"probe": self.probe} if self.probe else {}  # empty or None: the default probe
        return DecisionConfig(
            mode=mode, response_threshold=self.response_threshold, standby_threshold=self.standby_threshold, **probe
        )


class VLMConfig(VLMOptions):
    """Settings of :class:`~agentkit.policies.vlm.policy.VLMPolicy`: the engine's options plus its prompt.

    Attributes:
        prompt: the system prompt (kept in the cache's sink forever).
        instruction: the task, the first user turn (also in the sink).
    """

    prompt: str = DEFAULT_SYSTEM
    instruction: str = DEFAULT_INSTRUCTION


def split_model_argument(
    first: Any, options: dict[str, Any], loaded: Loaded | None
) -> tuple[Any, dict[str, Any], Loaded | None]:
    """``(config, options, loaded)`` from a VLM policy's first positional argument.

    Callers from before the typed config pass the checkpoint first (``VLMPolicy(path, ...)``,
    ``VLMPolicy(loaded_model, ...)``); a path joins ``options`` as ``model``, a loaded model becomes
    ``loaded``. A config (model or dict) or ``None`` passes through.

    Raises:
        ConfigError: the model is given twice.
    """
    if isinstance(first, Loaded):
        if loaded is not None:
            raise ConfigError("a loaded model is given both positionally and as loaded=")
        return None, options, first
    if isinstance(first, (str, os.PathLike)):
        if "model" in options:
            raise ConfigError(f"the model is given both positionally ({first!s}) and as model={options['model']!r}")
        return None, {**options, "model": os.fspath(first)}, loaded
    return first, options, loaded


__all__ = ["DEFAULT_INSTRUCTION", "DEFAULT_SYSTEM", "VLMConfig", "VLMOptions", "split_model_argument"]
