"""``agentkit browse``: a GUI agent acting live on a web page, with an annotated replay.

Thin wiring of the browser use case: a :class:`~agentkit.envs.gui.browser.BrowserSource` (screencast +
screenshots, allowlist) feeding the :class:`~agentkit.loop.StreamLoop`, a GUI policy, and the GUI tools on
the same page as the executor. The one annotator (:class:`~agentkit.annotate.AnnotatedVideoSink`) draws
every click and typed text on the frames into an mp4 or GIF replay, so a run can be checked by eye.
"""

from __future__ import annotations

import logging
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agentkit.annotate import AnnotatedVideoSink
from agentkit.errors import ConfigError, ToolError
from agentkit.sinks import Sink
from agentkit.testing import CaptureSink
from agentkit.types import ActionResult, Decision, DecisionKind, Frame

if TYPE_CHECKING:
    from agentkit.envs.gui.browser import BrowserSession

log = logging.getLogger(__name__)


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


class _KeepOpen(Sink):
    """Forwards to a sink but leaves closing it to the caller (the replay gets one more frame after the loop)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        self.sink.on_decision(decision, frame)

    def on_action(self, result: ActionResult) -> None:
        self.sink.on_action(result)


def _card(width: int, height: int, text: str) -> np.ndarray:
    """A dark frame with ``text`` on it: the replay's only frame when the page never showed one."""
    image = np.full((height, width, 3), 32, np.uint8)
    for i, line in enumerate(textwrap.wrap(text, max(20, width // 11))[:12]):
        cv2.putText(image, line, (12, 36 + 26 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 200, 200), 1, cv2.LINE_AA)
    return image


async def _finish_replay(replay: AnnotatedVideoSink, session: BrowserSession, failure: str | None) -> str | None:
    """Add the page as it is now (or the last frame seen, or a card) and close the replay.

    Never raises: it runs while another error may be on its way out. Returns why the replay could not
    be written, if it could not.
    """
    image, status = None, ""
    if failure is None and session.page is not None:
        try:
            if not session.alive:
                raise ToolError("hung or crashed")
            image = (await session.screenshot()).image  # the page after the last action
        except Exception:
            status = "page unresponsive at the end: last frame seen"
    if image is None and session.latest is not None:
        image, status = session.latest.image, status or "last frame seen"
    try:
        if image is None:
            cfg = session.config
            image = _card(cfg.width, cfg.height, f"no page frame: {failure or 'the page never showed one'}")
        replay.add_frame(image, status=status)
    except Exception as e:  # a frame that cannot be drawn must not keep the others from the file
        log.exception("adding the last frame to the replay failed")
        problem: str | None = f"last replay frame not written: {e}"
    else:
        problem = None
    try:
        replay.close()
    except Exception as e:
        log.exception("writing the replay %s failed", replay.path)
        problem = f"replay not written: {e}"
    return problem


async def run_browse(cfg: BrowseConfig, sinks: Sequence[Sink] = ()) -> dict[str, Any]:
    """Open the page, run the policy through the stream loop, write the replay; returns a summary.

    ``sinks`` are added to the loop's (a live dashboard, a Rerun log).

    The replay is always written, with every frame seen so far, whatever happened: a page that hangs or
    crashes is restarted by the source (each time an entry in ``errors``) and the run goes on; if the
    browser cannot start or the page never loads, the error is raised after the replay (then a single
    card saying why) is closed.
    """
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
    replay = AnnotatedVideoSink(cfg.out, fps=2.0, use_pts=False, max_width=None)
    seen = CaptureSink()
    t0 = time.monotonic()
    failure: str | None = None
    replay_problem: str | None = None
    try:
        await session.start()
        source = BrowserSource(url, session=session)
        await source.open()
        loop = StreamLoop(
            source,
            policy,
            toolbox=gui_toolbox(PlaywrightBackend(session)),
            sinks=[seen, _KeepOpen(replay), *sinks],
            config=LoopConfig(max_frames=cfg.steps, duration_s=cfg.duration_s),
        )
        loop.instruct(cfg.task)
        summary = await loop.run()
    except BaseException as e:
        failure = (str(e).splitlines() or [type(e).__name__])[0] or type(e).__name__
        raise
    finally:
        try:
            replay_problem = await _finish_replay(replay, session, failure)  # the replay so far, always
        finally:
            await session.close()
            policy.close()
    errors = list(session.errors)
    if summary.error:
        errors.append(f"run ended early: {summary.error}")
    if replay_problem:
        errors.append(replay_problem)
    return {
        "url": url,
        "task": cfg.task,
        "loop": {k: summary.metrics.get(k) for k in ("frames_in", "processed", "dropped", "responses")},
        "loop_error": summary.error,
        "decisions": len(seen.decisions),
        "responses": sum(d.kind is DecisionKind.RESPONSE for d in seen.decisions),
        "actions": [r.to_dict() for r in seen.actions],
        "errors": errors,
        "page": {"restarts": session.restarts, "hangs": session.hangs, "crashes": session.crashes},
        "blocked_requests": list(session.blocked),
        "popups": list(session.popups),
        "sandboxed": session.sandboxed,
        "sandbox_note": session.sandbox_note,
        "replay": str(cfg.out),
        "replay_frames": replay.frames,
        "seconds": round(time.monotonic() - t0, 2),
    }
