"""CLI: ``agentkit dashboard DIR...`` (a recording, scrubbable), ``agentkit bench dashboard``, and the
``--dashboard [HOST:PORT]`` / ``--dashboard-public`` / ``--rerun FILE.rrd`` options ``narrate``, ``robot``
and ``browse`` share.

FastAPI, uvicorn and rerun-sdk (the ``dashboard`` extra) are imported inside the commands.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from agentkit.apps.cli.common import check_writable, fail, fresh_dir, run_guarded, stopped
from agentkit.apps.cli.groups import app, bench_app

DEFAULT_ADDRESS = "127.0.0.1:8765"
OPTIONAL_VALUES = {"--dashboard": DEFAULT_ADDRESS}
"""Options whose value may be left out (``--dashboard`` alone means ``--dashboard 127.0.0.1:8765``)."""

DASHBOARD_OPTION: Any = typer.Option(
    None,
    "--dashboard",
    metavar="[HOST:PORT]",
    help="Serve a live dashboard of the run (default 127.0.0.1:8765; PORT or :PORT: loopback, :0: any free port).",
)
DASHBOARD_PUBLIC_OPTION: Any = typer.Option(
    False,
    "--dashboard-public",
    help="Allow --dashboard on a non-loopback address (no password: anyone there sees the run).",
)
RERUN_OPTION: Any = typer.Option(None, "--rerun", metavar="FILE.rrd", help="Also log the run to a Rerun file.")


def expand_optional_values(argv: list[str]) -> list[str]:
    """Give the options in :data:`OPTIONAL_VALUES` their default where the command line leaves the value out.

    ``--dashboard`` followed by nothing or by another option becomes ``--dashboard 127.0.0.1:8765`` (Typer has
    no optional-value options; ``agentkit`` applies this to its arguments). Nothing after ``--`` is touched.

    Example:
        >>> expand_optional_values(["narrate", "cam.mp4", "--dashboard", "--realtime"])
        ['narrate', 'cam.mp4', '--dashboard', '127.0.0.1:8765', '--realtime']
    """
    out: list[str] = []
    for k, arg in enumerate(argv):
        if arg == "--":
            return out + argv[k:]
        out.append(arg)
        if arg in OPTIONAL_VALUES:
            nxt = argv[k + 1] if k + 1 < len(argv) else None
            if nxt is None or (nxt.startswith("-") and len(nxt) > 1):
                out.append(OPTIONAL_VALUES[arg])
    return out


@contextlib.contextmanager
def live_views(dashboard: str | None, public: bool, rerun: Path | None, title: str) -> Iterator[Any]:
    """:class:`~agentkit.apps.dashboard.live.LiveViews` for a command's options (a no-op without them)."""
    if dashboard is None and rerun is None:
        from agentkit.apps.dashboard.live import LiveViews

        yield LiveViews()
        return
    try:
        from agentkit.apps.dashboard.live import LiveViews
    except ImportError as e:  # pragma: no cover - the extra is missing
        fail(f"--dashboard/--rerun need the dashboard extra: pip install 'agentkit[dashboard]' ({e})")
    if dashboard is not None:
        try:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as e:
            fail(f"--dashboard needs FastAPI and uvicorn: pip install 'agentkit[dashboard]' ({e.name} missing)")
    with LiveViews(dashboard, public=public, rerun=rerun, title=title) as views:
        yield views


@app.command("dashboard")
def dashboard(
    recordings: list[Path] = typer.Argument(
        ..., help="Recording folders (decisions.jsonl + frames.mp4 or annotated.mp4), shown side by side."
    ),
    address: str = typer.Option(
        DEFAULT_ADDRESS, "--address", "-a", metavar="HOST:PORT", help="Where to serve the page."
    ),
    public: bool = typer.Option(False, "--public", help="Allow a non-loopback --address (no password)."),
    seconds: float = typer.Option(None, "--seconds", help="Stop after this many seconds (default: until Ctrl-C)."),
) -> None:
    """Show finished runs the way the live dashboard shows a run, with a timeline to scrub."""

    def body() -> int:
        from agentkit.apps.dashboard.replay import ReplayHub
        from agentkit.apps.dashboard.server import DashboardServer, parse_address

        hub = ReplayHub(list(recordings))
        server = DashboardServer(hub, parse_address(address), public=public, linger_s=0.5)
        url = server.start()
        typer.echo(f"dashboard: {url} ({', '.join(hub.streams)}); Ctrl-C to stop", err=True)
        done = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
        try:
            done.wait(seconds)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            server.stop()
            hub.close()
        return 0

    run_guarded(body)


