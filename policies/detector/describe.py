"""Words for what the detectors cannot name: size, colour, where a thing is, where it went, how fast.

The narrator gives a thing a class ("person", "face") only when a detector said so. Everything else is an
unclassified "thing" described by what background subtraction and the tracker measured, so the narration
stays true however little is recognised:

* size: the largest box the thing had, as a fraction of the frame (``small`` ... ``very large``);
* colour: a named colour from the median of its foreground pixels (``red``, ``dark``, ``white`` ...);
* place: a 3x3 grid of the frame (``at the top left``, ``in the centre``) and the edge it came in or left by;
* direction and speed: from its path, in frame widths/heights per second (``slowly`` / ``quickly``).

Pure functions of numbers and small arrays: unit-tested without video.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

NormBox = tuple[float, float, float, float]

EDGES = ("left", "right", "top", "bottom")


def size_word(area_fraction: float) -> str:
    """``small`` / ``medium-sized`` / ``large`` / ``very large`` for a box covering this fraction of the frame."""
    if area_fraction < 0.03:
        return "small"
    if area_fraction < 0.12:
        return "medium-sized"
    if area_fraction < 0.35:
        return "large"
    return "very large"


def colour_name(rgb: tuple[float, float, float] | np.ndarray) -> str:
    """A plain colour word for an RGB triple (0-255): ``red``, ``blue``, ``white``, ``dark``, ``grey`` ...

    Low saturation gives ``white`` / ``grey`` / ``dark`` by brightness; otherwise the hue picks one of
    ``red, orange, yellow, green, cyan, blue, purple, pink``; dim saturated colours are ``dark <hue>``.
    """
    px = np.clip(np.asarray(rgb, dtype=np.float32).reshape(1, 1, 3), 0, 255).astype(np.uint8)
    h, s, v = (int(x) for x in cv2.cvtColor(px, cv2.COLOR_RGB2HSV)[0, 0])
    if v < 50:
        return "dark"
    if s < 50 or (s < 80 and v > 200):
        if v > 190:
            return "white"
        return "grey" if v > 90 else "dark"
    deg = h * 2  # OpenCV hue is 0..179
    if deg < 15 or deg >= 340:
        name = "red"
    elif deg < 40:
        name = "orange"
    elif deg < 70:
        name = "yellow"
    elif deg < 165:
        name = "green"
    elif deg < 195:
        name = "cyan"
    elif deg < 255:
        name = "blue"
    elif deg < 290:
        name = "purple"
    else:
        name = "pink"
    if v < 100 and name not in ("orange", "yellow"):
        return f"dark {name}"
    if name == "orange" and v < 140:
        return "brown"
    return name


def median_colour(
    image: np.ndarray, mask: np.ndarray | None, box: NormBox, max_samples: int = 400
) -> np.ndarray | None:
    """Median RGB of the foreground pixels of ``image`` inside ``box`` (all of the box without a mask)."""
    h, w = image.shape[:2]
    x1, y1 = max(0, int(box[0] * w)), max(0, int(box[1] * h))
    x2, y2 = min(w, int(math.ceil(box[2] * w))), min(h, int(math.ceil(box[3] * h)))
    if x2 <= x1 or y2 <= y1:
        return None
    patch = image[y1:y2, x1:x2].reshape(-1, 3)
    if mask is not None:
        sel = mask[y1:y2, x1:x2].reshape(-1) > 0
        if np.count_nonzero(sel) >= 4:
            patch = patch[sel]
    if len(patch) > max_samples:
        patch = patch[:: len(patch) // max_samples + 1]
    return np.median(patch, axis=0).astype(np.float32)


def touching_edges(box: NormBox, margin: float) -> list[str]:
    """The frame edges ``box`` touches (within ``margin``), in the order left, right, top, bottom."""
    out = []
    if box[0] <= margin:
        out.append("left")
    if box[2] >= 1.0 - margin:
        out.append("right")
    if box[1] <= margin:
        out.append("top")
    if box[3] >= 1.0 - margin:
        out.append("bottom")
    return out


def edge_word(edges: list[str]) -> str:
    """``the left`` / ``the top left`` / ``the bottom`` for the edges an entry or exit touched."""
    if not edges:
        return "the middle of the view"
    vert = next((e for e in edges if e in ("top", "bottom")), None)
    horiz = next((e for e in edges if e in ("left", "right")), None)
    if vert and horiz:
        return f"the {vert} left" if horiz == "left" else f"the {vert} right"
    return f"the {vert or horiz}"


def place_word(cx: float, cy: float) -> str:
    """Where a point lies in a 3x3 grid of the frame: ``at the top left`` ... ``in the centre``."""
    col = "left" if cx < 1 / 3 else ("right" if cx > 2 / 3 else "")
    row = "top" if cy < 1 / 3 else ("bottom" if cy > 2 / 3 else "")
    if not col and not row:
        return "in the centre"
    if col and row:
        return f"at the {row} {col}"
    return f"at the {row or col}"


def direction_word(dx: float, dy: float) -> str:
    """``right`` / ``up and to the left`` ... for a displacement in normalized frame units (y grows down)."""
    if math.hypot(dx, dy) < 1e-9:
        return "nowhere"
    ang = math.degrees(math.atan2(-dy, dx)) % 360  # 0 = right, 90 = up
    names = ["right", "up and to the right", "up", "up and to the left", "left", "down and to the left", "down",
             "down and to the right"]  # fmt: skip
    return names[int(((ang + 22.5) % 360) // 45)]


def speed_word(speed: float, slow: float = 0.15, fast: float = 0.6) -> str:
    """``slowly`` / ``""`` / ``quickly`` for a speed in frame sizes per second."""
    if speed < slow:
        return "slowly"
    if speed > fast:
        return "quickly"
    return ""


def count_text(people: int, things: int) -> str:
    """``no one in view`` / ``1 person in view`` / ``2 people and 1 other thing in view`` / ``3 things in view``."""
    if things == 0:
        if people == 0:
            return "no one in view"
        return "1 person in view" if people == 1 else f"{people} people in view"
    t = "thing" if things == 1 else "things"
    if people == 0:
        return f"{things} {t} in view"
    p = "1 person" if people == 1 else f"{people} people"
    return f"{p} and {things} other {t} in view"
