"""The narrator app: any source -> a narrating policy -> subtitles, speech, annotated video, files.

Thin wiring only: every part lives in its own module and is chosen by config.

Stopping: once the source is open, SIGTERM (what systemd, Docker and Kubernetes send) and SIGINT (Ctrl-C)
both end the stream after the frame in progress; every sink then closes in the loop's ``finally`` (videos
get their index, speech its timeline track, the recording its ``meta.json``) and ``metrics.json`` is
written, so a stopped run is as complete as one that reached the end of its source. A second signal also
cancels the frame in progress and running actions (files are still closed); after it the default handlers
are back, so a third one kills the process at once. The signal is reported in
``RunSummary.metrics["stopped_by"]``; the CLI exits with 128 + its number (130 for SIGINT, 143 for
SIGTERM). Before the source is open (a model loading, a camera being probed) no file is open yet and the
signals keep their default effect.

Output folder: checked before anything starts (:func:`check_out`). A run never writes into the recording it
reads, and never mixes its files with an earlier run's: a folder holding any of :data:`OUTPUT_NAMES` is
refused unless ``replace`` (``--force``), and then those files are deleted only once the source has opened.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from agentkit.config import NarratorConfig
from agentkit.errors import ConfigError
from agentkit.loop import LoopConfig, RunSummary, StreamLoop
from agentkit.metrics import StreamMetrics
from agentkit.policy import Policy, make_policy
from agentkit.progress import ProgressSink
from agentkit.recorder import Recorder, check_output_dir, remove_outputs
from agentkit.sinks import Sink
from agentkit.sources import Source, open_source
from agentkit.tooling import ToolBox

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

OUTPUT_NAMES = (
    "decisions.jsonl",
    "actions.jsonl",
    "messages.jsonl",
    "narration.srt",
    "narration.vtt",
    "narration.wav",
    "speech",
    "annotated.mp4",
    "metrics.json",
    "frames.mp4",
    "meta.json",
    "eval.json",  # written next to them by ``eval narration`` (scripts/demo.sh): it scores the old decisions
)
"""What a narration run writes into its folder: an earlier run's copies are never mixed with a new run's."""


class StopOnSignal:
    """Within an asyncio loop: the first SIGINT/SIGTERM stops a :class:`StreamLoop`, a second cancels the run.

    A signal the process was started with ignored (``nohup``, a background job of a non-interactive
    shell) stays ignored. Where signal handlers cannot be installed (not the main thread, Windows), this
    does nothing and the default behaviour stays.

    Example:
        >>> async def main(loop: StreamLoop) -> None:  # doctest: +SKIP
        ...     with StopOnSignal() as stopper:
        ...         stopper.attach(loop)
        ...         await loop.run()
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
        self.signals = signals
        self.received: signal.Signals | None = None  # the first signal
        self.forced = False  # a second signal came: the run was cancelled
        self._installed: list[signal.Signals] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self.target: StreamLoop | None = None  # the stream to stop, once it exists

    def __enter__(self) -> StopOnSignal:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for sig in self.signals:
            if signal.getsignal(sig) is signal.SIG_IGN:
                continue
            try:
                self._loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
                continue
            self._installed.append(sig)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._restore()

    def attach(self, target: StreamLoop) -> None:
        """The stream to stop; stopped at once when a signal came before it existed."""
        self.target = target
        if self.received is not None:
            target.stop()

    def _restore(self) -> None:
        assert self._loop is not None or not self._installed
        for sig in self._installed:
            if self._loop is not None:
                self._loop.remove_signal_handler(sig)
        self._installed = []

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.received is None:
            self.received = sig
            log.warning("%s: stopping after the frame in progress (send it again to stop at once)", sig.name)
            if self.target is not None:
                self.target.stop()
            return  # no stream yet (opening the source): attach() stops it before its first frame
        log.warning("%s again: cancelling the frame in progress; closing the files", sig.name)
        self.forced = True
        self._restore()  # a third signal gets the default behaviour (ends the process at once)
        if self._task is not None:
            self._task.cancel()


def build_sinks(cfg: NarratorConfig, source: Source, progress: bool) -> list[Sink]:
    from agentkit.annotate import AnnotatedVideoSink
    from agentkit.tools.narration.console import ConsoleSink, MessageSink
    from agentkit.tools.narration.subtitles import SubtitleSink

    out, o = cfg.out, cfg.outputs
    fps = source.fps or 10.0
    sinks: list[Sink] = [ConsoleSink()]
    if progress:
        total = getattr(source, "duration_s", None) if not cfg.realtime or source.lossless else None
        sinks.append(ProgressSink(total))
    if o.srt:
        sinks.append(SubtitleSink(out / "narration.srt", hold_s=o.subtitle_hold_s))
    if o.vtt:
        sinks.append(SubtitleSink(out / "narration.vtt", hold_s=o.subtitle_hold_s))
    if o.messages:
        sinks.append(MessageSink(out / "messages.jsonl"))
    if o.annotated:
        sinks.append(AnnotatedVideoSink(out / "annotated.mp4", fps=fps, max_width=o.annotated_max_width))
    if cfg.tts:
        from agentkit.tools.narration.speech import SpeechSink

        sinks.append(SpeechSink(out, voice=cfg.voice))
    return sinks


