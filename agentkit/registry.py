"""Name -> component registries, filled by the plug-ins themselves.

Why: the core must not import the worlds, policies and tools built on it (it installs and tests alone),
yet configs and the CLI pick components by name. Each plug-in package declares its components as Python
entry points (``[project.entry-points."agentkit.policies"]`` in ``pyproject.toml``); a registry loads an
entry point only when its name is asked for, so ``agentkit narrate`` never imports torch or Playwright.
Code outside the package (a notebook, a test) registers with the :meth:`Registry.register` decorator.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Components of one kind by name: entry points of group ``agentkit.<kind>`` plus explicit registrations.

    Example:
        >>> POLICIES: Registry[type] = Registry("policies", item="policy")
        >>> @POLICIES.register("mine")
        ... class Mine: ...
        >>> POLICIES.get("mine") is Mine
        True
    """

    def __init__(self, kind: str, item: str | None = None) -> None:
        self.kind = kind
        self.item = item or kind.removesuffix("s")
        self.group = f"agentkit.{kind}"
        self._items: dict[str, T] = {}
        self._entry_points: dict[str, EntryPoint] | None = None

    def _eps(self) -> dict[str, EntryPoint]:
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._entry_points

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: make ``obj`` available as ``name``. A second, different object under one name is an error."""

        def deco(obj: T) -> T:
            known = self._items.get(name)
            if known is not None and known is not obj:
                raise ValueError(f"{self.kind}: name {name!r} is already registered by {known!r}")
            self._items[name] = obj
            return obj

        return deco

    def names(self) -> list[str]:
        """Every name that :meth:`get` accepts, sorted."""
        return sorted(set(self._items) | set(self._eps()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._items or name in self._eps())

    def get(self, name: str) -> T:
        """The component called ``name`` (importing its plug-in on first use).

        Raises:
            KeyError: with the known names, for an unknown one.
        """
        if name not in self._items:
            ep = self._eps().get(name)
            if ep is None:
                raise KeyError(f"unknown {self.item} {name!r}; known: {', '.join(self.names()) or 'none'}")
            self._items[name] = ep.load()
        return self._items[name]
