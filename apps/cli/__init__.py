"""The ``agentkit`` command: one entry point, commands grouped by area.

Area modules register their commands on import; a module whose optional dependencies are missing still
imports (heavy imports happen inside the commands), so ``agentkit --help`` always lists everything.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from agentkit.apps.cli.groups import app

_AREAS = ("narrate", "detector", "vlm", "browser", "robot", "train", "info", "dashboard", "serve", "adapt")

for _area in _AREAS:
    try:
        importlib.import_module(f"agentkit.apps.cli.{_area}")
    except ModuleNotFoundError as _e:
        if _e.name != f"agentkit.apps.cli.{_area}":
            raise


def main() -> None:
    logging.basicConfig(level=os.environ.get("AGENTKIT_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    from agentkit.apps.cli.dashboard import expand_optional_values

    sys.argv[1:] = expand_optional_values(sys.argv[1:])  # `--dashboard` alone: the default address
    app()


if __name__ == "__main__":
    main()
