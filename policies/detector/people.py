"""The HOG people detector (Dalal-Triggs linear SVM that ships inside OpenCV), on a downscaled frame.

No model file is downloaded: ``HOGDescriptor_getDefaultPeopleDetector()`` returns the SVM weights compiled
into OpenCV. OpenCV 5 moved HOG out of the main wheel into opencv-contrib (``opencv-contrib-python-headless``);
OpenCV 4.x has it in ``opencv-python-headless``. :func:`hog_available` tells which case this is. Without it,
the same detector runs from :mod:`.hog_numpy` (same descriptor to 1e-7, same detections, ~3x slower).

The image is padded above and below with a replicated border: the detector window expects ~16 px of margin around a
96 px tall person, so without it a person who fills the frame height (a close camera) is never found.

An image that is still smaller than the 64x128 window after padding (a 64x48 or 640x100 video: the work copy is
too short) cannot hold a person at this scale, and OpenCV's ``detectMultiScale`` crashes the process on it
(segmentation fault) or raises, depending on the size; :meth:`HogPeopleDetector.detect` therefore finds no one
in such an image without calling the detector.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from agentkit.errors import PolicyError

log = logging.getLogger(__name__)

NormBox = tuple[float, float, float, float]
WINDOW = (64, 128)  # width, height of the people detector's window (both backends)


@dataclass(frozen=True, slots=True)
class Detection:
    """A person found in a frame: normalized box and the grouped SVM weight (higher = surer)."""

    box: NormBox
    score: float


def _hog_class() -> Any | None:
    cls = getattr(cv2, "HOGDescriptor", None)
    if cls is None:  # OpenCV 5 contrib builds may keep it under xobjdetect
        cls = getattr(getattr(cv2, "xobjdetect", None), "HOGDescriptor", None)
    return cls


def hog_available() -> bool:
    """Whether this OpenCV build has the HOG people detector."""
    return _hog_class() is not None


def _default_people_svm(hog_cls: Any) -> np.ndarray:
    getter = getattr(cv2, "HOGDescriptor_getDefaultPeopleDetector", None) or getattr(
        hog_cls, "getDefaultPeopleDetector", None
    )
    if getter is None:
        raise PolicyError("this OpenCV build has HOGDescriptor but not its default people detector")
    return np.asarray(getter(), dtype=np.float32)


def iou(a: NormBox, b: NormBox) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms(dets: list[Detection], threshold: float = 0.5) -> list[Detection]:
    """Greedy non-maximum suppression: keep the best-scored of boxes overlapping more than ``threshold``."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        if all(iou(d.box, k.box) <= threshold for k in kept):
            kept.append(d)
    return kept


class HogPeopleDetector:
    """Finds upright people in a small grayscale image.

    Args:
        border: replicated border in pixels added above and below the image before detection.
        border_x: the same left and right (default none: replicated edge columns make vertical streaks
            that the detector mistakes for a person at the frame edge).
        scale: pyramid scale step.
        stride: window stride in pixels.
        hit_threshold: SVM margin for a window to count.
        min_score: drop grouped detections weighted below this.
        backend: ``"opencv"`` (``cv2.HOGDescriptor``), ``"numpy"`` (:class:`.hog_numpy.NumpyHog`, works on
            any OpenCV) or ``"auto"`` (OpenCV's when this build has it, else NumPy's).

    Raises:
        PolicyError: ``backend="opencv"`` on an OpenCV build without HOG, or an unknown backend.
    """

    def __init__(
        self,
        border: int = 32,
        border_x: int = 0,
        scale: float = 1.05,
        stride: int = 4,
        hit_threshold: float = 0.0,
        min_score: float = 0.0,
        backend: str = "auto",
    ) -> None:
        if backend not in ("auto", "opencv", "numpy"):
            raise PolicyError(f"unknown HOG backend {backend!r}; use auto, opencv or numpy")
        hog_cls = _hog_class()
        if backend == "opencv" and hog_cls is None:
            raise PolicyError(
                f"OpenCV {cv2.__version__} has no HOG people detector (OpenCV 5 moved it to contrib): "
                "pip install opencv-contrib-python-headless, or use backend 'numpy'"
            )
        self.backend = "opencv" if (backend != "numpy" and hog_cls is not None) else "numpy"
        self._hog: Any = None
        self._numpy: Any = None
        if hog_cls is not None and self.backend == "opencv":
            self._hog = hog_cls()
            self._hog.setSVMDetector(_default_people_svm(hog_cls))
        else:
            from agentkit.policies.detector.hog_numpy import CELL, NumpyHog

            if CELL % stride:
                raise PolicyError(f"the numpy HOG backend needs a stride that divides {CELL}, got {stride}")
            self._numpy = NumpyHog()
        self.border = border
        self.border_x = border_x
        self.scale = scale
        self.stride = stride
        self.hit_threshold = hit_threshold
        self.min_score = min_score
        self._warned_small: tuple[int, int] | None = None

    def fits(self, width: int, height: int) -> bool:
        """Whether a ``width`` x ``height`` image, once padded, holds at least one detector window."""
        return width + 2 * self.border_x >= WINDOW[0] and height + 2 * self.border >= WINDOW[1]

    def detect(self, gray: np.ndarray) -> list[Detection]:
        """People in ``gray`` (HxW uint8), as boxes normalized to ``gray``'s size.

        An image smaller than the detector window (after padding) gives no detections: no one of the
        detector's size fits in it, and OpenCV would crash or raise on it.
        """
        h, w = gray.shape[:2]
        if not self.fits(w, h):
            if self._warned_small != (w, h):
                self._warned_small = (w, h)
                log.warning(
                    "image %dx%d (+%d px border above/below) is smaller than the %dx%d people-detector "
                    "window: no people will be detected (raise work_width or use a larger video)",
                    w,
                    h,
                    self.border,
                    *WINDOW,
                )
            return []
        b, bx = self.border, self.border_x
        padded = cv2.copyMakeBorder(gray, b, b, bx, bx, cv2.BORDER_REPLICATE) if (b or bx) else gray
        if self._hog is not None:
            rects, weights = self._hog.detectMultiScale(
                padded,
                hitThreshold=self.hit_threshold,
                winStride=(self.stride, self.stride),
                padding=(0, 0),
                scale=self.scale,
            )
        else:
            rects, weights = self._numpy.detect_multiscale(padded, self.hit_threshold, self.stride, self.scale)
        weights = np.ravel(weights) if len(rects) else np.zeros(0)
        dets: list[Detection] = []
        for (x, y, rw, rh), score in zip(rects, weights, strict=True):
            if float(score) < self.min_score:
                continue
            x1 = min(max((x - bx) / w, 0.0), 1.0)
            y1 = min(max((y - b) / h, 0.0), 1.0)
            x2 = min(max((x + rw - bx) / w, 0.0), 1.0)
            y2 = min(max((y + rh - b) / h, 0.0), 1.0)
            if x2 - x1 <= 0 or y2 - y1 <= 0:
                continue
            dets.append(Detection((x1, y1, x2, y2), float(score)))
        return nms(dets)
