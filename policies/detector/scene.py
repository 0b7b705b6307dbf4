"""What changed in the scene once the motion around it stopped: something put down, something taken away.

Background subtraction cannot tell this reliably: MOG2 keeps several modes per pixel, so a bottle put back
where it stood a few seconds ago matches a mode it still remembers and is never foreground, and a thing
taken away leaves a "ghost" that looks like a thing. So the narrator keeps its own reference picture of
the scene and compares it with the frame wherever the view has been still for ``stable_s`` after something
moved there (frame-to-frame differencing, which a ghost does not trigger):

* the region differs from the reference (beyond light: :func:`~.motion.light_change_mask`) and the frame has
  more edges there than the reference had: something was **put down**;
* the reference had more edges than the frame: something was **taken away**;

then the reference takes the new view there. Places where something is followed (a person, a thing still in
view) are left out until it has gone, so a person standing still is not "put down". Flicker never becomes
still, so it is never compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from agentkit.policies.detector.describe import median_colour
from agentkit.policies.detector.motion import light_change_mask

NormBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class SceneChange:
    """A region of the scene that changed and stayed changed."""

    kind: str  # "placed" or "removed"
    box: NormBox
    area: float  # fraction of the frame
    colour: np.ndarray | None  # median RGB of what is there now (placed) or was there (removed)


def _overlaps(a: NormBox, b: NormBox, grow: float) -> bool:
    return min(a[2], b[2] + grow) > max(a[0], b[0] - grow) and min(a[3], b[3] + grow) > max(a[1], b[1] - grow)


def _same_place(a: NormBox, b: NormBox) -> bool:
    """Parts of one thing: side by side horizontally (a bottle's cap and base settle one after the other)."""
    return min(a[2], b[2] + 0.03) > max(a[0], b[0] - 0.03) and max(a[1], b[1]) - min(a[3], b[3]) < 0.4


def _edge_energy(p: np.ndarray) -> float:
    if p.shape[0] < 3 or p.shape[1] < 3:
        return 0.0
    gx = cv2.Sobel(p, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(p, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.mean(np.abs(gx[1:-1, 1:-1]) + np.abs(gy[1:-1, 1:-1])))


class SceneChangeDetector:
    """Reports things put down or taken away, once the place has been still for a while.

    Args:
        motion_threshold: grey-level change between consecutive frames that counts as motion at a pixel.
        diff_threshold: grey-level difference from the reference picture that counts as a change.
        stable_s: a place must have been still this long (after motion touched it) to be compared.
        min_area: changed regions smaller than this fraction of the frame are ignored.
        edge_ratio: the frame must have this many times the reference's edge energy (or the reverse) for
            "put down" (or "taken away"); in between, the reference is updated silently.
        check_every_s: compare at most this often.
        repeat_s: a change of the same kind next to one reported less than this long ago is its remainder.
    """

    def __init__(
        self,
        motion_threshold: float = 12.0,
        diff_threshold: float = 25.0,
        stable_s: float = 1.0,
        min_area: float = 0.002,
        edge_ratio: float = 1.3,
        check_every_s: float = 0.2,
        repeat_s: float = 3.0,
    ) -> None:
        self.motion_threshold = motion_threshold
        self.diff_threshold = diff_threshold
        self.stable_s = stable_s
        self.min_area = min_area
        self.edge_ratio = edge_ratio
        self.check_every_s = check_every_s
        self.repeat_s = repeat_s
        self._k3 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._k5 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self._k_near = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
        self._k_join = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
        self.reset()

    def reset(self) -> None:
        self._scene: np.ndarray | None = None  # RGB reference picture
        self._prev: np.ndarray | None = None  # previous gray frame
        self._last_motion: np.ndarray | None = None
        self._touched: np.ndarray | None = None
        self._last_check = float("-inf")
        self._reported: list[tuple[NormBox, str, float]] = []  # (box, kind, until pts)

    def update(
        self,
        pts: float,
        image: np.ndarray,
        exclude: Sequence[NormBox] = (),
        foreground: np.ndarray | None = None,
    ) -> list[SceneChange]:
        """Feed one work image (RGB, exposure-compensated and aligned); returns the changes found on it.

        ``exclude``: boxes of what is being followed now (people, things in view): not compared yet.
        ``foreground``: the background model's foreground mask: never taken into the reference picture (a
        hand held still is not part of the scene).
        """
        h, w = image.shape[:2]
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        if self._scene is None or self._scene.shape != image.shape or min(h, w) < 8:
            self._scene = image.copy()
            self._prev = gray
            self._last_motion = np.full((h, w), pts, np.float32)
            self._touched = np.zeros((h, w), bool)
            return []
        assert self._prev is not None and self._last_motion is not None and self._touched is not None
        diff = (cv2.absdiff(gray, self._prev) > self.motion_threshold).astype(np.uint8)
        self._prev = gray
        moving = cv2.dilate(cv2.morphologyEx(diff, cv2.MORPH_OPEN, self._k3), self._k5) > 0
        self._last_motion[moving] = pts
        self._touched |= moving
        if pts < self._last_check:  # the stream went back: start over
            self.reset()
            return []
        if pts - self._last_check < self.check_every_s:
            return []
        self._last_check = pts
        self._reported = [r for r in self._reported if r[2] > pts]
        recent = ((pts - self._last_motion) < self.stable_s).astype(np.uint8)
        near_motion = cv2.dilate(recent, self._k_near) > 0  # wait until the whole neighbourhood is still
        candidate = self._touched & ~near_motion
        for b in exclude:  # what is followed now is neither compared nor taken into the reference
            x1, y1 = max(0, int(b[0] * w)), max(0, int(b[1] * h))
            x2, y2 = min(w, int(np.ceil(b[2] * w))), min(h, int(np.ceil(b[3] * h)))
            if x2 > x1 and y2 > y1:
                candidate[y1:y2, x1:x2] = False
        if not candidate.any():
            return []
        scene_gray = cv2.cvtColor(self._scene, cv2.COLOR_RGB2GRAY)
        changed = (cv2.absdiff(gray, scene_gray) > self.diff_threshold) & candidate
        changed &= light_change_mask(image, self._scene) == 0
        mask = cv2.morphologyEx(changed.astype(np.uint8) * 255, cv2.MORPH_OPEN, self._k3)
        mask = cv2.dilate(mask, self._k_join)  # pieces of one thing (cap, label, base) are one change
        out: list[SceneChange] = []
        keep_out = np.zeros((h, w), bool)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for i in range(1, n):
            x, y, bw, bh, _area = (int(v) for v in stats[i])
            region = (labels == i) & changed
            area = int(np.count_nonzero(region))
            if area / float(h * w) < self.min_area:
                continue
            box = (x / w, y / h, (x + bw) / w, (y + bh) / h)
            if any(_overlaps(box, e, 0.03) for e in exclude):
                keep_out[y : y + bh, x : x + bw] = True  # something followed is here: compare once it has gone
                continue
            cur = gray[y : y + bh, x : x + bw].astype(np.float32)
            ref = scene_gray[y : y + bh, x : x + bw].astype(np.float32)
            e_cur, e_ref = _edge_energy(cur), _edge_energy(ref)
            kind = "placed" if e_cur > self.edge_ratio * e_ref + 1.0 else None
            if kind is None and e_ref > self.edge_ratio * e_cur + 1.0:
                kind = "removed"
            if kind is None:
                continue
            if any(k == kind and _same_place(box, b) for b, k, _ in self._reported):
                continue  # the rest of a change already told (its parts settle one after another)
            same = next((k for k, o in enumerate(out) if o.kind == kind and _same_place(box, o.box)), None)
            if same is not None:  # another part of a change found on this frame: one change
                o = out[same]
                box = (min(box[0], o.box[0]), min(box[1], o.box[1]), max(box[2], o.box[2]), max(box[3], o.box[3]))
                area += round(o.area * h * w)
                del out[same]
            self._reported.append((box, kind, pts + self.repeat_s))
            src = image if kind == "placed" else self._scene
            out.append(SceneChange(kind, box, area / float(h * w), median_colour(src, None, box)))
        update = candidate & ~keep_out
        if foreground is not None and foreground.shape == update.shape:
            update &= foreground == 0
        self._scene[update] = image[update]
        self._touched[update] = False
        return out
