"""Drawing what the robot agent decided onto its camera frames (videos and the docs figure).

Why: a success rate says how often; an annotated video says why. Each frame shows the points of the
latest decision (the block and the target the policy found), its tool calls, and the robot's status.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from agentkit.types import Decision, Point

COLOURS = [(255, 220, 0), (0, 255, 120), (255, 80, 255), (0, 200, 255)]
LABELS = ["block", "target"]


def annotate(
    image: np.ndarray,
    points: Sequence[Point] = (),
    lines: Sequence[str] = (),
    labels: Sequence[str] = LABELS,
    scale: int = 2,
) -> np.ndarray:
    """A copy of ``image`` (RGB) upscaled by ``scale`` with crosshairs at ``points`` and text ``lines``."""
    h, w = image.shape[:2]
    out = cv2.resize(image, (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
    for i, p in enumerate(points):
        x, y = int(p.x * w * scale), int(p.y * h * scale)
        c = COLOURS[i % len(COLOURS)]
        cv2.drawMarker(out, (x, y), c, cv2.MARKER_CROSS, 18, 2)
        cv2.circle(out, (x, y), 10, c, 2)
        label = labels[i] if i < len(labels) else f"p{i}"
        text = f"{label} ({p.x:.2f},{p.y:.2f})"
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        tx = x + 12 if x + 12 + tw < w * scale else x - 12 - tw  # keep the label on the image
        cv2.putText(out, text, (tx, max(y - 8, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, c, 1, cv2.LINE_AA)
    if lines:
        band = out[: 8 + 18 * len(lines)]
        band[:] = (band * 0.35).astype(np.uint8)  # darken behind the text so it reads on any scene
    for j, line in enumerate(lines):
        cv2.putText(out, line, (8, 18 + 18 * j), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def decision_lines(decision: Decision | None) -> list[str]:
    if decision is None:
        return []
    lines = [f"{decision.kind.value}: {decision.text or ''}"[:70]]
    for call in decision.tool_calls:
        args = ", ".join(
            f"{k}=({v['x']:.2f},{v['y']:.2f})" if isinstance(v, dict) and "x" in v else f"{k}={v}"
            for k, v in call.arguments.items()
        )
        lines.append(f"-> {call.name}({args})"[:70])
    lines.extend(f"! {e}"[:70] for e in decision.errors)
    return lines
