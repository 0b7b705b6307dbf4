"""The policy contract and the registry that lets configs and the CLI pick a policy by name.

A policy is synchronous on purpose: the loop runs :meth:`Policy.step` in a worker thread so model work
(CPU or GPU) never blocks the event loop, and a policy author never has to think about asyncio.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable
from typing import Any, ClassVar

from agentkit.types import Decision, Frame


class Policy(abc.ABC):
    """Decides Silence / Standby / Response for each frame it is given.

    Subclasses implement :meth:`step`; :meth:`reset` starts a new stream (clearing caches and trackers);
    :meth:`instruct` inserts user text mid-stream (a question at second ``pts``, a new task).
    """

    name: ClassVar[str] = "policy"

    def reset(self) -> None:
        """Forget the current stream. Called before the first frame of every stream or episode."""

    @abc.abstractmethod
    def step(self, frame: Frame) -> Decision:
        """Decide for one frame. Must not raise for bad model output: record it in ``Decision.errors``."""

    def instruct(self, text: str, pts: float | None = None) -> None:
        """Insert user text (a question, a task) into the stream at ``pts``. Default: ignored."""

    def close(self) -> None:
        """Release models, processes and files."""


PolicyFactory = Callable[..., Policy]

_REGISTRY: dict[str, PolicyFactory] = {}
# Built-in policies are imported lazily so `agentkit narrate` never pays for torch or Playwright.
_BUILTIN: dict[str, str] = {
    "detector": "agentkit.policies.detector",
    "vlm": "agentkit.policies.vlm",
    "http": "agentkit.policies.http",
    "miniwob-oracle": "agentkit.policies.miniwob_oracle",
    "ocr": "agentkit.policies.ocr_gui",
    "fetch-expert": "agentkit.policies.fetch_expert",
    "fetch-pixels": "agentkit.policies.fetch_pixels",
    "fetch-vlm": "agentkit.policies.fetch_vlm",
    "vlm-gui": "agentkit.policies.vlm_gui",
}


def register_policy(name: str) -> Callable[[PolicyFactory], PolicyFactory]:
    """Class decorator: make a policy constructible by ``make_policy(name, ...)``."""

    def deco(factory: PolicyFactory) -> PolicyFactory:
        if name in _REGISTRY and _REGISTRY[name] is not factory:
            raise ValueError(f"policy name {name!r} is already registered by {_REGISTRY[name]!r}")
        _REGISTRY[name] = factory
        return factory

    return deco


def available_policies() -> list[str]:
    return sorted(set(_REGISTRY) | set(_BUILTIN))


def make_policy(name: str, **kwargs: Any) -> Policy:
    """Construct a registered policy. Raises ``KeyError`` with the known names for an unknown one."""
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _REGISTRY:
        raise KeyError(f"unknown policy {name!r}; known: {', '.join(available_policies())}")
    return _REGISTRY[name](**kwargs)
