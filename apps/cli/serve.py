"""CLI of the server: ``agentkit serve`` and ``agentkit bench serve``.

FastAPI, uvicorn and torch are imported inside the commands, so ``agentkit --help`` stays fast and works
without the ``serve`` extra.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer

from agentkit.apps.cli.common import (
    MQTT_PASSWORD_FILE,
    MQTT_TLS_CA,
    MQTT_TLS_CERT,
    MQTT_TLS_KEY,
    MQTT_USERNAME,
    check_writable,
    fail,
    mqtt_auth,
    run_guarded,
)
from agentkit.apps.cli.groups import app, bench_app
from agentkit.policies.vlm.architectures import ARCH_NAMES

_ARCHS = ", ".join(ARCH_NAMES)
_BENCH_COLUMNS = (
    "streams",
    "batched_fps",
    "sequential_fps",
    "speedup",
    "speedup_paired_median",
    "speedup_min",
    "speedup_max",
    "p50_ms",
    "p95_ms",
    "sequential_p95_ms",
    "mean_batch",
    "decisions_equal",
)


def _passive_omp_threads() -> None:
    """Idle OpenMP threads sleep instead of spinning (set before torch is imported; the user's value wins).

    On a machine whose cores are shared with other work, spinning threads of a multi-threaded torch op wait
    for a descheduled sibling and slow every op down many times; measured here: 2 threads without it were
    several times slower than 1 under load, with it faster."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _require_serve_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        fail(f"agentkit serve needs the serve extra: pip install 'agentkit[serve]' ({e.name} is missing)")


@app.command("serve")
def serve_cmd(
    model: str = typer.Option(None, "--model", "-m", help="Checkpoint folder (or hub id where reachable)."),
    arch: str = typer.Option(None, "--arch", help=f"Serve random weights of this architecture instead: {_ARCHS}."),
    size: str = typer.Option("tiny", "--size", help="With --arch: tiny | 2b | 7b."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (not loopback: needs --api-key)."),
    port: int = typer.Option(8000, "--port", help="Port (0: any free one; the first line says which)."),
    api_key: str = typer.Option(
        None, "--api-key", envvar="AGENTKIT_API_KEY", help="Bearer token required on every endpoint."
    ),
    served_model_name: str = typer.Option(None, "--served-model-name", help="Model id in /v1/models."),
    max_streams: int = typer.Option(64, "--max-streams", help="Most streams at once (429 beyond)."),
    max_cache_mb: float = typer.Option(2048.0, "--max-cache-mb", help="KV cache budget of all streams."),
    stream_idle_s: float = typer.Option(None, "--stream-idle-s", help="Delete streams idle this long."),
    max_request_mb: float = typer.Option(32.0, "--max-request-mb", help="Largest request body / WS message."),
    max_image_mb: float = typer.Option(8.0, "--max-image-mb", help="Largest encoded image."),
    max_image_pixels: int = typer.Option(4096 * 4096, "--max-image-pixels", help="Largest image, w x h."),
    image_urls: bool = typer.Option(True, "--image-urls/--no-image-urls", help="Fetch http(s) image URLs."),
    max_batch: int = typer.Option(8, "--max-batch", help="Most streams in one forward (1: no batching)."),
    batch_window_ms: float = typer.Option(5.0, "--batch-window-ms", help="Wait for the last batches' streams."),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads."),
    prepare_workers: int = typer.Option(2, "--prepare-workers", help="Threads preparing frames ahead."),
    device: str = typer.Option(None, "--device", help="cpu | cuda (default: cuda when available)."),
    dtype: str = typer.Option(None, "--dtype", help="float32 | bfloat16 | float16."),
    policy_arg: list[str] = typer.Option(
        None, "--policy-arg", "-a", help="KEY=VALUE for every stream's VLM policy (prompt, window_s...)."
    ),
    mqtt: str = typer.Option(
        None,
        "--mqtt",
        help="Instead of HTTP: be a worker of the stream pool on this broker (mqtt[s]://host:port; docs/scale-out.md).",
    ),
    worker_id: str = typer.Option(
        None, "--worker-id", help="With --mqtt: this worker's id (default: --username, else HOST-PID)."
    ),
    rebuild_frames: int = typer.Option(4, "--rebuild-frames", help="With --mqtt: frames replayed on a takeover."),
    username: str | None = MQTT_USERNAME,
    password_file: Path | None = MQTT_PASSWORD_FILE,
    tls_ca: Path | None = MQTT_TLS_CA,
    tls_cert: Path | None = MQTT_TLS_CERT,
    tls_key: Path | None = MQTT_TLS_KEY,
) -> None:
    """Serve the streaming engine: OpenAI chat completions + WebSocket, one KV cache per stream.

    With --mqtt: a worker of a pool sharing the streams of an MQTT broker (no HTTP listener).
    """

    def run() -> int:
        from agentkit.apps.cli.narrate import parse_key_values
        from agentkit.apps.serve.config import ServeConfig
        from agentkit.config import validate

        if mqtt is None:
            _require_serve_extra()
        _passive_omp_threads()
        config = validate(
            ServeConfig,
            {
                "model": model,
                "arch": arch,
                "size": size,
                "host": host,
                "port": port,
                "api_key": api_key,
                "served_model_name": served_model_name,
                "max_streams": max_streams,
                "max_cache_mb": max_cache_mb,
                "stream_idle_s": stream_idle_s,
                "max_request_mb": max_request_mb,
                "max_image_mb": max_image_mb,
                "max_image_pixels": max_image_pixels,
                "allow_image_urls": image_urls,
                "max_batch": max_batch,
                "batch_window_ms": batch_window_ms,
                "threads": threads,
                "prepare_workers": prepare_workers,
                "device": device,
                "dtype": dtype,
                "policy": parse_key_values(policy_arg) if policy_arg else {},
            },
            where="serve",
        ).check()
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        def announce(line: str) -> None:
            typer.echo(line)
            sys.stdout.flush()

        if mqtt is not None:
            _run_mqtt_worker(config, announce)
            return 0
        from agentkit.apps.serve.server import serve

        serve(config, announce=announce)
        return 0

    def _run_mqtt_worker(config: Any, announce: Any) -> None:
        import re
        import socket

        from agentkit.apps.serve.mqtt_worker import MqttWorkerConfig, run_worker
        from agentkit.config import validate

        try:
            import aiomqtt  # noqa: F401
        except ImportError:
            fail("agentkit serve --mqtt needs aiomqtt: pip install 'agentkit[mqtt]'")
        auth = mqtt_auth(username, password_file, tls_ca, tls_cert, tls_key)
        host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname().split(".")[0])[:48] or "worker"
        default_id = username or f"{host}-{os.getpid()}"
        worker_config = validate(
            MqttWorkerConfig,
            {"broker": mqtt, "worker_id": worker_id or default_id, "rebuild_frames": rebuild_frames},
            where="serve --mqtt",
        )
        run_worker(config, worker_config, auth, announce=announce)

    run_guarded(run)


@bench_app.command("serve")
def bench_serve(
    arch: str = typer.Option("qwen2_vl", "--arch", help=f"Architecture: {_ARCHS}."),
    size: str = typer.Option("tiny", "--size", help="tiny | 2b | 7b (random weights)."),
    streams: str = typer.Option("1,4,8,16", "--streams", help="Numbers of concurrent streams, comma-separated."),
    frames: int = typer.Option(32, "--frames", help="Frames per stream."),
    repeats: int = typer.Option(3, "--repeats", help="Measurements per row (medians)."),
    tokens_per_frame: int = typer.Option(None, "--tokens-per-frame", help="Vision tokens per frame."),
    max_batch: int = typer.Option(None, "--max-batch", help="Most streams per forward (default: all)."),
    window_ms: float = typer.Option(5.0, "--batch-window-ms", help="The scheduler's wait for stragglers."),
    prepare_workers: int = typer.Option(2, "--prepare-workers", help="Threads preparing frames ahead."),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads."),
    device: str = typer.Option(None, "--device", help="cpu | cuda."),
    dtype: str = typer.Option(None, "--dtype", help="float32 | bfloat16 | float16."),
    json_out: Path = typer.Option(None, "--json", help="Write the report JSON here."),
) -> None:
    """Aggregate frames/s and latency per stream: batched vs one stream at a time, in the same run."""

    def run() -> int:
        _passive_omp_threads()
        import torch
        from rich.console import Console

        from agentkit.apps.cli.vlm import _ints
        from agentkit.benchmarks.report import print_report
        from agentkit.benchmarks.serve import ServeBenchConfig, run_bench
        from agentkit.policies.vlm.build import SIZES

        if arch not in ARCH_NAMES:
            fail(f"--arch must be one of {_ARCHS}, got {arch!r}")
        if size not in SIZES:
            fail(f"--size must be one of {', '.join(SIZES)}, got {size!r}")
        if frames < 2:
            fail(f"--frames must be >= 2, got {frames}")
        check_writable(json_out)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if threads:
            torch.set_num_threads(threads)
        cfg = ServeBenchConfig(
            arch=arch,
            size=size,
            streams=_ints(streams, "--streams"),
            frames=frames,
            repeats=max(1, repeats),
            tokens_per_frame=tokens_per_frame,
            max_batch=max_batch,
            window_ms=window_ms,
            prepare_workers=prepare_workers,
            device=device,
            dtype=dtype,
        )
        try:
            report = run_bench(cfg, lambda name, done, total: typer.echo(f"  {name}: {done}/{total}", err=True))
        except ValueError as e:
            fail(str(e))
        env = report.environment
        typer.echo(
            f"bench serve: {arch} {size} on {env['device']} ({env['dtype']}, {env['torch_threads']} threads, "
            f"{os.cpu_count()} CPUs)"
        )
        print_report(report, _BENCH_COLUMNS, console=None if sys.stdout.isatty() else Console(width=160))
        if json_out:
            typer.echo(f"wrote {report.write(json_out)}")
        return 0

    run_guarded(run)


@app.command("stream-publish")
def stream_publish(
    source: str = typer.Argument(..., help="What to publish: a video file, URL, camera:N, screen, test-pattern."),
    broker: str = typer.Option("mqtt://127.0.0.1:1883", "--broker", help="mqtt[s]://host:port of the pool's broker."),
    stream: str = typer.Option(..., "--stream", help="The stream's name (topics agentkit/streams/<name>/...)."),
    fps: float = typer.Option(2.0, "--fps", help="Frames per second sent (the source's others are skipped)."),
    max_width: int = typer.Option(640, "--max-width", help="Frames wider than this are scaled down."),
    instruction: str = typer.Option(None, "--instruction", help="The stream's task (retained config: the sink)."),
    prompt: str = typer.Option(None, "--prompt", help="The stream's system prompt (retained config)."),
    max_frames: int = typer.Option(None, "--max-frames", help="Stop after this many frames."),
    username: str | None = MQTT_USERNAME,
    password_file: Path | None = MQTT_PASSWORD_FILE,
    tls_ca: Path | None = MQTT_TLS_CA,
    tls_cert: Path | None = MQTT_TLS_CERT,
    tls_key: Path | None = MQTT_TLS_KEY,
) -> None:
    """A camera of the stream pool: publish SOURCE's frames for `agentkit serve --mqtt` workers."""

    def run() -> int:
        import asyncio
        import time

        from agentkit.errors import ConfigError
        from agentkit.sources import open_source
        from agentkit.transport.mqtt.streams import StreamPublisher, check_stream, mqtt_client

        if fps <= 0:
            fail(f"--fps must be > 0, got {fps}")
        try:
            check_stream(stream)
        except ValueError as e:
            raise ConfigError(f"--stream: {e}") from None
        auth = mqtt_auth(username, password_file, tls_ca, tls_cert, tls_key)

        async def go() -> int:
            import cv2

            src = open_source(source, realtime=True)
            sent = 0
            async with src, mqtt_client(broker, auth=auth, timeout=10) as client:
                cam = StreamPublisher(client, stream)
                if instruction is not None or prompt is not None:
                    await cam.configure(prompt=prompt, instruction=instruction)
                next_t = 0.0
                async for frame in src.frames():
                    now = time.monotonic()
                    if now < next_t:
                        continue
                    next_t = max(now, next_t) + 1.0 / fps
                    image = frame.image
                    if max_width and image.shape[1] > max_width:
                        h = max(1, round(image.shape[0] * max_width / image.shape[1]))
                        image = cv2.resize(image, (max_width, h), interpolation=cv2.INTER_AREA)
                    await cam.publish(image, pts=frame.pts)
                    sent += 1
                    if max_frames is not None and sent >= max_frames:
                        break
            typer.echo(f"stream-publish: {sent} frames of {source} on {broker} as stream {stream}")
            return 0

        try:
            return asyncio.run(go())
        except KeyboardInterrupt:
            return 0

    run_guarded(run)


@app.command("stream-record")
def stream_record(
    broker: str = typer.Option("mqtt://127.0.0.1:1883", "--broker", help="mqtt[s]://host:port of the pool's broker."),
    out: Path = typer.Option(Path("decisions.jsonl"), "--out", help="JSONL file (appended): one line per record."),
    stream: list[str] = typer.Option(None, "--stream", help="Only these streams (repeat; default: all)."),
    client_id: str = typer.Option(
        None, "--client-id", help="A fixed MQTT client id: the broker keeps decisions for it while it is away."
    ),
    duration_s: float = typer.Option(None, "--duration-s", help="Stop after this many seconds (default: SIGINT)."),
    username: str | None = MQTT_USERNAME,
    password_file: Path | None = MQTT_PASSWORD_FILE,
    tls_ca: Path | None = MQTT_TLS_CA,
    tls_cert: Path | None = MQTT_TLS_CERT,
    tls_key: Path | None = MQTT_TLS_KEY,
) -> None:
    """The stream pool's consumer: record every stream's decisions once (duplicates dropped, skips explained)."""

    def run() -> int:
        import asyncio
        import json

        from agentkit.transport.mqtt.streams import DecisionRecorder

        check_writable(out)
        auth = mqtt_auth(username, password_file, tls_ca, tls_cert, tls_key)

        async def go() -> int:
            rec = DecisionRecorder(broker, out, streams=stream or None, auth=auth, client_id=client_id)
            await rec.start()
            typer.echo(f"stream-record: recording decisions from {broker} into {out}")
            sys.stdout.flush()
            try:
                if duration_s is None:
                    await asyncio.Event().wait()
                else:
                    await asyncio.sleep(duration_s)
            finally:
                await rec.close()
                stats = rec.book.stats
                summary = {"decisions": stats.decisions, "skipped": stats.skipped, "duplicates": stats.duplicates}
                summary["gaps"] = {f"{k[0]}/{k[1]}": v for k, v in rec.book.gaps().items()}
                typer.echo(f"stream-record: {json.dumps(summary)} -> {out}")
            return 0

        try:
            return asyncio.run(go())
        except KeyboardInterrupt:
            return 0

    run_guarded(run)
