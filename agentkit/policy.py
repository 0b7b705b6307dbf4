"""The policy contract and the registry that lets configs and the CLI pick a policy by name.

A policy is synchronous on purpose: the loop runs :meth:`Policy.step` in a worker thread so model work
(CPU or GPU) never blocks the event loop, and a policy author never has to think about asyncio.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

from agentkit.registry import Registry
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


POLICIES: Registry[Callable[..., Policy]] = Registry("policies", item="policy")
"""Policies by name: the built-ins are entry points (group ``agentkit.policies``), loaded on first use."""


def register_policy(name: str) -> Callable[[Callable[..., Policy]], Callable[..., Policy]]:
    """Decorator: make a policy class (or factory) constructible by ``make_policy(name, ...)``."""
    return POLICIES.register(name)


def available_policies() -> list[str]:
    return POLICIES.names()


def make_policy(name: str, **kwargs: Any) -> Policy:
    """Construct a registered policy. Raises ``KeyError`` with the known names for an unknown one."""
    return POLICIES.get(name)(**kwargs)
