"""``agentkit policies``: what can be selected by name."""

from __future__ import annotations

import typer

from agentkit.apps.cli.groups import app


@app.command()
def policies() -> None:
    """List the registered policy names."""
    from agentkit.policy import available_policies

    for name in available_policies():
        typer.echo(name)
