"""Turning errors into one clear line and an exit code, the same way in every command."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

import typer

from agentkit.errors import AgentkitError

EXIT_ERROR = 1  # the run could not be done or ended on bad input
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def run_guarded(fn: Callable[[], int | None]) -> None:
    """Run a command body: known errors become one line; unexpected ones too, unless AGENTKIT_DEBUG=1."""
    try:
        code = fn() or 0
    except typer.Exit:
        raise
    except AgentkitError as e:
        fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
    except KeyError as e:  # make_policy & registries raise KeyError with a readable message
        fail(str(e.args[0]) if e.args else "unknown name")
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except Exception as e:
        if os.environ.get("AGENTKIT_DEBUG"):
            raise
        logging.getLogger("agentkit").debug("unexpected error", exc_info=True)
        first = (str(e).splitlines() or [""])[0]
        fail(f"{type(e).__name__}: {first} (set AGENTKIT_DEBUG=1 for the traceback)")
    if code:
        raise typer.Exit(code)
    sys.stdout.flush()
