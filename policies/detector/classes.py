"""Class detectors beyond HOG people that ship inside a package and run offline.

Only what was checked to run here without any download is used (see docs/detector.md, "Detectors"):

* :class:`HaarFaceDetector`: OpenCV's Viola-Jones frontal-face cascade, the XML file that the
  ``opencv-python(-headless)`` 4.x wheel ships in ``cv2.data.haarcascades`` (Debian's ``opencv-data`` has the
  same files under ``/usr/share/opencv4/haarcascades``). A face means a person is in view, facing the camera,
  which HOG (trained on whole upright bodies) misses when only the upper body is in view.

Rejected after trying them here: the cat-face cascades fire on a printed skull on a T-shirt (``yes.mkv``);
the upper-body / full-body cascades fire on few of the frames with people (HOG does better) and cost
40-155 ms a call; mediapipe's legacy solutions bundle
face/hand/pose models only up to 0.10.21, which needs ``numpy<2`` and ``protobuf<5`` and pulls
``opencv-contrib-python`` (a second cv2), while newer wheels bundle no model at all.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from agentkit.errors import PolicyError
from agentkit.policies.detector.people import Detection, nms

log = logging.getLogger(__name__)

FACE_CASCADE = "haarcascade_frontalface_default.xml"


def cascade_dirs() -> list[Path]:
    """Where OpenCV's Haar cascade XML files may be: the wheel's ``cv2.data``, then Debian's ``opencv-data``."""
    out = []
    data = getattr(cv2, "data", None)
    if data is not None and getattr(data, "haarcascades", None):
        out.append(Path(data.haarcascades))
    out += [Path("/usr/share/opencv4/haarcascades"), Path("/usr/share/opencv/haarcascades")]
    return out


def find_cascade(name: str) -> Path | None:
    """The path of cascade ``name`` if this machine has it (no download is ever attempted)."""
    for d in cascade_dirs():
        if (d / name).is_file():
            return d / name
    return None


def faces_available() -> bool:
    """Whether the frontal-face cascade and ``cv2.CascadeClassifier`` are both here."""
    return hasattr(cv2, "CascadeClassifier") and find_cascade(FACE_CASCADE) is not None


class HaarFaceDetector:
    """Frontal faces in a grayscale image, as normalized boxes.

    Args:
        width: the image is downscaled to this width first (faces smaller than ``min_size`` pixels there are
            not found; the cost grows with the pixel count).
        min_size: smallest face side in pixels at ``width``.
        scale: pyramid scale step of ``detectMultiScale``.
        neighbors: overlapping hits a face needs (higher: fewer false faces).

    Raises:
        PolicyError: this OpenCV has no ``CascadeClassifier`` or the cascade file is missing.
    """

    label = "face"

    def __init__(self, width: int = 256, min_size: int = 20, scale: float = 1.15, neighbors: int = 5) -> None:
        path = find_cascade(FACE_CASCADE)
        if not hasattr(cv2, "CascadeClassifier") or path is None:
            raise PolicyError(
                f"no Haar face cascade here ({FACE_CASCADE} not in {', '.join(map(str, cascade_dirs()))}): "
                "install opencv-python-headless 4.x or Debian's opencv-data, or set faces=false"
            )
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise PolicyError(f"could not load the Haar face cascade {path}")
        self.width, self.min_size, self.scale, self.neighbors = width, min_size, scale, neighbors

    def detect(self, gray: np.ndarray) -> list[Detection]:
        """Faces in ``gray`` (HxW uint8, any size), boxes normalized to it; score = 1 (cascades give none)."""
        h, w = gray.shape[:2]
        if w > self.width:
            gray = cv2.resize(gray, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_AREA)
        gh, gw = gray.shape[:2]
        if min(gh, gw) < self.min_size:
            return []
        rects = self._cascade.detectMultiScale(
            gray, scaleFactor=self.scale, minNeighbors=self.neighbors, minSize=(self.min_size, self.min_size)
        )
        dets = [
            Detection((x / gw, y / gh, (x + rw) / gw, (y + rh) / gh), 1.0)
            for (x, y, rw, rh) in (rects if len(rects) else [])
        ]
        return nms(dets, 0.3)


def body_from_face(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """A generous guess of where the body of a person with this face box is (for claiming their motion).

    Used only to keep a person's own arm or hand movements from being narrated as separate things; never
    reported as a box.
    """
    x1, y1, x2, y2 = box
    fw, fh = x2 - x1, y2 - y1
    return (max(0.0, x1 - 2.0 * fw), max(0.0, y1 - 0.5 * fh), min(1.0, x2 + 2.0 * fw), min(1.0, y2 + 7.0 * fh))
