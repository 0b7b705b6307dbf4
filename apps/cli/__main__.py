"""``python -m agentkit.apps.cli``: the same as the ``agentkit`` command."""

from agentkit.apps.cli import main

main()
