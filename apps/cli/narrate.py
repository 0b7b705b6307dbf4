"""``agentkit narrate`` and ``agentkit replay``: live narration of a video, camera or screen."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from agentkit.apps.cli.common import check_writable, fail, fresh_dir, run_guarded, stopped
from agentkit.apps.cli.dashboard import DASHBOARD_OPTION, DASHBOARD_PUBLIC_OPTION, RERUN_OPTION, live_views
from agentkit.apps.cli.groups import app, bench_app


@app.command()
def narrate(
    source: str = typer.Argument(
        None, help="Video file, URL, camera:N, screen, test-pattern, mqtt://host/name or a recording folder."
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help="Output folder (default: runs/narrate, or runs/narrate-2, ... when that is in use)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the files of an earlier run in --out."),
    realtime: bool = typer.Option(
        None, "--realtime/--no-realtime", help="Pace a file to its stream clock (lossy, like a camera)."
    ),
    tts: bool = typer.Option(None, "--tts/--no-tts", help="Speak Responses with espeak-ng."),
    policy: str = typer.Option(None, "--policy", "-p", help="Policy name (detector, vlm, ...)."),
    model: str = typer.Option(None, "--model", "-m", help="Checkpoint folder or hub id (for --policy vlm)."),
    policy_arg: list[str] = typer.Option(
        None, "--policy-arg", "-a", help="KEY=VALUE for the policy's constructor (repeatable; VALUE is YAML)."
    ),
    gate: bool = typer.Option(
        None,
        "--gate/--no-gate",
        help="Gate in front of the policy: motion for the detector, the narrator's event cue for a model.",
    ),
    record: bool = typer.Option(None, "--record/--no-record", help="Also save frames.mp4 for replay."),
    max_frames: int = typer.Option(None, "--max-frames", help="Stop after this many processed frames."),
    duration: float = typer.Option(None, "--duration", help="Stop after this many seconds of wall clock."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML config; options given here override it."),
    progress: bool = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    dashboard: str = DASHBOARD_OPTION,
    dashboard_public: bool = DASHBOARD_PUBLIC_OPTION,
    rerun: Path = RERUN_OPTION,
) -> None:
    """Narrate a stream: decisions.jsonl, narration.srt/.vtt, annotated.mp4, metrics.json in --out."""

    def run() -> int:
        from agentkit.apps.narrator import run_narrator
        from agentkit.config import NarratorConfig, load_config, load_yaml

        overrides = {
            "source": source,
            "out": out,
            "realtime": realtime,
            "tts": tts,
            "policy": policy,
            "model": model,
            "gate": gate,
            "max_frames": max_frames,
            "duration_s": duration,
        }
        if record is not None:
            outputs = dict(load_yaml(config).get("outputs", {})) if config else {}
            outputs["record_frames"] = record
            overrides["outputs"] = outputs
        if policy_arg:
            args = dict(load_yaml(config).get("policy_args", {})) if config else {}
            args.update(parse_key_values(policy_arg))
            overrides["policy_args"] = args
        cfg = load_config(NarratorConfig, config, overrides)
        if out is None and not (config is not None and "out" in load_yaml(config)):
            cfg = cfg.model_copy(update={"out": fresh_dir(cfg.out)})
        with live_views(dashboard, dashboard_public, rerun, f"narrate {cfg.source}") as views:
            sinks = views.sinks(Path(cfg.source.rstrip("/")).name or cfg.source)
            summary = asyncio.run(run_narrator(cfg, progress=progress, replace=force, sinks=sinks))
        _print_summary(summary.metrics, cfg.out)
        if summary.error:
            fail(f"{summary.error} (outputs up to the last good frame are in {cfg.out})")
        if "stopped_by" in summary.metrics:
            stopped(summary.metrics["stopped_by"], cfg.out)
        return 0

    run_guarded(run)


@app.command()
def replay(
    recording: Path = typer.Argument(..., help="A recording folder (frames.mp4 + decisions.jsonl)."),
    policy: str = typer.Option("detector", "--policy", "-p"),
    model: str = typer.Option(None, "--model", "-m"),
    out: Path = typer.Option(
        None, "--out", "-o", help="Output folder, never in the recording (default: runs/replay, or runs/replay-2, ...)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the files of an earlier run in --out."),
) -> None:
    """Run a recording's frames through another policy (lossless), writing the same outputs as narrate."""

    def run() -> int:
        from agentkit.apps.narrator import run_narrator
        from agentkit.config import NarratorConfig

        if not (recording / "frames.mp4").exists():
            fail(f"{recording} is not a recording with frames (run narrate with --record)")
        cfg = NarratorConfig(
            source=str(recording), out=out or fresh_dir(Path("runs/replay")), policy=policy, model=model
        )
        summary = asyncio.run(run_narrator(cfg, replace=force))
        _print_summary(summary.metrics, cfg.out)
        if summary.error:
            fail(summary.error)
        if "stopped_by" in summary.metrics:
            stopped(summary.metrics["stopped_by"], cfg.out)
        return 0

    run_guarded(run)


