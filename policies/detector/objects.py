"""Tracking every moving thing, classified or not: where it came in, where it stopped, where it went.

Background subtraction gives foreground blobs; this tracker joins them over time into *things* and turns
their life into events, whatever they are (a person, a car, a hand carrying a bottle). A class is never
guessed here: the narrator attaches one only when a detector fired on the thing (see :mod:`.narrator`).

Per frame:

1. **Blobs** closer than ``merge_gap`` are merged (one thing often falls apart into pieces).
2. **Association** (greedy on a cost of IoU with the predicted box, centre distance in box sizes and colour
   difference): tracks that move are predicted with their recent velocity. A blob that touches the same frame
   edge as a track is preferred (an arm reaching in from the top stays joined to the top).
3. **Re-identification**: a track that lost its blob in mid-view is kept ``reid_s`` seconds; a new blob near
   its predicted position with a similar colour continues it (a short occlusion is not a leave and a
   re-entry). A track lost at a frame edge has left after ``exit_after_s``.
4. **Rest**: a thing whose centre moved less than ``settle_distance`` over ``settle_s`` is at rest. Its
   patch of the frame and of the background behind it are kept; a resting thing is absorbed by the
   background model within seconds, so from then on the patches tell whether it is still there (the frame
   matches the thing) or gone (the frame matches what was behind it).
5. **Leftovers**: a piece that splits off a moving thing and stays (a bottle put down) or a hole it leaves
   behind (the background model still shows a bottle that was taken away: a "ghost") is told apart by
   where the edges are: in the frame (something was put down) or only in the background (taken away).

Events (:class:`ObjectEvent`): ``enter`` (came in and keeps moving), ``arrive`` (came in and stopped),
``pass`` (came in and left before either), ``leave``, ``stop``, ``start`` (a resting thing moves away),
``move`` (it moved and stopped again), ``placed``, ``removed``. Each happens at most once per occurrence.

Pure NumPy/OpenCV on the small work image; nothing of a frame outlives :meth:`ObjectTracker.update`
except the small rest patches of things at rest.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from agentkit.policies.detector.describe import median_colour, touching_edges
from agentkit.policies.detector.motion import Blob

NormBox = tuple[float, float, float, float]


def _area(b: NormBox) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _inter(a: NormBox, b: NormBox) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def _iou(a: NormBox, b: NormBox) -> float:
    i = _inter(a, b)
    u = _area(a) + _area(b) - i
    return i / u if u > 0 else 0.0


def _center(b: NormBox) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


def _grow(b: NormBox, g: float) -> NormBox:
    return (b[0] - g, b[1] - g, b[2] + g, b[3] + g)


def _union(a: NormBox, b: NormBox) -> NormBox:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def merge_blobs(blobs: Sequence[Blob], gap: float) -> list[Blob]:
    """Union blobs whose boxes, grown by ``gap`` (normalized), overlap; areas add up."""
    items = [(b.box, b.area) for b in blobs]
    changed = True
    while changed and len(items) > 1:
        changed = False
        out: list[tuple[NormBox, float]] = []
        for box, area in items:
            for k, (ob, oa) in enumerate(out):
                if _inter(_grow(box, gap / 2), _grow(ob, gap / 2)) > 0:
                    out[k] = (_union(box, ob), area + oa)
                    changed = True
                    break
            else:
                out.append((box, area))
        items = out
    return [Blob(box, area) for box, area in items]


def _patch(gray: np.ndarray, box: NormBox) -> np.ndarray | None:
    h, w = gray.shape[:2]
    x1, y1 = max(0, int(box[0] * w)), max(0, int(box[1] * h))
    x2, y2 = min(w, int(math.ceil(box[2] * w))), min(h, int(math.ceil(box[3] * h)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return gray[y1:y2, x1:x2].astype(np.float32)


def _edge_energy(p: np.ndarray) -> float:
    gx = cv2.Sobel(p, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(p, cv2.CV_32F, 0, 1, ksize=3)
    return float(np.mean(np.abs(gx[1:-1, 1:-1]) + np.abs(gy[1:-1, 1:-1]))) if p.shape[0] > 2 < p.shape[1] else 0.0


def looks_like_light(cur: np.ndarray | None, bg: np.ndarray | None, flat: float = 6.0, ncc: float = 0.7) -> bool:
    """Whether a changed patch is the same scene under other light (a shadow, exposure, a reflection).

    A thing in front of the background replaces its texture; a light change keeps it and only scales or
    shifts the brightness: the zero-mean normalized cross-correlation of the two patches stays high, or both
    are flat (a plain wall getting brighter).
    """
    if cur is None or bg is None or cur.shape != bg.shape or cur.size < 16:
        return False
    a, b = cur - cur.mean(), bg - bg.mean()
    sa, sb = float(a.std()), float(b.std())
    if sa < flat and sb < flat:
        return True
    if sa < 1e-3 or sb < 1e-3:
        return False
    return float((a * b).mean()) / (sa * sb) > ncc


@dataclass(eq=False)
class ObjectTrack:
    """One thing followed over time (times are stream pts in seconds, boxes normalized)."""

    id: int
    box: NormBox
    first_pts: float
    last_seen: float
    entry: list[str]  # frame edges it touched when first seen; [] = it appeared inside the view
    first_center: tuple[float, float]
    at_start: bool = False  # first seen at the very start of the stream
    max_area: float = 0.0  # largest box area (fraction of the frame)
    max_thickness: float = 0.0  # largest min(width, height) its box had: a sliver stays thin
    colour: np.ndarray | None = None  # running median RGB of its foreground pixels
    centers: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=256))
    lost_since: float | None = None
    announced: bool = False  # its arrival/entry was narrated
    resting: bool = False
    rest_since: float | None = None
    rest_box: NormBox | None = None
    template: np.ndarray | None = None  # gray patch of the thing at rest
    behind: np.ndarray | None = None  # gray patch of the background behind it at that moment
    gone_since: float | None = None
    move_from: tuple[float, float] | None = None  # centre it started moving from (after resting)
    move_pts: float | None = None
    parent: int | None = None  # the track it split off from (a piece or a leftover)
    attached: bool = False  # still touching its parent: not a thing of its own (yet)
    claimed: bool = False  # part of a person (the person is narrated instead)
    held: bool = False  # a person candidate overlaps it now: wait before narrating it as a thing
    held_s: float = 0.0  # how long person candidates overlapped it
    seen_s: float = 0.0  # how long it has been followed
    last_pts: float = 0.0
    checked: bool = False  # a still piece already told apart (put down / hole / neither)
    light: bool = False  # its patch keeps the background's texture: a light change or a shadow, not a thing
    kind: str = "thing"  # "thing" or a leftover: "placed"
    last_edges: list[str] = field(default_factory=list)

    @property
    def center(self) -> tuple[float, float]:
        return _center(self.box)

    def velocity(self, window_s: float = 0.5) -> tuple[float, float]:
        """Mean velocity (normalized units per second) over the last ``window_s`` seconds."""
        if len(self.centers) < 2:
            return (0.0, 0.0)
        t1, x1, y1 = self.centers[-1]
        t0, x0, y0 = next(c for c in self.centers if t1 - c[0] <= window_s + 1e-9)
        if t1 - t0 <= 1e-6:
            return (0.0, 0.0)
        return ((x1 - x0) / (t1 - t0), (y1 - y0) / (t1 - t0))

    def movement(self, now: float, window_s: float) -> float | None:
        """Largest distance of the centre from its latest position over the last ``window_s`` (None: too young)."""
        if not self.centers or now - self.centers[0][0] < window_s * 0.999:
            return None
        _, cx, cy = self.centers[-1]
        return max(math.hypot(x - cx, y - cy) for t, x, y in self.centers if now - t <= window_s + 1e-9)

    def travel(self) -> float:
        """Distance of the centre from where it was first seen (normalized)."""
        cx, cy = self.center
        return math.hypot(cx - self.first_center[0], cy - self.first_center[1])

    def path_speed(self) -> float:
        """Mean speed over its whole life, in frame sizes per second."""
        if len(self.centers) < 2:
            return 0.0
        t0, x0, y0 = self.centers[0]
        t1, x1, y1 = self.centers[-1]
        return math.hypot(x1 - x0, y1 - y0) / max(t1 - t0, 1e-6)


@dataclass(frozen=True)
class ObjectEvent:
    """Something that completed on this frame for one track (see the module docstring for ``kind``)."""

    kind: str
    track: ObjectTrack
    edges: tuple[str, ...] = ()  # exit edges for leave/pass
    where: NormBox | None = None  # the place it concerns (rest box for stop/placed/removed)


class ObjectTracker:
    """Tracks foreground blobs as things and reports their events.

    Args:
        merge_gap: blobs closer than this (normalized) are one thing.
        edge_margin: distance from a frame edge that counts as touching it.
        min_area: a thing must reach this box area (fraction of the frame) before it is narrated.
        min_life_s: ... and be followed this long.
        min_travel: a thing that appeared inside the view (not at an edge) is narrated only once it moved this
            far (noise, flicker and swaying leaves stay put).
        enter_wait_s: a thing that came in and keeps moving is narrated ("entered") after this long.
        settle_s: it is at rest when its centre moved less than ``settle_distance`` over this window.
        settle_distance: see ``settle_s``.
        start_travel: a resting thing that moves this far (normalized) from its place "started moving".
        start_wait_s: ... or has kept moving this long.
        exit_after_s: a track whose blob vanished at a frame edge has left after this long.
        reid_s: a track whose blob vanished inside the view is kept this long for re-identification.
        reid_colour: largest colour difference (RGB distance / 255) to re-identify a lost track.
        gone_s: a resting thing's place must look like the background behind it this long to be gone.
        busy_rate: learning rate of the map of how often each place is foreground ...
        busy_level: ... places above this level (flicker, swaying leaves) start no new things.
        max_hold_s: person candidates defer a thing's narration at most this long in all (a hand holding a
            bottle looks like a person to HOG again and again).
        min_side: a thing narrower or shorter than this (normalized) is a sliver, not a thing.
        forget_s: a still track that was never narrated is dropped after this long at rest (memory stays
            bounded on a stream of hours).
        light_check: also drop a whole track whose box keeps the background's texture (a light change); off
            when the blobs already come without light changes (:attr:`.motion.MotionResult.solid`).
    """

    def __init__(
        self,
        merge_gap: float = 0.03,
        edge_margin: float = 0.03,
        min_area: float = 0.004,
        min_life_s: float = 0.4,
        min_travel: float = 0.12,
        enter_wait_s: float = 2.0,
        settle_s: float = 0.5,
        settle_distance: float = 0.03,
        start_travel: float = 0.15,
        start_wait_s: float = 2.0,
        exit_after_s: float = 0.4,
        reid_s: float = 2.0,
        reid_colour: float = 0.25,
        gone_s: float = 0.3,
        busy_rate: float = 0.02,
        busy_level: float = 0.25,
        light_check: bool = False,
        max_hold_s: float = 1.5,
        min_side: float = 0.03,
        forget_s: float = 10.0,
    ) -> None:
        self.merge_gap = merge_gap
        self.edge_margin = edge_margin
        self.min_area = min_area
        self.min_life_s = min_life_s
        self.min_travel = min_travel
        self.enter_wait_s = enter_wait_s
        self.settle_s = settle_s
        self.settle_distance = settle_distance
        self.start_travel = start_travel
        self.start_wait_s = start_wait_s
        self.exit_after_s = exit_after_s
        self.reid_s = reid_s
        self.reid_colour = reid_colour
        self.gone_s = gone_s
        self.busy_rate = busy_rate
        self.busy_level = busy_level
        self.light_check = light_check
        self.max_hold_s = max_hold_s
        self.min_side = min_side
        self.forget_s = forget_s
        self.reset()

    def reset(self) -> None:
        self.tracks: list[ObjectTrack] = []
        self._next_id = 1
        self._first_pts: float | None = None
        self._pts = 0.0
        self._people_near = False
        self._busy: np.ndarray | None = None
        self._ghost_zones: list[tuple[NormBox, float]] = []  # (box, until pts): holes left by taken things
        self._recent: list[tuple[NormBox, float]] = []  # (last box, until pts) of tracks just removed

    # -- public ---------------------------------------------------------------------------------------
    def visible(self) -> list[ObjectTrack]:
        """Announced, unclaimed things in view now (at rest or moving)."""
        return [t for t in self.tracks if t.announced and not t.claimed and (t.lost_since is None or t.resting)]

    def pending(self, now: float) -> bool:
        """Whether an event is under way: a thing not yet narrated, or a narrated one moving or lost."""
        for t in self.tracks:
            if t.claimed or t.attached or t.light or t.held:
                continue
            if not t.announced:
                if t.resting or t.lost_since is not None or t.max_area < self.min_area:
                    continue
                if now - t.first_pts >= 0.1 and (t.entry or t.travel() > 0.03):
                    return True
                continue
            if t.lost_since is not None or t.move_from is not None or not t.resting:
                return True
        return False

    def update(
        self,
        pts: float,
        blobs: Sequence[Blob],
        image: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        background: np.ndarray | None = None,
        claims: Sequence[NormBox] = (),
        holds: Sequence[NormBox] = (),
    ) -> list[ObjectEvent]:
        """Advance to ``pts`` with this frame's blobs; returns the events that completed on it.

        Args:
            pts: stream time of the frame.
            blobs: foreground blobs (normalized boxes).
            image: the work image (RGB, aligned) the blobs come from, for colours and rest patches.
            mask: its foreground mask (255 = foreground).
            background: the background model's image (RGB), to tell leftovers from holes.
            claims: boxes of people in view (or just gone): things mostly inside one are part of that person.
            holds: boxes of person candidates not yet confirmed: things inside one are not narrated meanwhile.
        """
        if self._first_pts is None:
            self._first_pts = pts
        self._pts = pts
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image is not None else None
        bg_gray = cv2.cvtColor(background, cv2.COLOR_RGB2GRAY) if background is not None else None
        merged = merge_blobs(blobs, self.merge_gap)
        self._update_busy(mask)
        self._ghost_zones = [(b, until) for b, until in self._ghost_zones if until > pts]
        self._recent = [(b, until) for b, until in self._recent if until > pts]
        if gray is not None and bg_gray is not None:
            merged = [b for b in merged if not self._ghost_blob(pts, b, gray, bg_gray)]
        events: list[ObjectEvent] = []

        matched = self._associate(pts, merged)
        used = set(matched.values())
        # unmatched blobs: re-identify a lost track, or start a new one
        for bi, blob in enumerate(merged):
            if bi in used:
                continue
            tr = self._reidentify(pts, blob, image, mask)
            if tr is None:
                tr = self._new_track(pts, blob)
                if tr is None:
                    continue
            matched[tr.id] = bi
            used.add(bi)
        by_id = {t.id: t for t in self.tracks}
        for tid, bi in matched.items():
            self._observe(pts, by_id[tid], merged[bi], image, mask)
        for t in self.tracks:
            if t.id not in matched and t.lost_since is None and not t.resting:
                t.lost_since = pts
            cx, cy = t.center
            if t.lost_since is None:
                t.centers.append((pts, cx, cy))
        self._people_near = bool(claims)
        self._claim(claims, holds)
        for t in list(self.tracks):
            events.extend(self._advance(pts, t, gray, bg_gray))
        return events

    def _ghost_blob(self, pts: float, blob: Blob, gray: np.ndarray, bg_gray: np.ndarray) -> bool:
        """A still blob inside the view where only the background model has edges: the hole of a thing taken.

        Blobs on a moving track's way are not judged (a plain thing in front of a busy background would
        look the same); a ghost's place is kept from starting new things for a while.
        """
        if touching_edges(blob.box, self.edge_margin):
            return False
        for t in self.tracks:
            if t.lost_since is None and not t.resting and _inter(_grow(self._predicted(t, pts), 0.02), blob.box) > 0:
                return False
        cur, bg = _patch(gray, blob.box), _patch(bg_gray, blob.box)
        if cur is None or bg is None or cur.shape != bg.shape:
            return False
        if _edge_energy(bg) > 2.0 * _edge_energy(cur) + 2.0:
            self._ghost_zones.append((_grow(blob.box, 0.01), pts + 2.0))
            return True
        return False

    # -- association ----------------------------------------------------------------------------------
    def _predicted(self, t: ObjectTrack, pts: float) -> NormBox:
        if t.resting and t.rest_box is not None:
            return t.rest_box
        vx, vy = t.velocity()
        dt = min(pts - t.last_seen, 1.0)
        return (t.box[0] + vx * dt, t.box[1] + vy * dt, t.box[2] + vx * dt, t.box[3] + vy * dt)

    def _cost(self, t: ObjectTrack, pred: NormBox, blob: Blob) -> float | None:
        ov = _iou(pred, blob.box)
        (px, py), (bx, by) = _center(pred), _center(blob.box)
        size = max(pred[2] - pred[0], pred[3] - pred[1], blob.box[2] - blob.box[0], blob.box[3] - blob.box[1], 0.05)
        d = math.hypot(px - bx, py - by) / size
        if ov < 0.05 and d > 0.8:
            return None
        cost = (1.0 - ov) + 0.5 * min(d, 2.0)
        shared = set(t.last_edges) & set(touching_edges(blob.box, self.edge_margin))
        if shared:
            cost -= 0.3  # a thing reaching in from an edge stays joined to it
        return cost

    def _associate(self, pts: float, blobs: list[Blob]) -> dict[int, int]:
        pairs = []
        for t in self.tracks:
            if t.lost_since is not None:
                continue
            pred = self._predicted(t, pts)
            for bi, b in enumerate(blobs):
                c = self._cost(t, pred, b)
                if c is not None:
                    pairs.append((c, t.id, bi))
        pairs.sort()
        matched: dict[int, int] = {}
        used: set[int] = set()
        for _c, tid, bi in pairs:
            if tid in matched or bi in used:
                continue
            matched[tid] = bi
            used.add(bi)
        return matched

    def _reidentify(
        self, pts: float, blob: Blob, image: np.ndarray | None, mask: np.ndarray | None
    ) -> ObjectTrack | None:
        colour = median_colour(image, mask, blob.box) if image is not None else None
        best: tuple[float, ObjectTrack] | None = None
        for t in self.tracks:
            if t.lost_since is None or pts - t.lost_since > self.reid_s:
                continue
            c = self._cost(t, self._predicted(t, pts), blob)
            if c is None:
                continue
            if colour is not None and t.colour is not None:
                diff = float(np.linalg.norm(colour - t.colour)) / 255.0
                if diff > self.reid_colour:
                    continue
                c += diff
            if best is None or c < best[0]:
                best = (c, t)
        if best is None:
            return None
        t = best[1]
        t.lost_since = None
        t.centers.clear()  # its path restarts here: no rest judged on a gap in the observations
        return t

    def _new_track(self, pts: float, blob: Blob) -> ObjectTrack | None:
        cx, cy = _center(blob.box)
        for zone, _ in self._ghost_zones:
            if _inter(zone, blob.box) >= 0.5 * _area(blob.box):
                return None  # the hole a taken thing left in the background model, not a thing
        if self._is_busy(blob.box):
            return None
        edges = touching_edges(blob.box, self.edge_margin)
        t = ObjectTrack(self._next_id, blob.box, pts, pts, edges, (cx, cy))
        t.at_start = self._first_pts is not None and pts - self._first_pts < 1.0
        self._next_id += 1
        # a piece that appears touching a tracked thing is part of it until it goes its own way
        for o in self.tracks:
            if o.lost_since is None and _inter(_grow(o.box, self.merge_gap), blob.box) > 0:
                t.parent, t.attached = o.id, True
                t.claimed = o.claimed
                break
        self.tracks.append(t)
        return t

    def _observe(
        self, pts: float, t: ObjectTrack, blob: Blob, image: np.ndarray | None, mask: np.ndarray | None
    ) -> None:
        t.last_seen = pts
        t.lost_since = None
        t.last_edges = touching_edges(blob.box, self.edge_margin)
        if t.resting and t.rest_box is not None:
            # a resting thing keeps its place unless the blob on it has clearly moved away
            (rx, ry), (bx, by) = _center(t.rest_box), _center(blob.box)
            size = max(t.rest_box[2] - t.rest_box[0], t.rest_box[3] - t.rest_box[1])
            if math.hypot(rx - bx, ry - by) < 0.5 * size or t.gone_since is None:
                return
        t.box = blob.box
        t.max_area = max(t.max_area, _area(blob.box))
        t.max_thickness = max(t.max_thickness, min(blob.box[2] - blob.box[0], blob.box[3] - blob.box[1]))
        if image is not None:
            col = median_colour(image, mask, blob.box)
            if col is not None:
                t.colour = col if t.colour is None else 0.8 * t.colour + 0.2 * col

    # -- busy places ----------------------------------------------------------------------------------
    def _update_busy(self, mask: np.ndarray | None) -> None:
        if mask is None:
            return
        small = cv2.resize(mask, (32, 18), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        if self._busy is None or self._busy.shape != small.shape:
            self._busy = np.zeros_like(small)
        self._busy += self.busy_rate * (small - self._busy)

    def _is_busy(self, box: NormBox) -> bool:
        if self._busy is None:
            return False
        h, w = self._busy.shape
        x1, y1 = int(box[0] * w), int(box[1] * h)
        x2, y2 = max(x1 + 1, int(math.ceil(box[2] * w))), max(y1 + 1, int(math.ceil(box[3] * h)))
        return float(self._busy[y1:y2, x1:x2].mean()) >= self.busy_level

    # -- people ---------------------------------------------------------------------------------------
    def _claim(self, claims: Sequence[NormBox], holds: Sequence[NormBox]) -> None:
        for t in self.tracks:
            a = max(_area(t.box), 1e-9)
            dt = max(0.0, min(self._pts - t.last_pts, 1.0)) if t.last_pts else 0.0
            t.last_pts = self._pts
            t.seen_s += dt
            if t.held:
                t.held_s += dt
            # held while a person candidate covers it, but not for ever: look-alikes come and go on a hand
            t.held = t.held_s < self.max_hold_s and any(
                _inter(t.box, c) >= 0.5 * a or _iou(t.box, c) >= 0.3 for c in holds
            )
            if not t.claimed and any(_inter(t.box, c) >= 0.5 * a or _iou(t.box, c) >= 0.3 for c in claims):
                t.claimed = True

    # -- life of a track ------------------------------------------------------------------------------
    def _remove(self, t: ObjectTrack) -> None:
        self.tracks = [o for o in self.tracks if o is not t]
        if not t.light:
            self._recent.append((t.box, self._pts + 2.0))
        for o in self.tracks:
            if o.parent == t.id:
                o.attached = False

    def _advance(
        self, pts: float, t: ObjectTrack, gray: np.ndarray | None, bg_gray: np.ndarray | None
    ) -> list[ObjectEvent]:
        if (
            self.light_check
            and not t.announced
            and not t.light
            and t.lost_since is None
            and gray is not None
            and bg_gray is not None
        ):
            t.light = looks_like_light(_patch(gray, t.box), _patch(bg_gray, t.box))
        quiet = t.claimed or (not t.announced and (t.held or t.light))  # a hold only defers a new thing
        # a piece goes its own way once it no longer touches its parent
        if t.attached:
            parent = next((o for o in self.tracks if o.id == t.parent), None)
            if parent is None or _inter(_grow(parent.box, self.merge_gap), t.box) <= 0:
                t.attached = False
        # lost tracks: gone through an edge, or out of sight for good
        if t.lost_since is not None:
            at_edge = bool(t.last_edges)
            if pts - t.lost_since >= (self.exit_after_s if at_edge else self.reid_s):
                self._remove(t)
                if t.claimed or t.attached or t.light or (self._people_near and t.held_s >= 0.5 * t.seen_s > 0):
                    return []  # part of a person, a piece of another thing, light, or a person walking out
                if t.announced:
                    return [ObjectEvent("leave", t, tuple(t.last_edges))]
                if self._real(pts, t, at_exit=True) and at_edge:
                    return [ObjectEvent("pass", t, tuple(t.last_edges))]
            return []
        if t.resting:
            return self._advance_resting(pts, t, gray, bg_gray, quiet)
        moved = t.movement(pts, self.settle_s)
        if moved is not None and moved < self.settle_distance and pts - t.first_pts >= self.settle_s:
            return self._come_to_rest(pts, t, gray, bg_gray, quiet)
        if quiet or t.attached:
            return []
        if t.move_from is not None and t.move_pts is not None:
            cx, cy = t.center
            if math.hypot(cx - t.move_from[0], cy - t.move_from[1]) >= self.start_travel or (
                pts - t.move_pts >= self.start_wait_s
            ):
                t.move_from, t.move_pts = None, None
                return [ObjectEvent("start", t)]
            return []
        if not t.announced and pts - t.first_pts >= self.enter_wait_s and self._real(pts, t):
            t.announced = True
            return [ObjectEvent("enter", t)]
        return []

    def _real(self, pts: float, t: ObjectTrack, at_exit: bool = False) -> bool:
        """Whether a not-yet-narrated track is a thing worth narrating (not noise, flicker or a piece)."""
        if t.max_area < self.min_area or pts - t.first_pts < self.min_life_s:
            return False
        if t.max_thickness < self.min_side:
            return False  # a sliver along an edge (a border flickering, a frame edge), not a thing
        if t.parent is not None:  # a piece of another thing: only once it went its own way
            return t.travel() >= self.min_travel
        return bool(t.entry) or t.travel() >= self.min_travel

    def _come_to_rest(
        self, pts: float, t: ObjectTrack, gray: np.ndarray | None, bg_gray: np.ndarray | None, quiet: bool
    ) -> list[ObjectEvent]:
        t.resting, t.rest_since, t.rest_box = True, pts, t.box
        t.template = _patch(gray, t.box) if gray is not None else None
        t.behind = _patch(bg_gray, t.box) if bg_gray is not None else None
        t.gone_since = None
        if quiet:
            return []
        if t.move_from is not None:  # it had started moving from a rest: it moved and stopped again
            fx, fy = t.move_from
            cx, cy = t.center
            t.move_from, t.move_pts = None, None
            if math.hypot(cx - fx, cy - fy) >= self.min_travel / 2:
                return [ObjectEvent("move", t, where=t.box)]
            return []
        if t.announced:
            return [ObjectEvent("stop", t, where=t.box)]
        if not t.entry and not t.attached:
            # it appeared inside the view and stays: something put down, the hole of something taken, or a
            # thing that came out from behind another and stopped
            t.checked = True
            kind = self._leftover_kind(t, gray, bg_gray)
            if kind is not None:
                return self._leftover(pts, t, kind)
        if not t.attached and self._real(pts, t):
            t.announced = True
            return [ObjectEvent("arrive", t, where=t.box)]
        return []

    def _leftover_kind(self, t: ObjectTrack, gray: np.ndarray | None, bg_gray: np.ndarray | None) -> str | None:
        """``"removed"`` (only the background has its edges: a hole), ``"placed"`` (only the frame has them) or None."""
        if gray is None or bg_gray is None or t.max_area < self.min_area / 2:
            return None
        cur, bg = _patch(gray, t.box), _patch(bg_gray, t.box)
        if cur is None or bg is None or cur.shape != bg.shape:
            return None
        e_cur, e_bg = _edge_energy(cur), _edge_energy(bg)
        if e_bg > 1.4 * e_cur + 1.0:
            return "removed"
        if e_cur > 1.4 * e_bg + 1.0:
            return "placed"
        return None

    def _agent_near(self, t: ObjectTrack) -> bool:
        """Whether another thing is, or just was, beside ``t`` (what put it down or took it away)."""
        zone = _grow(t.box, 0.05)
        for o in self.tracks:
            if o is not t and not o.light and o.parent != t.id and _inter(zone, o.box) > 0:
                return True
        return any(_inter(zone, b) > 0 for b, _ in self._recent)

    def _leftover(self, pts: float, t: ObjectTrack, kind: str) -> list[ObjectEvent]:
        """A still thing that appeared inside the view: the hole of something taken away (dropped, and its
        place kept from starting new things for a while) or something put down (kept, quiet).

        Neither is narrated from here: MOG2 remembers several backgrounds per pixel, so it misses a thing
        put back where one stood before; :mod:`.scene` compares still places with its own reference instead.
        """
        if kind == "removed":
            self._remove(t)
            self._ghost_zones.append((_grow(t.box, 0.01), pts + 6.0))
        else:
            t.kind = "placed"
        return []

    def _successor(self, pts: float, t: ObjectTrack) -> ObjectTrack | None:
        """A young, un-narrated track right beside where ``t`` rested: ``t`` itself, moving away."""
        assert t.rest_box is not None
        rx, ry = _center(t.rest_box)
        size = max(t.rest_box[2] - t.rest_box[0], t.rest_box[3] - t.rest_box[1], 0.05)
        anchored = set(touching_edges(t.rest_box, self.edge_margin))
        best: tuple[float, ObjectTrack] | None = None
        for o in self.tracks:
            if o.announced or o.resting or o.lost_since is not None or pts - o.first_pts > 2.0:
                continue
            if anchored and not anchored & set(o.last_edges):
                continue  # a thing reaching in from an edge moves on joined to that edge
            if o.first_pts < (t.rest_since or 0.0):
                continue
            ox, oy = o.center
            d = math.hypot(ox - rx, oy - ry) / size
            if d < 1.5 and (best is None or d < best[0]):
                best = (d, o)
        return None if best is None else best[1]

    @staticmethod
    def _inherit(heir: ObjectTrack, t: ObjectTrack) -> None:
        heir.claimed = heir.claimed or t.claimed
        heir.announced = t.announced
        heir.entry = list(t.entry)
        heir.first_center = t.first_center
        heir.first_pts = min(heir.first_pts, t.first_pts)
        heir.max_area = max(heir.max_area, t.max_area)
        heir.max_thickness = max(heir.max_thickness, t.max_thickness)
        heir.parent, heir.attached = t.parent, False
        if heir.colour is None:
            heir.colour = t.colour
        if t.rest_box is not None and t.announced:
            heir.move_from, heir.move_pts = _center(t.rest_box), heir.last_seen

    def _advance_resting(
        self, pts: float, t: ObjectTrack, gray: np.ndarray | None, bg_gray: np.ndarray | None, quiet: bool
    ) -> list[ObjectEvent]:
        assert t.rest_box is not None
        if not t.announced and not t.checked and not t.entry and not t.attached and not t.claimed:
            t.checked = True  # a still piece left behind by the thing it split off, now on its own
            kind = self._leftover_kind(t, gray, bg_gray)
            if kind is not None:
                return self._leftover(pts, t, kind)
        if not t.announced and t.rest_since is not None and pts - t.rest_since > self.forget_s:
            self._remove(t)  # a still piece nobody narrated (noise, a leftover told by the scene reference)
            return []
        if not t.announced and not quiet and not t.attached and t.entry and self._real(pts, t):
            t.announced = True  # it stopped while a person candidate covered it: now it is a thing
            return [ObjectEvent("arrive", t, where=t.rest_box)]
        if t.last_seen == pts and t.box != t.rest_box:
            # the blob on it moved away (see _observe): it is moving again
            t.resting, t.move_from, t.move_pts = False, _center(t.rest_box), pts
            t.gone_since = None
            t.centers.clear()
            return []
        if gray is None or t.template is None or t.behind is None:
            return []
        cur = _patch(gray, t.rest_box)
        if cur is None or cur.shape != t.template.shape or cur.shape != t.behind.shape:
            return []
        d_obj = float(np.mean(np.abs(cur - t.template)))
        d_bg = float(np.mean(np.abs(cur - t.behind)))
        gone = d_obj > 10.0 and d_bg < 0.6 * d_obj
        if not gone:
            t.gone_since = None
            return []
        if t.gone_since is None:
            t.gone_since = pts
        if pts - t.gone_since < self.gone_s:
            return []
        # its place looks like the background behind it: it went (moved away or was taken)
        self._remove(t)
        heir = self._successor(pts, t)
        if heir is not None:  # it moved away and its blob was taken for a new thing: the same thing
            self._inherit(heir, t)
            return []
        self._ghost_zones.append((_grow(t.rest_box, 0.01), pts + 3.0))
        edges = touching_edges(t.rest_box, self.edge_margin)
        if t.claimed:
            return []
        if not t.announced:
            # it came in, stopped while a look-alike person candidate covered it, and went back out
            if edges and t.entry and not t.light and not self._people_near and self._real(pts, t):
                return [ObjectEvent("pass", t, tuple(edges))]
            return []
        if edges:  # it reached in from an edge and went back out that way
            return [ObjectEvent("leave", t, tuple(edges))]
        if self._agent_near(t):
            return [ObjectEvent("removed", t, where=t.rest_box)]
        return [ObjectEvent("leave", t, where=t.rest_box)]
