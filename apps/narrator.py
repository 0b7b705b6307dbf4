"""The narrator app: any source -> a narrating policy -> subtitles, speech, annotated video, files.

Thin wiring only: every part lives in its own module and is chosen by config.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from agentkit.config import NarratorConfig
from agentkit.loop import LoopConfig, RunSummary, StreamLoop
from agentkit.policy import make_policy
from agentkit.progress import ProgressSink
from agentkit.recorder import Recorder
from agentkit.sinks import Sink
from agentkit.sources import Source, open_source
from agentkit.tooling import ToolBox


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


def build_policy(cfg: NarratorConfig):
    kwargs: dict[str, Any] = dict(cfg.policy_args)
    if cfg.model is not None:
        kwargs["model"] = cfg.model
    return make_policy(cfg.policy, **kwargs)


async def run_narrator(cfg: NarratorConfig, *, progress: bool | None = None) -> RunSummary:
    """Run one narration end to end; outputs land in ``cfg.out`` even when the source fails half-way."""
    source = open_source(cfg.source, realtime=cfg.realtime, **({"max_width": cfg.max_width} if cfg.max_width else {}))
    policy = build_policy(cfg)
    gate = None
    if cfg.gate:
        from agentkit.policies.detector.gate import MotionGate

        gate = MotionGate()
    cfg.out.mkdir(parents=True, exist_ok=True)
    from agentkit.tools.narration.console import NarrateTool

    try:
        async with source:
            sinks = build_sinks(cfg, source, sys.stderr.isatty() if progress is None else progress)
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
            summary = await loop.run()
    finally:
        policy.close()
    metrics = dict(summary.metrics)
    metrics.update({"source": cfg.source, "policy": cfg.policy, "realtime": cfg.realtime, "error": summary.error})
    (Path(cfg.out) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return summary
