"""Contact sheets of narrated events: what the narrator saw when it spoke, its decision drawn on the frame.

Used by ``agentkit bench detector --sheet`` to make the picture in docs/detector.md, and handy to check a
new camera by eye. Only small thumbnails of Response frames are kept, never whole frames.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from agentkit.annotate import draw_decision
from agentkit.types import Box, Decision, Frame

_LEFT = (230, 40, 40)  # where people left: red


def event_thumbnail(frame: Frame, decision: Decision, width: int = 256) -> np.ndarray:
    """A ``width``-wide thumbnail of ``frame`` with ``decision`` drawn by the one annotator.

    People in view are the decision's boxes; where people left (the detector's ``meta["departed"]``) is
    drawn in red; the Response text is the caption.
    """
    h = max(1, round(frame.height * width / frame.width))
    img = cv2.resize(frame.image, (width, h), interpolation=cv2.INTER_AREA)
    departed = decision.meta.get("departed", []) if isinstance(decision.meta, dict) else []
    extra = [(Box(d["x1"], d["y1"], d["x2"], d["y2"]), _LEFT) for d in departed]
    return draw_decision(img, decision, decision.text, extra_boxes=extra, min_width=width)


def contact_sheet(thumbs: list[np.ndarray], cols: int = 4) -> np.ndarray:
    """Tile equally sized thumbnails row by row (the last row padded with black)."""
    if not thumbs:
        raise ValueError("no thumbnails to tile")
    blank = np.zeros_like(thumbs[0])
    cells = list(thumbs) + [blank] * (-len(thumbs) % cols)
    return np.vstack([np.hstack(cells[i : i + cols]) for i in range(0, len(cells), cols)])


def save_png(path: str | Path, rgb: np.ndarray, step: int = 8) -> Path:
    """Write an RGB image as a maximally compressed PNG, quantized to ``256 / step`` levels per channel.

    Quantizing (step 8: 32 levels) roughly halves the file with no visible change at thumbnail size,
    which keeps pictures committed to docs/ small.
    """
    path = Path(path)
    if step > 1:
        rgb = (rgb // step * step + step // 2).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")
    return path
