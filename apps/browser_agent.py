"""``agentkit browse``: a GUI agent acting live on a web page, with an annotated replay.

Why this module exists: it is the thin wiring of the browser use case - a
:class:`~agentkit.envs.gui.browser.BrowserSource` (screencast + screenshots, allowlist) feeding the lead's
:class:`~agentkit.loop.StreamLoop`, a GUI policy, and the GUI tools on the same page as the executor.
An :class:`AnnotatingSink` draws every click and typed text on the frames and writes an mp4 or GIF
replay, so a run can be checked by eye.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agentkit.errors import ConfigError
from agentkit.sinks import Sink
from agentkit.types import ActionResult, Decision, DecisionKind, Frame


class BrowseConfig(BaseModel):
    """Settings of one ``agentkit browse`` run (field errors name the field and the value)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    task: str = Field(min_length=1)
    policy: str = "ocr"
    out: str = "browse_replay.mp4"
    steps: int = Field(5, ge=1, le=1000)
    duration_s: float = Field(60.0, gt=0)
    allow_hosts: list[str] = Field(default_factory=list)
    width: int | None = Field(None, ge=64, le=3840)
    height: int | None = Field(None, ge=64, le=2160)
    model: str | None = None
    browser: dict[str, Any] = Field(default_factory=dict)  # the ``browser:`` section of configs/browser.yaml


def resolve_url(url: str) -> tuple[str, list[str], list[str]]:
    """URL or local path -> (url, hosts to allow, file roots to allow). The page's own origin is allowed."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        return url, [parsed.hostname or ""], []
    if parsed.scheme == "file":
        path = Path(parsed.path)
    elif not parsed.scheme:
        path = Path(url).resolve()
        if not path.exists():
            raise ConfigError(f"page not found: {url}")
    else:
        raise ConfigError(f"unsupported URL scheme {parsed.scheme!r} in {url!r} (http, https, file or a path)")
    return path.as_uri(), [], [str(path.parent)]


def annotate(image: np.ndarray, decision: Decision | None, results: list[ActionResult]) -> np.ndarray:
    """Draw the decision's clicks (red circles) and typed text (banner) on a copy of ``image``."""
    out = image.copy()
    h, w = out.shape[:2]
    if decision is not None:
        for box in decision.boxes:
            x1, y1, x2, y2 = box.to_pixels(w, h)
            cv2.rectangle(out, (x1, y1), (x2, y2), (0, 160, 255), 2)
        n = 0
        for call in decision.tool_calls:
            pt = call.arguments.get("point") if isinstance(call.arguments, dict) else None
            if isinstance(pt, dict) and "x" in pt and "y" in pt:
                n += 1
                cx, cy = int(float(pt["x"]) * w), int(float(pt["y"]) * h)
                cv2.circle(out, (cx, cy), max(6, w // 60), (255, 0, 0), 3)
                cv2.putText(out, str(n), (cx + 8, cy - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 0, 0), 2)
            elif call.name in ("type", "key"):
                text = call.arguments.get("text") or "+".join(call.arguments.get("keys", []))
                cv2.rectangle(out, (0, h - 34), (w, h), (0, 0, 0), -1)
                cv2.putText(
                    out, f"{call.name}: {text}"[:80], (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2
                )
    errors = [r.error for r in results if not r.ok and r.error]
    if decision is not None:
        errors = list(decision.errors) + errors
    if errors:
        cv2.putText(out, errors[0][:90], (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (220, 0, 0), 2)
    return out


class AnnotatingSink(Sink):
    """Keeps annotated frames of Response decisions (and a few context frames) for the replay."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, np.ndarray]] = []
        self.results: list[ActionResult] = []
        self.decisions: list[Decision] = []

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        self.decisions.append(decision)
        self.frames.append((frame.pts, annotate(frame.image, decision, [])))

    def on_action(self, result: ActionResult) -> None:
        self.results.append(result)

    def write(self, path: str | Path, fps: float = 2.0) -> int:
        """Write the replay (mp4 via PyAV, GIF via Pillow); returns the number of frames written."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = [img for _, img in self.frames]
        if not frames:
            return 0
        if path.suffix.lower() == ".gif":
            from PIL import Image

            imgs = [Image.fromarray(f) for f in frames]
            imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)
        else:
            from agentkit.video_io import Mp4Writer

            writer = Mp4Writer(path, fps=fps)
            try:
                for k, f in enumerate(frames):
                    writer.write(f, k / fps)
            finally:
                writer.close()
        return len(frames)


async def run_browse(cfg: BrowseConfig) -> dict[str, Any]:
    """Open the page, run the policy through the stream loop, write the replay; returns a summary."""
    from agentkit.config import validate
    from agentkit.envs.gui.browser import BrowserConfig, BrowserSession, BrowserSource, PlaywrightBackend
    from agentkit.loop import LoopConfig, StreamLoop
    from agentkit.policy import make_policy
    from agentkit.tools.gui import gui_toolbox

    url, hosts, roots = resolve_url(cfg.url)
    base = {"width": 800, "height": 600, "screenshot_interval_s": 0.5, **cfg.browser}
    base["width"] = cfg.width or base["width"]
    base["height"] = cfg.height or base["height"]
    base["allow_hosts"] = [*base.get("allow_hosts", []), *hosts, *cfg.allow_hosts]
    base["allow_file_roots"] = [*base.get("allow_file_roots", []), *roots]
    bcfg = validate(BrowserConfig, base, where="browser")
    policy = make_policy(cfg.policy, **({"model": cfg.model} if cfg.model else {}))
    session = BrowserSession(bcfg)
    await session.start()
    sink = AnnotatingSink()
    t0 = time.monotonic()
    try:
        source = BrowserSource(url, session=session)
        await source.open()
        loop = StreamLoop(
            source,
            policy,
            toolbox=gui_toolbox(PlaywrightBackend(session)),
            sinks=[sink],
            config=LoopConfig(max_frames=cfg.steps, duration_s=cfg.duration_s),
        )
        loop.instruct(cfg.task)
        summary = await loop.run()
        final = await session.screenshot()
        sink.frames.append((final.pts, annotate(final.image, None, [])))
    finally:
        await session.close()
        policy.close()
    n = sink.write(cfg.out)
    return {
        "url": url,
        "task": cfg.task,
        "loop": {k: summary.metrics.get(k) for k in ("frames_in", "processed", "dropped", "responses")},
        "loop_error": summary.error,
        "decisions": len(sink.decisions),
        "responses": sum(d.kind is DecisionKind.RESPONSE for d in sink.decisions),
        "actions": [r.to_dict() for r in sink.results],
        "blocked_requests": list(session.blocked),
        "replay": str(cfg.out),
        "replay_frames": n,
        "seconds": round(time.monotonic() - t0, 2),
    }
