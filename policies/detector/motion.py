"""Background subtraction: which parts of a downscaled frame are moving, as blobs.

MOG2 (OpenCV's adaptive Gaussian-mixture background model) marks foreground pixels and, with shadow
detection on, labels cast shadows separately so a departing person's shadow on the floor is not a person.
A person who stands still is absorbed into the background within seconds; that is fine here because the
HOG detector (see :mod:`.people`) keeps still people tracked, while blobs carry people who move (walking
in, walking out) between HOG hits.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

NormBox = tuple[float, float, float, float]  # x1, y1, x2, y2 normalized to [0, 1]


@dataclass(frozen=True, slots=True)
class Blob:
    """A connected region of foreground, normalized to the frame."""

    box: NormBox
    area: float  # fraction of the frame covered by foreground pixels of this blob


@dataclass(frozen=True, slots=True)
class MotionResult:
    """Foreground summary of one frame."""

    fraction: float  # foreground pixels / all pixels (after noise removal)
    blobs: tuple[Blob, ...]
    global_change: bool = False  # most of the frame changed (light/exposure): blobs are not reported


class ForegroundModel:
    """MOG2 background subtraction plus morphological clean-up and connected components.

    Args:
        history: frames of history of the background model.
        var_threshold: MOG2 ``varThreshold``.
        min_blob_fraction: drop components smaller than this fraction of the frame.
        warmup_frames: report no motion for this many frames while the model learns the first background.
        global_change_fraction: when at least this fraction of the frame is foreground at once, treat it as
            a light/exposure change: relearn the background at ``relearn_rate`` and report no blobs.
        relearn_rate: MOG2 learning rate used on such frames.
        compensate_gain: scale each frame so its background brightness matches the model's (undoes
            auto-exposure) before background subtraction.
    """

    def __init__(
        self,
        history: int = 500,
        var_threshold: float = 16.0,
        min_blob_fraction: float = 0.002,
        warmup_frames: int = 5,
        global_change_fraction: float = 0.5,
        relearn_rate: float = 0.2,
        compensate_gain: bool = True,
    ) -> None:
        self.history = history
        self.var_threshold = var_threshold
        self.min_blob_fraction = min_blob_fraction
        self.warmup_frames = warmup_frames
        self.global_change_fraction = global_change_fraction
        self.relearn_rate = relearn_rate
        self.compensate_gain = compensate_gain
        self._kernel_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._kernel_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
        self.reset()

    def reset(self) -> None:
        """Forget the background (new stream or new resolution)."""
        self._mog = cv2.createBackgroundSubtractorMOG2(
            history=self.history, varThreshold=self.var_threshold, detectShadows=True
        )
        self._frames = 0

    def _compensate(self, image: np.ndarray) -> np.ndarray:
        """Undo a global brightness change (camera auto-exposure reacting to dark clothes, a cloud).

        Per channel, fit ``frame = gain * background + offset`` on a pixel subsample with one round of
        outlier rejection: a person covers well under half of the frame, so the fit follows the background.
        The frame is then mapped back onto the background model's exposure.
        """
        if self._frames < 2:
            return image
        bg = self._mog.getBackgroundImage()
        if bg is None or bg.shape != image.shape:
            return image
        x_all = bg[::3, ::3].reshape(-1, 3).astype(np.float32)
        y_all = image[::3, ::3].reshape(-1, 3).astype(np.float32)
        gains, offsets = np.ones(3, np.float32), np.zeros(3, np.float32)
        for c in range(3):
            x, y = x_all[:, c], y_all[:, c]
            keep = (x > 3) & (x < 252) & (y > 3) & (y < 252)  # clipped pixels carry no exposure information
            if np.count_nonzero(keep) < 50:
                continue
            x, y = x[keep], y[keep]
            a, b = _fit_line(x, y)
            r = np.abs(y - (a * x + b))
            inl = r <= max(6.0, 2.0 * float(np.median(r)))
            if np.count_nonzero(inl) >= 50:
                a, b = _fit_line(x[inl], y[inl])
            gains[c], offsets[c] = min(max(a, 0.5), 2.0), min(max(b, -80.0), 80.0)
        if np.all(np.abs(gains - 1.0) < 0.03) and np.all(np.abs(offsets) < 3.0):
            return image
        out = (image.astype(np.float32) - offsets.reshape(1, 1, 3)) / gains.reshape(1, 1, 3)
        return np.clip(out, 0, 255).astype(np.uint8)

    def apply(self, image: np.ndarray) -> MotionResult:
        """Update the model with a small HxWx3 image and return its foreground blobs."""
        if self.compensate_gain:
            image = self._compensate(image)
        raw = self._mog.apply(image)
        self._frames += 1
        if self._frames <= self.warmup_frames:
            return MotionResult(0.0, ())
        fg = np.where(raw == 255, np.uint8(255), np.uint8(0))  # 127 = shadow: not foreground
        if self.global_change_fraction < 1.0 and np.count_nonzero(fg) >= self.global_change_fraction * fg.size:
            # Most of the frame changed at once: a light or camera-exposure change, not motion. Relearn the
            # background fast and report no blobs (people stay tracked by the detector meanwhile).
            self._mog.apply(image, learningRate=self.relearn_rate)
            return MotionResult(float(np.count_nonzero(fg)) / fg.size, (), global_change=True)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel_open)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self._kernel_close)
        h, w = fg.shape
        total = float(h * w)
        n, _labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        blobs: list[Blob] = []
        covered = 0
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            if area / total < self.min_blob_fraction:
                continue
            covered += area
            blobs.append(Blob((x / w, y / h, (x + bw) / w, (y + bh) / h), area / total))
        return MotionResult(covered / total, tuple(blobs))


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = a * x + b``; an offset alone when ``x`` barely varies (a flat background).

    A gain cannot be told from an offset on a one-colour background (a tiny or synthetic frame), and
    ``np.polyfit`` then warns and returns an arbitrary slope.
    """
    if float(np.ptp(x)) < 8.0:
        return 1.0, float(np.median(y - x))
    a, b = np.polyfit(x, y, 1)
    return float(a), float(b)
