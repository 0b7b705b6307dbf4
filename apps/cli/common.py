"""Turning errors into one clear line and an exit code, the same way in every command."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer

from agentkit.errors import AgentkitError, ConfigError

EXIT_ERROR = 1  # the run could not be done or ended on bad input
EXIT_INTERRUPTED = 130  # 128 + SIGINT; a run stopped by SIGTERM exits 143 (128 + 15), the shell convention


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


def stopped(signal_name: str, out: Path | None = None) -> NoReturn:
    """A run ended early by a signal but closed every file: say so on one line, exit 128 + the signal number."""
    where = f"; outputs up to the last processed frame are complete in {out}" if out is not None else ""
    typer.echo(f"stopped by {signal_name}{where}", err=True)
    raise typer.Exit(128 + int(signal.Signals[signal_name]))


def fresh_dir(path: Path) -> Path:
    """``path`` when it is missing or empty, else the first of ``path-2``, ``path-3``, ... that is.

    For default output folders: a run without ``--out`` never mixes its files with an earlier run's and
    never fails because one exists. A folder given with ``--out`` is checked instead (``--force``).
    """
    candidate, n = path, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def check_writable(path: Path | None) -> None:
    """Fail now, not after a long run, when a report path cannot be written.

    Raises:
        ConfigError: the folder cannot be created or written, or the path is a folder.
    """
    if path is None:
        return
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, expected a file path for the report")
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise ConfigError(f"cannot write {path}: {blocker} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create the folder of {path}: {e.strerror or e}") from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"cannot write {path}: permission denied")


class EpisodeProgress:
    """A progress bar over episodes with the running success count (``update`` takes an EpisodeResult)."""

    def __init__(self, title: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn(f"[bold]{title}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[ok]} ok  {task.fields[task_name]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.bar = self.progress.add_task(title, total=total, ok=0, task_name="")
        self.ok = 0

    def update(self, result: Any) -> None:
        self.ok += bool(getattr(result, "success", False))
        self.progress.update(self.bar, advance=1, ok=self.ok, task_name=getattr(result, "task", ""))

    def __enter__(self) -> EpisodeProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


# -- MQTT login and TLS, the same options on every command that talks to a broker ------------------------
# The password itself is never an option (it would show in `ps` and shell history): --password-file, or
# $AGENTKIT_MQTT_PASSWORD.
MQTT_USERNAME = typer.Option(None, "--username", envvar="AGENTKIT_MQTT_USERNAME", help="MQTT login")
MQTT_PASSWORD_FILE = typer.Option(
    None,
    "--password-file",
    envvar="AGENTKIT_MQTT_PASSWORD_FILE",
    help="file whose first line is the MQTT password (else $AGENTKIT_MQTT_PASSWORD)",
)
MQTT_TLS_CA = typer.Option(None, "--tls-ca", envvar="AGENTKIT_MQTT_TLS_CA", help="CA certificate for mqtts://")
MQTT_TLS_CERT = typer.Option(None, "--tls-cert", envvar="AGENTKIT_MQTT_TLS_CERT", help="client certificate (mqtts://)")
MQTT_TLS_KEY = typer.Option(None, "--tls-key", envvar="AGENTKIT_MQTT_TLS_KEY", help="client certificate key (mqtts://)")


def mqtt_auth(
    username: str | None, password_file: Path | None, tls_ca: Path | None, tls_cert: Path | None, tls_key: Path | None
) -> Any:
    """The options as an ``MqttAuth``; a bad combination is a ``ConfigError`` naming the option."""
    from pydantic import ValidationError

    from agentkit.errors import ConfigError
    from agentkit.transport.mqtt.auth import MqttAuth

    try:
        return MqttAuth(
            username=username, password_file=password_file, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key
        )
    except ValidationError as e:
        err = e.errors(include_url=False, include_input=False)[0]
        option = "--" + "-".join(str(x) for x in err["loc"]).replace("_", "-") if err["loc"] else "MQTT options"
        raise ConfigError(f"{option}: {err['msg']}") from None
