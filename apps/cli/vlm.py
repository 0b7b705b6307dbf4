"""CLI of the streaming VLM engine: ``bench stream``, ``verify stream`` and ``vlm build-tiny``.

torch and transformers are imported inside the commands, so ``agentkit --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from agentkit.apps.cli.common import check_writable, fail, run_guarded
from agentkit.apps.cli.groups import app, bench_app, verify_app
from agentkit.policies.vlm.architectures import ARCH_NAMES

vlm_app = typer.Typer(help="Streaming VLM engine utilities.", no_args_is_help=True)
app.add_typer(vlm_app, name="vlm")

_ARCHS = ", ".join(ARCH_NAMES)
_BENCH_COLUMNS = (
    "history",
    "tokens_per_frame",
    "incremental_ms",
    "reprefill_ms",
    "speedup",
    "decode_ms_per_token",
    "cache_tokens",
    "peak_mem_mb",
)
"""The columns ``bench stream`` prints (the JSON rows hold more: minima, cache MB, current memory)."""


def _quiet_transformers() -> None:
    """No tqdm bars for loading/saving tiny checkpoints (they would interleave with our output)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _ints(text: str, name: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        fail(f"{name} must be comma-separated integers, got {text!r}")
    if not vals or any(v <= 0 for v in vals):
        fail(f"{name} must be positive integers, got {text!r}")
    return vals


def _check_arch(arch: str) -> None:
    if arch not in ARCH_NAMES:
        fail(f"--arch must be one of {_ARCHS}, got {arch!r}")


@vlm_app.command("build-tiny")
def build_tiny_cmd(
    arch: str = typer.Argument(..., help=f"Architecture: {_ARCHS}."),
    out_dir: Path = typer.Argument(..., help="Folder to write the checkpoint to."),
    size: str = typer.Option("tiny", "--size", help="tiny | 2b | 7b (real dimensions, random weights)."),
    tokens_per_frame: int = typer.Option(None, "--tokens-per-frame", help="Vision tokens per frame."),
    state_tokens: str = typer.Option("agentkit", "--state-tokens", help="agentkit | streamo | none."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Build a random-weight checkpoint offline (tokenizer trained here) loadable with from_pretrained."""

    def run() -> int:
        from agentkit.policies.vlm.build import SIZES, build_tiny

        _quiet_transformers()
        _check_arch(arch)
        if size not in SIZES:
            fail(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
        from agentkit.policies.vlm.decide import STATE_TOKEN_SETS

        if state_tokens not in (*STATE_TOKEN_SETS, "none"):
            fail(f"--state-tokens must be agentkit, streamo or none, got {state_tokens!r}")
        names = () if state_tokens == "none" else STATE_TOKEN_SETS[state_tokens]
        path = build_tiny(arch, out_dir, size=size, seed=seed, tokens_per_frame=tokens_per_frame, state_tokens=names)
        typer.echo(f"built {arch} ({size}, random weights) in {path}")
        return 0

    run_guarded(run)


@bench_app.command("stream")
def bench_stream(
    arch: str = typer.Option("qwen2_vl", "--arch", help=f"Architecture: {_ARCHS}."),
    size: str = typer.Option("tiny", "--size", help="tiny | 2b | 7b (random weights)."),
    history: str = typer.Option("8,32,128,512", "--history", help="Frames of history, comma-separated."),
    tokens_per_frame: int = typer.Option(64, "--tokens-per-frame", help="Vision tokens per frame (square)."),
    frames: int = typer.Option(5000, "--frames", help="Frames of the long run with eviction (0: skip)."),
    repeats: int = typer.Option(5, "--repeats", help="Timed repeats per measurement (medians)."),
    reprefill_max_history: int = typer.Option(128, "--reprefill-max-history", help="Skip re-prefill above."),
    window_s: float = typer.Option(16.0, "--window-s", help="Eviction window of the long run (s at 1 fps)."),
    device: str = typer.Option(None, "--device", help="cpu | cuda (default: cuda when available)."),
    dtype: str = typer.Option(None, "--dtype", help="float32 | bfloat16 | float16."),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads."),
    json_out: Path = typer.Option(None, "--json", help="Write the report JSON here (the project's report schema)."),
) -> None:
    """Per-frame step of the engine vs full re-prefill of the history, decode ms/token, memory, long run."""

    def run() -> int:
        import torch
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

        from agentkit.benchmarks.report import print_report
        from agentkit.benchmarks.vlm_stream import BenchConfig, run_bench
        from agentkit.policies.vlm.build import SIZES

        _check_arch(arch)
        check_writable(json_out)
        _quiet_transformers()
        if size not in SIZES:
            fail(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
        if threads:
            torch.set_num_threads(threads)
        cfg = BenchConfig(
            arch=arch,
            size=size,
            histories=_ints(history, "--history"),
            tokens_per_frame=tokens_per_frame,
            frames=max(0, frames),
            repeats=max(1, repeats),
            reprefill_max_history=reprefill_max_history,
            window_s=window_s,
            device=device,
            dtype=dtype,
        )
        console = Console(stderr=True)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as prog:
            tasks: dict[str, TaskID] = {}

            def cb(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = prog.add_task(name, total=total)
                prog.update(tasks[name], completed=done)

            try:
                report = run_bench(cfg, cb)
            except ValueError as e:
                fail(str(e))
        env = report.environment
        typer.echo(f"bench stream: {arch} {size} on {env['device']} ({env['dtype']}, {env['torch_threads']} threads)")
        # piped output (logs, CI) is 80 columns wide by default, which would cut the column names
        print_report(report, _BENCH_COLUMNS, console=None if sys.stdout.isatty() else Console(width=140))
        if json_out:
            typer.echo(f"wrote {report.write(json_out)}")
        return 0

    run_guarded(run)


@verify_app.command("stream")
def verify_stream(
    model: str = typer.Option(None, "--model", "-m", help="Checkpoint folder or hub id."),
    arch: str = typer.Option(None, "--arch", help=f"Build a tiny random {_ARCHS} checkpoint instead."),
    frames: int = typer.Option(12, "--frames", help="Frames to stream (>= 4)."),
    window_tokens: int = typer.Option(None, "--window-tokens", help="Eviction window (default: ~3 frames)."),
    response_tokens: int = typer.Option(6, "--response-tokens", help="Tokens of the forced Response."),
    tol: float = typer.Option(1e-4, "--tol", help="Max abs logit difference allowed (fp32)."),
    device: str = typer.Option(None, "--device"),
    dtype: str = typer.Option("float32", "--dtype", help="Keep float32 for the 1e-4 tolerance."),
    max_pixels: int = typer.Option(None, "--max-pixels", help="Qwen: pixels per frame (fewer tokens)."),
    video: Path = typer.Option(None, "--video", help="Stream this video's first frames instead of noise."),
) -> None:
    """Stream frames + a question + a response through the engine and compare with one full forward."""

    def run() -> int:
        import tempfile

        from agentkit.policies.vlm.build import build_tiny
        from agentkit.policies.vlm.loading import load
        from agentkit.policies.vlm.reference import RTOL
        from agentkit.policies.vlm.verify import stream_and_compare

        if (model is None) == (arch is None):
            fail("give exactly one of --model PATH and --arch ARCH")
        if frames < 4:
            fail(f"--frames must be >= 4, got {frames}")
        if video is not None and not video.is_file():
            fail(f"--video {video} is not a file")
        _quiet_transformers()
        with tempfile.TemporaryDirectory() as tmp:
            src = model
            if arch is not None:
                _check_arch(arch)
                src = str(build_tiny(arch, Path(tmp) / arch))
            loaded = load(src, device=device, dtype=dtype, max_pixels=max_pixels)
            per_frame = len(loaded.adapter.frame_chunk(_probe_image()).ids) + 16
            window = window_tokens or 3 * per_frame
            vid = str(video) if video else None
            n = frames
            results = [
                stream_and_compare(loaded, frames=n, response_tokens=response_tokens, video=vid),
                stream_and_compare(loaded, frames=n, response_tokens=response_tokens, window_tokens=window, video=vid),
            ]
        bad = False
        what = f"tiny random {arch} checkpoint" if arch else src
        src_frames = f"frames of {video}" if video else "random frames"
        tolerance = f"tolerance {tol:g} + {RTOL:g}·|logit|"
        typer.echo(f"verify stream: {loaded.arch} ({what}), {results[0].report.frames} {src_frames}, {tolerance}")
        for r in results:
            ok = r.report.ok(tol)
            bad |= not ok
            typer.echo(
                f"  {r.label:12s} max |logit diff| = {r.report.max_abs_diff:.3g}  position mismatches = "
                f"{r.report.max_position_diff}  tokens = {r.report.tokens}  responses = {r.responses}  "
                f"evicted = {r.evicted_tokens}  {'OK' if ok else 'FAIL'}"
            )
        if bad:
            hint = (
                ""
                if str(loaded.adapter.dtype) == "torch.float32"
                else " (expected in half precision: use --dtype float32)"
            )
            fail(f"incremental logits differ from the full forward by more than {tol:g} + {RTOL:g}·|logit|{hint}")
        return 0

    run_guarded(run)


def _probe_image():  # returns a numpy array; numpy is imported lazily
    import numpy as np

    return np.zeros((48, 64, 3), dtype=np.uint8)