@bench_app.command("dashboard")
def bench_dashboard(
    source: str = typer.Argument("samples/one-by-one-person-detection.mp4", help="A video file, paced to its clock."),
    seconds: float = typer.Option(60.0, "--seconds", help="Wall-clock length of each run."),
    repeats: int = typer.Option(1, "--repeats", min=1, help="Pairs of runs (without, with), alternating."),
    rerun: bool = typer.Option(False, "--rerun/--no-rerun", help="Also a run with --rerun (and no dashboard)."),
    max_fps: float = typer.Option(15.0, "--max-fps", help="The dashboard's frame rate cap."),
    json_out: Path = typer.Option(None, "--json", help="Write the report here."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Output folder (default: runs/bench-dashboard, or runs/bench-dashboard-2, ...)."
    ),
) -> None:
    """Capture->decision latency of the same paced narration without and with a live dashboard (and a client).

    Every run narrates ``source`` paced to its stream clock (``--realtime``, lossy like a camera) for
    ``--seconds``. The dashboard runs have a WebSocket client in another process taking every message,
    as a browser would; its counts are in the report.
    """

    def body() -> int:
        from agentkit.apps.dashboard.live import LiveViews
        from agentkit.apps.narrator import run_narrator
        from agentkit.benchmarks.report import Report, print_report
        from agentkit.config import NarratorConfig

        check_writable(json_out)
        base = out or fresh_dir(Path("runs/bench-dashboard"))
        modes = ["baseline", "dashboard"] + (["rerun"] if rerun else [])
        plan = [(mode, r) for r in range(repeats) for mode in modes]
        rows = []
        for mode, r in plan:
            folder = base / f"{mode}-{r}"
            cfg = NarratorConfig(source=source, realtime=True, duration_s=seconds, out=folder)
            views = LiveViews(
                "127.0.0.1:0" if mode == "dashboard" else None,
                rerun=folder / "run.rrd" if mode == "rerun" else None,
                title=f"bench {mode}",
                max_fps=max_fps,
                announce=lambda _t: None,
            )
            client = None
            with views:
                if views.url is not None:
                    client = _start_client(views.url, folder / "client.json")
                    _wait_for_client(views)
                summary = _run(run_narrator, cfg, views.sinks(Path(source).name))
            dash_counters = _dashboard_counters(views)  # the server has stopped: its last figures are final
            client_stats = _stop_client(client, folder / "client.json") if client is not None else None
            if summary.error:
                fail(summary.error)
            if "stopped_by" in summary.metrics:
                stopped(summary.metrics["stopped_by"], cfg.out)
            m = summary.metrics
            row: dict[str, Any] = {"mode": mode, "repeat": r}
            row |= {k: m[k] for k in ("frames_in", "processed", "dropped", "wall_s", "latency_ms")}
            if dash_counters is not None:
                d = dash_counters.get("dashboard", {})
                row["dashboard_frames_encoded"] = d.get("frames_encoded")
                row["dashboard_frames_skipped"] = d.get("frames_skipped")
                row["dashboard_encode_ms"] = d.get("encode_ms")
            if client_stats is not None:
                row["client_frames"] = client_stats.get("frames")
                row["client_decisions"] = client_stats.get("decisions")
                row["client_frame_gaps"] = client_stats.get("frame_id_gaps")
                row["client_bye"] = client_stats.get("bye")
            if views.rerun is not None:
                row["rerun_logged"] = views.rerun.logged
                row["rerun_dropped"] = views.rerun.dropped
                row["rrd_bytes"] = (folder / "run.rrd").stat().st_size
            rows.append(row)
        overall: dict[str, Any] = {}
        for mode in modes:
            mine = [r for r in rows if r["mode"] == mode]
            overall[f"{mode}_latency_p50_ms"] = _median([r["latency_ms"]["p50"] for r in mine])
            overall[f"{mode}_latency_p95_ms"] = _median([r["latency_ms"]["p95"] for r in mine])
            overall[f"{mode}_dropped"] = sum(r["dropped"] for r in mine)
            overall[f"{mode}_processed"] = sum(r["processed"] for r in mine)
        config = {"source": source, "seconds": seconds, "repeats": repeats, "max_fps": max_fps, "policy": "detector"}
        report = Report(benchmark="dashboard", overall=overall, rows=rows, config=config)
        cols = ["mode", "repeat", "processed", "dropped", "latency_ms", "dashboard_frames_encoded", "client_frames"]
        print_report(report, cols)
        if json_out:
            report.write(json_out)
        return 0

    run_guarded(body)


def _run(run_narrator: Any, cfg: Any, sinks: list[Any]) -> Any:
    import asyncio

    return asyncio.run(run_narrator(cfg, progress=False, sinks=sinks))


def _median(values: list[Any]) -> float | None:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else round((vals[mid - 1] + vals[mid]) / 2, 3)


def _start_client(url: str, stats: Path) -> subprocess.Popen[bytes]:
    ws = url.replace("http://", "ws://", 1) + "ws"
    stats.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "agentkit.apps.dashboard.client", ws, "--json", str(stats)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _wait_for_client(views: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rt = views.server.runtime if views.server is not None else None
        if rt is not None and rt.clients:
            return
        time.sleep(0.05)
    fail("the benchmark's WebSocket client did not connect to the dashboard")


def _stop_client(proc: subprocess.Popen[bytes], stats: Path) -> dict[str, Any] | None:
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(timeout=5)
    try:
        data: dict[str, Any] = json.loads(stats.read_text())
        return data
    except (OSError, ValueError):
        return None


def _dashboard_counters(views: Any) -> dict[str, Any] | None:
    rt = views.server.runtime if views.server is not None else None
    if rt is None:
        return None
    for view in rt.views.values():
        return dict(view.counters)
    return None
