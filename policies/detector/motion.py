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
    """Foreground summary of one frame.

    ``mask``, ``image`` and ``background`` are views of this frame's work copy, for the caller to read during
    the same step (colours, templates); nothing keeps them afterwards.
    """

    fraction: float  # foreground pixels / all pixels (after noise removal)
    blobs: tuple[Blob, ...]
    global_change: bool = False  # most of the frame changed (light/exposure): blobs are not reported
    mask: np.ndarray | None = None  # HxW uint8, 255 = foreground (after clean-up)
    image: np.ndarray | None = None  # the work image after exposure compensation and shake alignment
    background: np.ndarray | None = None  # the background model's image before this frame (None early on)
    shift: tuple[float, float] = (0.0, 0.0)  # camera shake undone on this frame, in work pixels (dx, dy)
    solid: tuple[Blob, ...] = ()  # blobs after removing light changes (shadows, exposure): things, not light
    solid_mask: np.ndarray | None = None  # their mask


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
        align_max_shift: undo camera shake: the frame's translation against the background image is measured
            by phase correlation and undone when it lies between ``align_min_shift`` and this many work pixels
            (0: off). A hand-held or wind-shaken camera otherwise turns every edge in view into "motion".
        align_min_shift: smaller shifts are left alone (sensor noise, not shake).
        history_s: seconds of stream the background model remembers (used when :meth:`apply` gets ``dt``).
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
        align_max_shift: float = 6.0,
        align_min_shift: float = 0.3,
        history_s: float | None = None,
    ) -> None:
        self.history = history
        self.var_threshold = var_threshold
        self.min_blob_fraction = min_blob_fraction
        self.warmup_frames = warmup_frames
        self.global_change_fraction = global_change_fraction
        self.relearn_rate = relearn_rate
        self.compensate_gain = compensate_gain
        self.align_max_shift = align_max_shift
        self.align_min_shift = align_min_shift
        self.history_s = history_s
        self._kernel_open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._kernel_close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
        self._kernel_solid = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self.reset()

    def reset(self) -> None:
        """Forget the background (new stream or new resolution)."""
        self._mog = cv2.createBackgroundSubtractorMOG2(
            history=self.history, varThreshold=self.var_threshold, detectShadows=True
        )
        self._frames = 0
        self._window: np.ndarray | None = None

    def _align(self, image: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """Undo a global translation of ``image`` against the background image (camera shake).

        Phase correlation of the two grayscale images: the static background dominates the cross-power
        spectrum, so an object moving through the view does not pull the estimate; a weak peak (a flat,
        textureless view) or a shift beyond ``align_max_shift`` (a pan, a cut) is left alone.
        """
        g_img = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        g_bg = cv2.cvtColor(bg, cv2.COLOR_RGB2GRAY).astype(np.float32)
        if self._window is None or self._window.shape != g_img.shape:
            self._window = cv2.createHanningWindow(g_img.shape[::-1], cv2.CV_32F)
        (dx, dy), response = cv2.phaseCorrelate(g_bg, g_img, self._window)
        mag = float(np.hypot(dx, dy))
        h, w = g_img.shape
        if response < 0.1 or mag < self.align_min_shift or mag > self.align_max_shift or mag > 0.25 * min(h, w):
            return image, (0.0, 0.0)
        m = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy]], dtype=np.float32)
        size = (int(image.shape[1]), int(image.shape[0]))
        # keep it only if it explains the frame: shifting the whole view by a moving thing's displacement
        # (a large arm can pull the correlation peak) makes the still background match worse, not better
        g_out = cv2.warpAffine(g_img, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mx, my = int(np.ceil(abs(dx))) + 1, int(np.ceil(abs(dy))) + 1
        inner = (slice(my, -my), slice(mx, -mx))
        before = float(np.mean(np.abs(g_img[inner] - g_bg[inner])))
        after = float(np.mean(np.abs(g_out[inner] - g_bg[inner])))
        if not after < 0.93 * before - 0.2:
            return image, (0.0, 0.0)
        out = cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out, (float(dx), float(dy))

    def _compensate(self, image: np.ndarray, bg: np.ndarray | None = None) -> np.ndarray:
        """Undo a global brightness change (camera auto-exposure reacting to dark clothes, a cloud).

        Per channel, fit ``frame = gain * background + offset`` on a pixel subsample with one round of
        outlier rejection: a person covers well under half of the frame, so the fit follows the background.
        The frame is then mapped back onto the background model's exposure.
        """
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
        # keep the correction only if it brings more of the view back onto the background (a large thing in
        # view can skew the fit; correcting then would turn a whole plain road into "motion")
        fitted = (y_all - offsets) / gains
        before = np.count_nonzero(np.max(np.abs(y_all - x_all), axis=1) <= 10.0)
        after = np.count_nonzero(np.max(np.abs(fitted - x_all), axis=1) <= 10.0)
        if after < before:
            return image
        out = (image.astype(np.float32) - offsets.reshape(1, 1, 3)) / gains.reshape(1, 1, 3)
        return np.clip(out, 0, 255).astype(np.uint8)

    def apply(self, image: np.ndarray, dt: float | None = None) -> MotionResult:
        """Update the model with a small HxWx3 image and return its foreground blobs.

        ``dt`` (seconds since the previous frame) makes the background learn at a rate per second of stream
        (``history_s``) rather than per frame, so a thing put down is absorbed after the same time at 10 or
        30 frames/s; without it (or without ``history_s``) MOG2 learns per frame.
        """
        bg = self._mog.getBackgroundImage() if self._frames >= 2 else None
        if bg is not None and bg.shape != image.shape:
            bg = None
        shift = (0.0, 0.0)
        if bg is not None and self.align_max_shift > 0 and min(image.shape[:2]) >= 16:
            image, shift = self._align(image, bg)
        if self.compensate_gain:
            image = self._compensate(image, bg)
        rate = -1.0
        if dt is not None and self.history_s is not None and dt > 0:
            # MOG2's own rule bootstraps with 1/(2n) over the first frames; then one history per history_s
            rate = max(min(dt, 1.0) / self.history_s, 1.0 / (2.0 * (self._frames + 1)))
        raw = self._mog.apply(image, learningRate=rate)
        self._frames += 1
        if self._frames <= self.warmup_frames:
            return MotionResult(0.0, (), image=image, background=bg, shift=shift)
        fg = np.where(raw == 255, np.uint8(255), np.uint8(0))  # 127 = shadow: not foreground
        if shift != (0.0, 0.0):  # the strip shifted in from outside the view holds no information
            sx, sy = int(np.ceil(abs(shift[0]))) + 1, int(np.ceil(abs(shift[1]))) + 1
            if shift[0] > 0:
                fg[:, -sx:] = 0
            elif shift[0] < 0:
                fg[:, :sx] = 0
            if shift[1] > 0:
                fg[-sy:, :] = 0
            elif shift[1] < 0:
                fg[:sy, :] = 0
        if self.global_change_fraction < 1.0 and np.count_nonzero(fg) >= self.global_change_fraction * fg.size:
            # Most of the frame changed at once: a light or camera-exposure change, not motion. Relearn the
            # background fast and report no blobs (people stay tracked by the detector meanwhile).
            self._mog.apply(image, learningRate=self.relearn_rate)
            return MotionResult(
                float(np.count_nonzero(fg)) / fg.size, (), global_change=True, image=image, background=bg, shift=shift
            )
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel_open)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self._kernel_close)
        h, w = fg.shape
        total = float(h * w)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        blobs: list[Blob] = []
        covered = 0
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            if area / total < self.min_blob_fraction:
                continue
            covered += area
            blobs.append(Blob((x / w, y / h, (x + bw) / w, (y + bh) / h), area / total))
        if len(blobs) < n - 1:  # small components dropped: keep them out of the mask as well
            keep = np.zeros(n, np.uint8)
            for i in range(1, n):
                if stats[i][4] / total >= self.min_blob_fraction:
                    keep[i] = 255
            fg = keep[labels]
        solid: tuple[Blob, ...] = ()
        solid_mask = fg
        if blobs and bg is not None:
            explained = cv2.bitwise_or(light_change_mask(image, bg), shift_explained_mask(image, bg))
            solid_mask = cv2.bitwise_and(fg, cv2.bitwise_not(explained))
            # when the camera moved, a wider opening: what survives the two tests above as thin lines is an
            # edge that moved with the camera, not a thing
            kernel = self._kernel_solid if shift != (0.0, 0.0) else self._kernel_open
            solid_mask = cv2.morphologyEx(solid_mask, cv2.MORPH_OPEN, kernel)
            solid_mask = cv2.morphologyEx(solid_mask, cv2.MORPH_CLOSE, self._kernel_close)
            solid = tuple(self._components(solid_mask))
        elif blobs:
            solid = tuple(blobs)
        return MotionResult(
            covered / total,
            tuple(blobs),
            mask=fg,
            image=image,
            background=bg,
            shift=shift,
            solid=solid,
            solid_mask=solid_mask,
        )

    def _components(self, mask: np.ndarray) -> list[Blob]:
        h, w = mask.shape
        total = float(h * w)
        n, _labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        out = []
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            if area / total >= self.min_blob_fraction:
                out.append(Blob((x / w, y / h, (x + bw) / w, (y + bh) / h), area / total))
        return out


