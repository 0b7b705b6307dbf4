"""One report schema and one table printer for every evaluation and benchmark.

Why: a figure is only worth quoting with what produced it. Every ``agentkit eval ...`` / ``agentkit bench
...`` writes the same JSON shape: ``overall`` (the headline figures), ``rows`` (one per task, clip, history
size or stream count), optional ``episodes`` (one per episode), the ``config`` that was run, and where it
ran: ``environment`` (Python, platform, CPU count, library versions), ``command`` and ``git_revision``.
:func:`print_report` shows any report the same way: a table of its rows and the overall line.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_LIBRARIES = ("torch", "transformers", "opencv-python-headless", "av", "playwright", "mujoco", "aiomqtt")


def environment() -> dict[str, Any]:
    """Where a figure was measured: interpreter, machine and the versions of the libraries that matter."""
    libs = {}
    for name in _LIBRARIES:
        try:
            libs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
        "libraries": libs,
    }


def git_revision(repo: str | Path | None = None) -> str | None:
    """The checkout's commit (``+dirty`` when it has uncommitted changes), or None outside a git checkout."""
    cwd = str(repo or Path(__file__).resolve().parent)
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=cwd, capture_output=True, text=True)
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


class Report(BaseModel):
    """The JSON every evaluation and benchmark writes (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str
    overall: dict[str, Any]
    rows: list[dict[str, Any]] = Field(default_factory=list)
    episodes: list[dict[str, Any]] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    environment: dict[str, Any] = Field(default_factory=environment)
    command: str = Field(default_factory=lambda: shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    git_revision: str | None = Field(default_factory=git_revision)
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"

    def write(self, path: str | Path) -> Path:
        """Write the report as JSON (parent folders created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: str | Path) -> Report:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 0.01 and value != 0 else f"{value:.2f}"
    if isinstance(value, dict):
        return " ".join(f"{k}={_cell(v)}" for k, v in value.items())
    if value is None:
        return "-"
    return str(value)


def print_report(report: Report, columns: Iterable[str] | None = None, *, console: Any = None) -> None:
    """A table of ``report.rows`` (the given columns, or every key of the first row) and the overall line."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if report.rows:
        cols = list(columns) if columns is not None else list(report.rows[0])
        table = Table(title=report.benchmark)
        for col in cols:
            table.add_column(col, justify="left" if isinstance(report.rows[0].get(col), str) else "right")
        for row in report.rows:
            table.add_row(*(_cell(row.get(c)) for c in cols))
        console.print(table)
    console.print("overall: " + "  ".join(f"{k} {_cell(v)}" for k, v in report.overall.items()), markup=False)
