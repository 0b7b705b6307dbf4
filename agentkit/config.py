"""Run configuration: pydantic models loaded from YAML, with errors that name the field and the value.

CLI options override YAML values, so a config file holds a deployment's defaults and the command line
holds what changes per run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class OutputsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    srt: bool = True
    vtt: bool = True
    annotated: bool = True
    messages: bool = True
    record_frames: bool = False  # frames.mp4 of what the policy saw (for replay and training)
    annotated_max_width: int = Field(960, ge=64)
    subtitle_hold_s: float = Field(4.0, gt=0)


class NarratorConfig(BaseModel):
    """Everything ``agentkit narrate`` needs. See ``configs/narrator.yaml`` for a commented example."""

    model_config = ConfigDict(extra="forbid")
    source: str = "test-pattern"
    out: Path = Path("runs/narrate")
    realtime: bool = False
    policy: str = "detector"
    policy_args: dict[str, Any] = Field(default_factory=dict)
    model: str | None = None
    gate: bool = False  # put the cheap motion gate in front of the policy
    tts: bool = False
    voice: str = "en"
    max_frames: int | None = Field(None, ge=1)
    duration_s: float | None = Field(None, gt=0)
    max_width: int | None = Field(None, ge=32)  # downscale frames at the source
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)


def _explain(e: ValidationError, where: str) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(root)"
        value = err.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        parts.append(f"{loc}={shown[:60]}: {err['msg']}")
    return f"invalid config {where}: " + "; ".join(parts)


def validate(model: type[M], data: dict[str, Any], where: str = "") -> M:
    """Validate ``data`` against ``model``; a failure raises :class:`ConfigError` on one line."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_explain(e, where)) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping at the top level, got {type(data).__name__}")
    return data


def load_config(model: type[M], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> M:
    """YAML file (optional) + overrides (``None`` values are ignored) -> validated ``model``."""
    data = load_yaml(path) if path is not None else {}
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    return validate(model, data, where=str(path) if path else "(command line)")
