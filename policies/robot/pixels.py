"""Pixels-only Fetch policy: find the named block and the target by colour, call pick and place.

Why: the smallest honest perception-to-action baseline. It reads only ``Frame.image`` (plus the robot's
``busy`` flag, which is robot status, not scene state) and the instruction text it was given: HSV
thresholds and the largest connected blob give each object's innermost pixel in normalized image
coordinates; the tools ground those points with the robot's depth camera. Before looking it calls
``home`` so the arm does not hide the table.

Which colours: the instruction's block colour word (red, green, blue, yellow; a shape word is parsed and
reported, the colour decides — each colour appears once per scene) and then the magenta target of the
multi-block world. Without a colour in the instruction it is the single-block world: the blue block and
the red target. :class:`PixelsConfig` can fix either colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from pydantic import field_validator

from agentkit.envs.robot.fetch_multi import TARGET_COLOUR, parse_instruction
from agentkit.policies.robot.plan import PlanConfig, PlanPolicy
from agentkit.types import Decision, Frame, Point, ToolCall

Range = tuple[tuple[int, int, int], tuple[int, int, int]]

# OpenCV HSV: H in [0, 180). The blue block is H ~ 110-120; the arm's cyan is H ~ 95; the green skybox seen
# at the image's edges is H ~ 69 with S ~ 121, so green asks for more saturation than the others.
BLUE = ((105, 120, 60), (130, 255, 255))
RED_LO = ((0, 120, 60), (8, 255, 255))
RED_HI = ((172, 120, 60), (180, 255, 255))
HSV_RANGES: dict[str, tuple[Range, ...]] = {
    "red": (RED_LO, RED_HI),
    "green": (((50, 150, 50), (78, 255, 255)),),
    "blue": (BLUE,),
    "yellow": (((20, 120, 60), (38, 255, 255)),),
    "magenta": (((140, 120, 60), (165, 255, 255)),),
}
DEFAULT_BLOCK, DEFAULT_TARGET = "blue", "red"  # the single-block world
MIN_AREA = 6  # pixels
DONE_PX = 0.06  # normalized distance between block and target that counts as "on the target"


class PixelsConfig(PlanConfig):
    """Settings of ``fetch-pixels``.

    Attributes:
        block_colour: segment this colour as the block whatever the instruction says (``None``: the
            instruction's colour word, else blue).
        target_colour: the target's colour (``None``: magenta when the instruction names a block colour,
            red otherwise).
    """

    block_colour: str | None = None
    target_colour: str | None = None

    @field_validator("block_colour", "target_colour")
    @classmethod
    def _known_colour(cls, v: str | None) -> str | None:
        if v is not None and v not in HSV_RANGES:
            raise ValueError(f"unknown colour {v!r}; known: {', '.join(HSV_RANGES)}")
        return v


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


def colour_mask(hsv: np.ndarray, colour: str) -> np.ndarray:
    """Pixels of ``colour`` (a key of :data:`HSV_RANGES`) in an OpenCV HSV image."""
    ranges = HSV_RANGES[colour]
    mask = cv2.inRange(hsv, *ranges[0])
    for lo_hi in ranges[1:]:
        mask = cv2.bitwise_or(mask, cv2.inRange(hsv, *lo_hi))
    return mask


def find(image: np.ndarray, colour: str) -> Blob | None:
    """The largest blob of ``colour`` in an RGB image (``None`` when not visible)."""
    return _largest_blob(colour_mask(cv2.cvtColor(image, cv2.COLOR_RGB2HSV), colour))


def detect(image: np.ndarray, block: str = DEFAULT_BLOCK, target: str = DEFAULT_TARGET) -> dict[str, Blob | None]:
    """Find the block and the target by colour in an RGB image; ``None`` where not visible."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    return {"block": _largest_blob(colour_mask(hsv, block)), "target": _largest_blob(colour_mask(hsv, target))}


class FetchPixelsPolicy(PlanPolicy):
    """Colour segmentation of the instruction's block -> ``pick(block point)``, ``place(target point)``."""

    name = "fetch-pixels"
    Config = PixelsConfig

    def __init__(self, config: PixelsConfig | None = None, **options: Any) -> None:
        self.pixels: PixelsConfig = self.configure(config, options, PixelsConfig)
        super().__init__(self.pixels)

    def colours(self) -> tuple[str, str, str]:
        """Block colour, target colour and a description of the block, from the config and the instruction.

        Example:
            >>> policy = FetchPixelsPolicy()
            >>> policy.instruct("put the yellow cylinder on the target")
            >>> policy.colours()
            ('yellow', 'magenta', 'yellow cylinder')
        """
        query = parse_instruction(self.instruction)
        block = self.pixels.block_colour or query.colour or DEFAULT_BLOCK
        target = self.pixels.target_colour or (DEFAULT_TARGET if query.colour is None else TARGET_COLOUR)
        return block, target, f"{block} {query.shape or 'block'}"

    def _detect(self, image: np.ndarray) -> tuple[dict[str, Blob | None], str, str]:
        block, target, what = self.colours()
        return detect(image, block, target), what, target

    def finished(self, frame: Frame) -> bool:
        det, _, _ = self._detect(frame.image)
        block, target = det["block"], det["target"]
        if block is None or target is None:
            return True  # one hides the other (or the arm hides them): assume it is on the target
        d = np.hypot(block.point.x - target.point.x, block.point.y - target.point.y)
        return bool(d < DONE_PX)

    def plan(self, frame: Frame) -> Decision | None:
        det, what, target_colour = self._detect(frame.image)
        block, target = det["block"], det["target"]
        missing = [name for name, blob in det.items() if blob is None]
        if missing:
            return Decision.silence(errors=[f"fetch-pixels: no {' or '.join(missing)} found in the image"])
        assert block is not None and target is not None
        return Decision.response(
            f"pick the {what} and put it on the {target_colour} target",
            points=[block.point, target.point],
            tool_calls=[
                ToolCall("pick", {"point": block.point.to_dict()}),
                ToolCall("place", {"point": target.point.to_dict()}),
            ],
        )
