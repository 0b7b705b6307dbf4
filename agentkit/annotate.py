"""The annotated video: what the policy saw, with its boxes, points, state and words drawn on it.

This is the picture a person checks first, so it carries everything needed to judge a run at a glance:
a state badge (SILENCE / STANDBY / RESPONSE), the latest Response as a caption for a few seconds, boxes
and points from the decision, executed actions, and the stream time with the capture->decision latency.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np

from agentkit.sinks import Sink
from agentkit.types import ActionResult, Decision, DecisionKind, Frame
from agentkit.video_io import Mp4Writer

_COLORS = {  # RGB
    DecisionKind.SILENCE: (120, 120, 120),
    DecisionKind.STANDBY: (255, 190, 0),
    DecisionKind.RESPONSE: (0, 200, 80),
}


def draw_decision(
    image: np.ndarray, decision: Decision, caption: str | None = None, actions: list[str] | None = None
) -> np.ndarray:
    """Return a copy of ``image`` with ``decision`` drawn on it (boxes, points, badge, caption)."""
    img = image.copy()
    h, w = img.shape[:2]
    scale = max(0.4, min(1.0, w / 900))
    thick = max(1, int(round(2 * scale)))
    color = _COLORS[decision.kind]
    for box in decision.boxes:
        x1, y1, x2, y2 = box.to_pixels(w, h)
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 220, 255), thick)
        if box.label:
            cv2.putText(
                img, box.label, (x1 + 2, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (0, 220, 255), thick
            )
    for p in decision.points:
        cv2.drawMarker(img, p.to_pixels(w, h), (255, 0, 0), cv2.MARKER_CROSS, int(18 * scale), thick + 1)
    for call in decision.tool_calls:
        pt = call.arguments.get("point") if isinstance(call.arguments, dict) else None
        if isinstance(pt, dict) and {"x", "y"} <= set(pt):
            x, y = int(float(pt["x"]) * w), int(float(pt["y"]) * h)
            cv2.circle(img, (x, y), int(12 * scale), (255, 0, 255), thick + 1)
            cv2.putText(img, call.name, (x + 8, y - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 0, 255), thick)
    # state badge and timing, top-left
    label = f"{decision.kind.value.upper()}  t={decision.pts:6.1f}s"
    if decision.latency_ms is not None:
        label += f"  {decision.latency_ms:5.0f} ms"
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale, 1)
    cv2.rectangle(img, (0, 0), (tw + 16, th + 12), (0, 0, 0), -1)
    cv2.circle(img, (7, th // 2 + 6), 4, color, -1)
    cv2.putText(img, label, (14, th + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    lines: list[str] = []
    if caption:
        lines += textwrap.wrap(caption, width=max(20, int(w / (11 * scale))))[:3]
    lines += (actions or [])[-2:]
    if lines:
        lh = int(24 * scale)
        top = h - lh * len(lines) - 10
        overlay = img.copy()
        cv2.rectangle(overlay, (0, top - 6), (w, h), (0, 0, 0), -1)
        img = cv2.addWeighted(overlay, 0.55, img, 0.45, 0)
        for i, line in enumerate(lines):
            cv2.putText(
                img,
                line,
                (10, top + lh * (i + 1) - 6),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.6 * scale,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
    return img


class AnnotatedVideoSink(Sink):
    """Writes every processed frame with its decision drawn; captions stay up for ``hold_s`` seconds."""

    def __init__(
        self, path: str | Path, *, fps: float = 10.0, hold_s: float = 3.0, max_width: int | None = 960
    ) -> None:
        self.video = Mp4Writer(path, fps=fps)
        self.hold_s = hold_s
        self.max_width = max_width
        self._caption: tuple[float, str] | None = None
        self._actions: list[str] = []

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        if decision.kind is DecisionKind.RESPONSE and decision.text:
            self._caption = (decision.pts, decision.text)
        caption = None
        if self._caption is not None and decision.pts - self._caption[0] <= self.hold_s:
            caption = self._caption[1]
        image = frame.image
        if self.max_width and image.shape[1] > self.max_width:
            hh = int(image.shape[0] * self.max_width / image.shape[1])
            image = cv2.resize(image, (self.max_width, hh), interpolation=cv2.INTER_AREA)
        self.video.write(draw_decision(image, decision, caption, self._actions), frame.pts)

    def on_action(self, result: ActionResult) -> None:
        status = "ok" if result.ok else f"error: {result.error}"
        self._actions.append(f"{result.call.name}: {status}"[:80])

    def close(self) -> None:
        self.video.close()