def parse_key_values(items: list[str]) -> dict[str, object]:
    """``["a=1", "b=x y"]`` -> ``{"a": 1, "b": "x y"}`` (values parsed as YAML scalars)."""
    import yaml

    from agentkit.errors import ConfigError

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--policy-arg expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _print_summary(m: dict, out: Path) -> None:
    from rich.console import Console

    lat = m.get("latency_ms", {})
    rtf = m.get("real_time_factor")
    Console(stderr=True).print(
        f"processed {m['processed']}/{m['frames_in']} frames (dropped {m['dropped']}, gated {m['gated']}), "
        f"{m['responses']} responses, latency p50 {lat.get('p50')} ms p95 {lat.get('p95')} ms, "
        f"real-time factor {rtf}x -> {out}",
        markup=False,
    )


@bench_app.command("narrate")
def bench_narrate(
    source: str = typer.Argument("samples/one-by-one-person-detection.mp4", help="A video file."),
    policy: str = typer.Option("detector", "--policy", "-p"),
    realtime: bool = typer.Option(True, "--realtime/--no-realtime", help="Also run paced to the stream clock."),
    json_out: Path = typer.Option(None, "--json", help="Write the figures here."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Output folder (default: runs/bench-narrate, or runs/bench-narrate-2, ...)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the files of an earlier run in --out."),
) -> None:
    """Throughput (as fast as possible) and live latency (--realtime) of a narration run, in one go."""

    def run() -> int:
        from agentkit.apps.narrator import check_out, run_narrator
        from agentkit.benchmarks.report import Report, print_report
        from agentkit.config import NarratorConfig

        check_writable(json_out)
        base = out or fresh_dir(Path("runs/bench-narrate"))
        modes = [("offline", False)] + ([("realtime", True)] if realtime else [])
        cfgs = [NarratorConfig(source=source, policy=policy, realtime=rt, out=base / mode) for mode, rt in modes]
        for cfg in cfgs:  # both folders before the first run, not after it
            check_out(cfg, replace=force)
        rows = []
        for (mode, _), cfg in zip(modes, cfgs, strict=True):
            summary = asyncio.run(run_narrator(cfg, progress=True, replace=force))
            if summary.error:
                fail(summary.error)
            if "stopped_by" in summary.metrics:
                stopped(summary.metrics["stopped_by"], cfg.out)
            m = summary.metrics
            keep = ("frames_in", "processed", "dropped", "wall_s", "stream_s", "real_time_factor", "latency_ms")
            extra = ("latency_ms_first_minute", "latency_ms_last_minute")
            rows.append({"mode": mode} | {k: m[k] for k in keep} | {k: m[k] for k in extra if k in m})
        overall = {f"{r['mode']}_{k}": r[k] for r in rows for k in ("real_time_factor", "latency_ms", "dropped")}
        report = Report(benchmark="narrate", overall=overall, rows=rows, config={"source": source, "policy": policy})
        print_report(report, ("mode", "processed", "dropped", "wall_s", "real_time_factor", "latency_ms"))
        if json_out:
            report.write(json_out)
        return 0

    run_guarded(run)
