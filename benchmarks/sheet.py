"""Contact sheets of narrated events: what the narrator saw when it spoke, boxes drawn on the frame.

Used by ``agentkit bench detector --sheet`` to make the picture in docs/detector.md, and handy to check a
new camera by eye. Only small thumbnails of Response frames are kept, never whole frames.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from agentkit.types import Decision, Frame

_GREEN = (40, 220, 40)
_RED = (230, 40, 40)
_YELLOW = (255, 230, 0)


def event_thumbnail(frame: Frame, decision: Decision, width: int = 256) -> np.ndarray:
    """A ``width``-wide RGB thumbnail of ``frame`` with people (green), departed people (red) and the text."""
    h = max(1, round(frame.height * width / frame.width))
    img = np.ascontiguousarray(cv2.resize(frame.image, (width, h), interpolation=cv2.INTER_AREA))
    for b in decision.boxes:
        x1, y1, x2, y2 = b.to_pixels(width, h)
        cv2.rectangle(img, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), _GREEN, 2)
    for d in decision.meta.get("departed", []) if isinstance(decision.meta, dict) else []:
        x1, y1, x2, y2 = (round(d[k] * s) for k, s in (("x1", width), ("y1", h), ("x2", width), ("y2", h)))
        cv2.rectangle(img, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), _RED, 2)
    band = np.zeros((34, width, 3), np.uint8)
    cv2.putText(band, f"{decision.pts:6.1f} s", (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, _YELLOW, 1, cv2.LINE_AA)
    cv2.putText(
        band, (decision.text or "")[:44], (4, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (255, 255, 255), 1, cv2.LINE_AA
    )
    return np.vstack([band, img])


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