def light_change_mask(image: np.ndarray, bg: np.ndarray, radius: int = 2) -> np.ndarray:
    """255 where the frame differs from the background only by light (a soft shadow, exposure, a reflection).

    Per pixel, over a (2r+1)^2 window: where either image has texture, the two windows must correlate
    (zero-mean NCC > 0.8: the same pattern, brighter or darker); where both are flat, the brightness ratio
    must lie in [0.55, 1.6] with the same chromaticity (a plain wall in shade stays grey; a red sleeve in
    front of it does not) unless the light drove the pixel to white, where no colour is left to compare.
    Everything else is a thing in front of the background.
    """
    c = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    b = cv2.cvtColor(bg, cv2.COLOR_RGB2GRAY).astype(np.float32)
    k = (2 * radius + 1, 2 * radius + 1)
    mc, mb = cv2.blur(c, k), cv2.blur(b, k)
    vc = np.maximum(cv2.blur(c * c, k) - mc * mc, 0.0)
    vb = np.maximum(cv2.blur(b * b, k) - mb * mb, 0.0)
    cov = cv2.blur(c * b, k) - mc * mb
    ncc = cov / np.sqrt(vc * vb + 1.0)
    textured = (vc > 16.0) | (vb > 16.0)
    light = textured & (vc > 9.0) & (vb > 9.0) & (ncc > 0.8)
    ratio = (mc + 1.0) / (mb + 1.0)
    si = image.astype(np.float32).sum(axis=2) + 3.0
    sb = bg.astype(np.float32).sum(axis=2) + 3.0
    chroma = np.abs(image[..., 0] / si - bg[..., 0] / sb) + np.abs(image[..., 1] / si - bg[..., 1] / sb)
    # a pixel driven to (near) white by the light loses its colour: no chromaticity test there
    clipped = cv2.blur((image.max(axis=2) >= 245).astype(np.float32), k) > 0.5
    flat_light = ~textured & (ratio > 0.55) & (ratio < 1.6) & ((cv2.blur(chroma, k) < 0.04) | clipped)
    return np.where(light | flat_light, np.uint8(255), np.uint8(0))


def shift_explained_mask(image: np.ndarray, bg: np.ndarray, radius: int = 3, tol: int = 10) -> np.ndarray:
    """255 where the frame's colour is found in the background within ``radius`` pixels (+- ``tol``).

    What is left of camera shake after alignment, a slight rotation or zoom of a hand-held camera, or an
    edge vibrating: a pixel on a strong edge takes a value its neighbours in the background already have. A
    thing in front of the background brings colours that are not there.
    """
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))
    lo = cv2.erode(bg, k).astype(np.int16) - tol
    hi = cv2.dilate(bg, k).astype(np.int16) + tol
    img = image.astype(np.int16)
    inside = np.all((img >= lo) & (img <= hi), axis=2)
    return np.where(inside, np.uint8(255), np.uint8(0))


def _fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``y = a * x + b``; an offset alone when ``x`` barely varies (a flat background).

    A gain cannot be told from an offset on a one-colour background (a tiny or synthetic frame), and
    ``np.polyfit`` then warns and returns an arbitrary slope.
    """
    if float(np.ptp(x)) < 8.0:
        return 1.0, float(np.median(y - x))
    a, b = np.polyfit(x, y, 1)
    return float(a), float(b)
