"""The policy contract and the registry that lets configs and the CLI pick a policy by name.

A policy is synchronous on purpose: the loop runs :meth:`Policy.step` in a worker thread so model work
(CPU or GPU) never blocks the event loop, and a policy author never has to think about asyncio.

Every policy has one typed config (``Config``, a pydantic model whose errors name the field and the
value) and builds from it or from the same fields as keywords, so ``make_policy(name, **options)``, YAML
and ``--policy-arg`` all go through one validation. What a runner needs to know about a policy is typed
here too, not guessed from attributes: :attr:`Policy.privileged` and :attr:`Policy.done`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from agentkit.config import validate
from agentkit.errors import ConfigError
from agentkit.registry import Registry
from agentkit.types import Decision, Frame

C = TypeVar("C", bound="PolicyConfig")


class PolicyConfig(BaseModel):
    """Base of every policy's config: unknown fields are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class Policy(abc.ABC):
    """Decides Silence / Standby / Response for each frame it is given.

    Subclasses implement :meth:`step`; :meth:`reset` starts a new stream (clearing caches and trackers);
    :meth:`instruct` inserts user text mid-stream (a question at second ``pts``, a new task).

    Attributes:
        name: the registry name.
        Config: the policy's settings; :meth:`configure` validates keywords against it.
        privileged: the policy reads ``Frame.privileged`` (a page's DOM, a simulator's state), which
            runners fill only for policies that declare it; pixels-only policies leave it False.
    """

    name: ClassVar[str] = "policy"
    Config: ClassVar[type[PolicyConfig]] = PolicyConfig
    privileged: ClassVar[bool] = False

    @classmethod
    def configure(cls, config: C | dict[str, Any] | None, options: dict[str, Any], config_cls: type[C]) -> C:
        """The config to build from: ``config`` (a model or a dict of its fields) with ``options`` on top.

        Raises:
            ConfigError: naming the field and the value, for an unknown field or a bad value.
        """
        if isinstance(config, config_cls) and not options:
            return config
        if config is not None and not isinstance(config, (BaseModel, dict)):
            raise ConfigError(f"policy {cls.name!r}: config must be a {config_cls.__name__} or a dict, got {config!r}")
        base = config.model_dump() if isinstance(config, BaseModel) else dict(config or {})
        base.update(options)
        return validate(config_cls, base, where=f"policy {cls.name!r}")

    @property
    def done(self) -> bool:
        """The policy considers its task finished (a runner may end the episode). Default: never."""
        return False

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
