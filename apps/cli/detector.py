"""``agentkit eval narration`` and ``agentkit bench detector``: score and time the detector narrator.

``eval narration`` scores any ``decisions.jsonl`` (from the detector, a VLM, a recording) against a label
file of arrivals and departures. ``bench detector`` runs the detector narrator over a video as fast as it
can (decoding included), writes ``decisions.jsonl`` and, given labels, scores it in the same run.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from agentkit.apps.cli.common import check_writable, fresh_dir, run_guarded
from agentkit.apps.cli.groups import bench_app, eval_app


def _print_match(result: object, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    from agentkit.benchmarks.narration import MatchResult

    assert isinstance(result, MatchResult)
    console = Console()
    table = Table(title=title)
    for col in ("event t (s)", "type", "response pts (s)", "delay (s)"):
        table.add_column(col, justify="right" if col != "type" else "left")
    for i, ev in enumerate(result.events):
        m = result.matched_response(i)
        resp = "-" if m is None else f"{result.responses[m.response_index].pts:.1f}"
        delay = "[red]missed[/red]" if m is None else f"{m.delay:+.1f}"
        table.add_row(f"{ev.t:.1f}", ev.type, resp, delay)
    console.print(table)
    for r in result.unmatched_responses:
        console.print(f"  unmatched Response at {r.pts:.1f} s: {r.text!r}")
    mean = "n/a" if result.mean_delay is None else f"{result.mean_delay:+.2f} s"
    worst = "n/a" if result.max_delay is None else f"{result.max_delay:+.2f} s"
    console.print(
        f"precision {result.precision:.3f} ({result.matched_responses}/{len(result.responses)} Responses)  "
        f"recall {result.recall:.3f} ({len(result.matches)}/{len(result.events)} events)  "
        f"mean delay {mean}  max delay {worst}  (window -{result.early:g} s .. +{result.tolerance:g} s)"
    )


@eval_app.command("narration")
def eval_narration(
    decisions: Path = typer.Argument(..., help="decisions.jsonl: one JSON object per frame with pts, kind, text."),
    labels: Path = typer.Option(..., "--labels", "-l", help="Label file (configs/labels/*.json)."),
    tolerance: float = typer.Option(3.0, "--tolerance", help="Seconds after an event a Response may come."),
    early: float = typer.Option(1.0, "--early", help="Seconds before an event a Response may come."),
    json_out: Path = typer.Option(None, "--json", help="Also write the figures as JSON here."),
) -> None:
    """Precision, recall and delay of Responses against labelled arrivals and departures."""

    def run() -> int:
        from agentkit.benchmarks.narration import evaluate_files

        check_writable(json_out)
        result = evaluate_files(decisions, labels, tolerance=tolerance, early=early)
        _print_match(result, f"{decisions} vs {labels.name}")
        if json_out is not None:
            config = {"decisions": str(decisions), "labels": str(labels), "tolerance_s": tolerance, "early_s": early}
            result.report(config).write(json_out)
        return 0

    run_guarded(run)


@bench_app.command("detector")
def bench_detector(
    video: Path = typer.Argument(..., help="Video file to narrate."),
    labels: Path = typer.Option(None, "--labels", "-l", help="Label file: also print precision/recall/delay."),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder for decisions.jsonl and bench.json (default: runs/detector, or runs/detector-2, ...).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace decisions.jsonl and bench.json of an earlier run."),
    start: float = typer.Option(0.0, "--start", help="First second of the video to process."),
    end: float = typer.Option(None, "--end", help="Last second of the video to process."),
    threads: int = typer.Option(None, "--threads", help="cv2.setNumThreads for this run (default: OpenCV's)."),
    sheet: Path = typer.Option(None, "--sheet", help="Also save a PNG contact sheet of the Response frames."),
    option: list[str] = typer.Option(
        None, "--set", help="Detector setting, e.g. --set hog_every=3 (JSON values; repeatable)."
    ),
) -> None:
    """Time the detector narrator on VIDEO (decoding included); with --labels, score it too."""

    def run() -> int:
        import cv2
        from rich.console import Console

        from agentkit.benchmarks.detector import replay_video
        from agentkit.benchmarks.narration import load_labels, match_events
        from agentkit.benchmarks.report import Report
        from agentkit.errors import ConfigError
        from agentkit.policy import make_policy
        from agentkit.recorder import check_output_dir, remove_outputs

        folder = out or fresh_dir(Path("runs/detector"))
        earlier = check_output_dir(folder, ("decisions.jsonl", "bench.json"), replace=force, reading=video)
        check_writable(sheet)
        overrides: dict[str, object] = {}
        for item in option or []:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"--set expects key=value, got {item!r}")
            try:
                overrides[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                overrides[key.strip()] = value
        if threads is not None:
            cv2.setNumThreads(threads)
        label_set = load_labels(labels) if labels is not None else None
        policy = make_policy("detector", **overrides)
        remove_outputs(earlier)  # --force: no earlier bench.json next to this run's decisions
        thumbs = []

        def keep(frame, decision) -> None:
            if sheet is not None and decision.kind.value == "response":
                from agentkit.benchmarks.sheet import event_thumbnail

                thumbs.append(event_thumbnail(frame, decision))

        decisions, stats = replay_video(
            policy, video, folder / "decisions.jsonl", start_s=start, end_s=end, on_decision=keep
        )
        console = Console()
        console.print(
            f"{stats.frames} frames ({stats.stream_s:.1f} s of video) in {stats.wall_s:.2f} s wall = "
            f"{stats.fps:.1f} frames/s, {stats.realtime_factor:.1f}x real time; step p50 {stats.step_ms_p50:.1f} ms, "
            f"p95 {stats.step_ms_p95:.1f} ms; silence {stats.silence}, standby {stats.standby}, "
            f"response {stats.response}"
        )
        for d in decisions:
            if d.kind.value == "response":
                console.print(f"  {d.pts:7.1f} s  {d.text}")
        overall: dict[str, object] = {
            "frames": stats.frames,
            "stream_s": round(stats.stream_s, 3),
            "wall_s": round(stats.wall_s, 3),
            "fps": round(stats.fps, 2),
            "realtime_factor": round(stats.realtime_factor, 2),
            "step_ms_p50": round(stats.step_ms_p50, 3),
            "step_ms_p95": round(stats.step_ms_p95, 3),
            "decisions": {"silence": stats.silence, "standby": stats.standby, "response": stats.response},
        }
        config = {"video": str(video), "start_s": start, "end_s": end, "settings": overrides}
        config["opencv_threads"] = cv2.getNumThreads()
        rows = [{"pts": round(d.pts, 3), "text": d.text} for d in decisions if d.kind.value == "response"]
        if label_set is not None:
            from agentkit.benchmarks.narration import ResponseRecord, event_types

            responses = [
                ResponseRecord(d.pts, event_types(d.to_dict()), d.text or "")
                for d in decisions
                if d.kind.value == "response"
            ]
            # Label times are seconds of the file; a window run only answers for events inside it.
            lo, hi = start, (end if end is not None else float("inf"))
            events = [e for e in label_set.events if lo <= e.t <= hi]
            result = match_events(events, responses)
            _print_match(result, f"{video.name} vs {labels.name if labels else ''}")
            evaluation = result.report()
            overall.update(evaluation.overall)
            rows = evaluation.rows
        if sheet is not None and thumbs:
            from agentkit.benchmarks.sheet import contact_sheet, save_png

            save_png(sheet, contact_sheet(thumbs, cols=4))
            console.print(f"wrote {sheet} ({sheet.stat().st_size // 1024} KB, {len(thumbs)} events)")
        Report(benchmark="detector", overall=overall, rows=rows, config=config).write(folder / "bench.json")
        console.print(f"wrote {folder / 'decisions.jsonl'} and {folder / 'bench.json'}")
        return 0

    run_guarded(run)
