"""Pick a simulated robot world by name: ``fetch``, ``fetch-multi`` (MuJoCo) or ``panda`` (PyBullet).

Why: the CLI, the app and the robot node choose the world with one ``--env`` option; each world is
imported only when asked for, so a machine with only one simulator installed still runs the other.
"""

from __future__ import annotations

from typing import Any

from agentkit.errors import ConfigError

ROBOT_ENVS = ("fetch", "fetch-multi", "panda")


def make_sim(env: str, width: int = 320, height: int = 240, **kw: Any) -> Any:
    """A ``FetchSim``, ``FetchMultiSim`` or ``PandaSim``; :class:`ConfigError` naming the known envs otherwise."""
    if env == "fetch":
        from agentkit.envs.robot.fetch import FetchSim

        return FetchSim(width, height, **kw)
    if env == "fetch-multi":
        from agentkit.envs.robot.fetch_multi import FetchMultiSim

        return FetchMultiSim(width, height, **kw)
    if env == "panda":
        from agentkit.envs.robot.panda import PandaSim

        return PandaSim(width, height, **kw)
    raise ConfigError(f"--env: unknown robot env {env!r}; known: {', '.join(ROBOT_ENVS)}")
