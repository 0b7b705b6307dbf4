"""Pixels-only Fetch policy: find the blue block and the red target by colour, call pick and place.

Why: the smallest honest perception-to-action baseline. It reads only ``Frame.image`` (plus the robot's
``busy`` flag, which is robot status, not scene state): HSV thresholds and the largest connected blob
give each object's innermost pixel in normalized image coordinates; the tools ground those points with the
robot's depth camera. Before looking it calls ``home`` so the arm does not hide the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from agentkit.policies.robot.plan import PlanPolicy
from agentkit.types import Decision, Frame, Point, ToolCall

# OpenCV HSV: H in [0, 180). The block is saturated blue (H ~ 115-120); the arm's cyan is H ~ 95.
BLUE = ((105, 120, 60), (130, 255, 255))
RED_LO = ((0, 120, 60), (8, 255, 255))
RED_HI = ((172, 120, 60), (180, 255, 255))
MIN_AREA = 6  # pixels
DONE_PX = 0.06  # normalized distance between block and target that counts as "on the target"


@dataclass(frozen=True)
class Blob:
    point: Point
    area: int


def _largest_blob(mask: np.ndarray) -> Blob | None:
    """The largest connected blob, located at its innermost pixel.

    The innermost pixel (the maximum of the distance transform) always lies on the object itself, even
    when something in front of it (the red target marker before the block) cuts the blob: the centroid of
    such a blob can fall on the occluder.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    area = int(stats[i, cv2.CC_STAT_AREA])
    if area < MIN_AREA:
        return None
    blob = np.pad((labels == i).astype(np.uint8), 1)
    dist = cv2.distanceTransform(blob, cv2.DIST_L2, 3)[1:-1, 1:-1]
    cy, cx = np.unravel_index(int(np.argmax(dist)), dist.shape)
    h, w = mask.shape
    return Blob(Point.from_pixels(cx + 0.5, cy + 0.5, w, h), area)


def detect(image: np.ndarray) -> dict[str, Blob | None]:
    """Find the block (blue) and the target (red) in an RGB image; ``None`` where not visible."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    blue = cv2.inRange(hsv, *BLUE)
    red = cv2.bitwise_or(cv2.inRange(hsv, *RED_LO), cv2.inRange(hsv, *RED_HI))
    return {"block": _largest_blob(blue), "target": _largest_blob(red)}


class FetchPixelsPolicy(PlanPolicy):
    """Colour segmentation -> ``pick(block point)``, ``place(target point)``."""

    name = "fetch-pixels"

    def finished(self, frame: Frame) -> bool:
        det = detect(frame.image)
        block, target = det["block"], det["target"]
        if block is None or target is None:
            return True  # one hides the other (or the arm hides them): assume it is on the target
        d = np.hypot(block.point.x - target.point.x, block.point.y - target.point.y)
        return bool(d < DONE_PX)

    def plan(self, frame: Frame) -> Decision | None:
        det = detect(frame.image)
        block, target = det["block"], det["target"]
        missing = [name for name, blob in det.items() if blob is None]
        if missing:
            return Decision.silence(errors=[f"fetch-pixels: no {' or '.join(missing)} found in the image"])
        assert block is not None and target is not None
        return Decision.response(
            "pick the blue block and put it on the red target",
            points=[block.point, target.point],
            tool_calls=[
                ToolCall("pick", {"point": block.point.to_dict()}),
                ToolCall("place", {"point": target.point.to_dict()}),
            ],
        )