def build_policy(cfg: NarratorConfig) -> Policy:
    """The policy ``cfg`` names, with ``--model`` and the policy arguments.

    Raises:
        ConfigError: a policy that needs a model got none (the message names ``--model``), or a bad
            policy argument.
        KeyError: an unknown policy name (with the known names).
    """
    kwargs: dict[str, Any] = dict(cfg.policy_args)
    if cfg.model is not None:
        kwargs["model"] = cfg.model
    try:
        return make_policy(cfg.policy, **kwargs)
    except (TypeError, ConfigError) as e:
        # A model policy built without one fails in its constructor, with a TypeError (a required
        # ``model`` argument) or its config's error; either way the CLI user needs to hear about --model.
        if "model" not in kwargs and re.search(r"\bmodel\b", str(e)):
            raise ConfigError(
                f"--policy {cfg.policy} needs a model: pass --model PATH (a checkpoint folder or hub id)"
            ) from None
        raise


def check_out(cfg: NarratorConfig, *, replace: bool = False) -> list[Path]:
    """Check ``cfg.out`` before a run; returns an earlier run's files there (replaced when ``replace``).

    Raises:
        ConfigError: ``out`` is (or lies inside) the recording being read, is a file, cannot be written,
            or holds an earlier run's outputs and ``replace`` is false.
    """
    return check_output_dir(cfg.out, OUTPUT_NAMES, replace=replace, reading=cfg.source)


async def run_narrator(
    cfg: NarratorConfig, *, progress: bool | None = None, replace: bool = False, sinks: Sequence[Sink] = ()
) -> RunSummary:
    """Run one narration end to end; outputs land in ``cfg.out`` even when the source fails half-way.

    ``sinks`` are added to the run's own (a live dashboard, a Rerun log); the loop closes them with the others.

    The output folder is checked first (:func:`check_out`); with ``replace`` an earlier run's files in it
    are deleted once the source has opened. SIGINT and SIGTERM end the run cleanly (see the module
    docstring); the summary's ``metrics["stopped_by"]`` then names the signal, and ``metrics.json`` is
    written all the same.

    Raises:
        ConfigError: the output folder cannot take this run (see :func:`check_out`).
        SourceError: the source cannot be opened.
    """
    earlier = check_out(cfg, replace=replace)
    stopper = StopOnSignal()
    try:
        summary = await _run(cfg, progress, stopper, earlier, sinks)
    except asyncio.CancelledError:
        if not stopper.forced:
            raise
        _uncancel()  # our own cancel (a second signal): the loop closed every sink on its way out
        stream = stopper.target
        summary = RunSummary((stream.metrics if stream is not None else StreamMetrics()).summary())
    if stopper.received is not None:
        summary.metrics["stopped_by"] = stopper.received.name
    _write_metrics(cfg, summary)
    return summary


async def _run(
    cfg: NarratorConfig, progress: bool | None, stopper: StopOnSignal, earlier: list[Path], extra: Sequence[Sink] = ()
) -> RunSummary:
    source = open_source(cfg.source, realtime=cfg.realtime, **({"max_width": cfg.max_width} if cfg.max_width else {}))
    policy = build_policy(cfg)
    gate = None
    if cfg.gate:
        from agentkit.policies.detector.gate import make_gate

        gate = make_gate(cfg.policy)  # MotionGate for the detector; the narrator's event cue for a model
    cfg.out.mkdir(parents=True, exist_ok=True)
    from agentkit.tools.narration.console import NarrateTool

    try:
        # Signals are ours only while files are open: until then (loading a model, opening a camera) Ctrl-C
        # interrupts at once and SIGTERM ends the process, with nothing half-written to lose.
        async with source:
            with stopper:
                remove_outputs(earlier)  # the source opened: now the earlier run's files may go
                sinks = build_sinks(cfg, source, sys.stderr.isatty() if progress is None else progress) + list(extra)
                recorder = Recorder(
                    cfg.out,
                    frames=cfg.outputs.record_frames,
                    fps=source.fps or 10.0,
                    meta={"source": cfg.source, "policy": cfg.policy, "model": cfg.model},
                )
                loop = StreamLoop(
                    source,
                    policy,
                    toolbox=ToolBox([NarrateTool()]),
                    sinks=sinks,
                    gate=gate,
                    recorder=recorder,
                    config=LoopConfig(max_frames=cfg.max_frames, duration_s=cfg.duration_s),
                )
                stopper.attach(loop)
                return await loop.run()
    finally:
        policy.close()


def _write_metrics(cfg: NarratorConfig, summary: RunSummary) -> None:
    metrics = dict(summary.metrics)
    metrics.update({"source": cfg.source, "policy": cfg.policy, "realtime": cfg.realtime, "error": summary.error})
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out) / "metrics.json").write_text(json.dumps(metrics, indent=2))


def _uncancel() -> None:
    """Undo the cancellation we requested ourselves (Python 3.11+ counts them on the task)."""
    task = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()
