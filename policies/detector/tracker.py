"""An IoU tracker with hysteresis: who is in view, since when, and who has gone.

Detections (HOG people) start and confirm tracks; foreground blobs only keep existing tracks alive between
detections, because HOG loses a person who turns sideways or is cut by the frame edge while walking out,
whereas background subtraction loses a person who stands still. A track is removed only after a timeout
without any support (shorter when its last box touched the frame edge: the person walked out).

Pure Python on normalized boxes: no images, so it is cheap and unit-testable without OpenCV.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from agentkit.policies.detector.motion import Blob
from agentkit.policies.detector.people import Detection, NormBox, iou


def _area(b: NormBox) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _intersection(a: NormBox, b: NormBox) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return ix * iy


def _center(b: NormBox) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


@dataclass(slots=True)
class Track:
    """One person candidate followed over time (all times are stream pts in seconds)."""

    id: int
    box: NormBox
    first_pts: float
    last_seen: float  # last frame with any support (detection or blob)
    last_hit: float  # last frame with a detection
    hits: int = 1
    runs: int = 1  # detector runs since the track started (hits / runs = how steadily it is detected)
    score: float = 0.0
    score_sum: float = 0.0
    confirmed_pts: float | None = None
    announced: bool = False  # its arrival has been narrated
    centers: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=128))
    first_box: NormBox | None = None  # the box of its first detection

    def __post_init__(self) -> None:
        if self.first_box is None:
            self.first_box = self.box

    @property
    def confirmed(self) -> bool:
        return self.confirmed_pts is not None

    def touches_edge(self, margin: float) -> bool:
        x1, _, x2, _ = self.box
        return x1 <= margin or x2 >= 1.0 - margin

    def movement(self, now: float, window_s: float) -> float | None:
        """Largest distance of the box centre from its latest position over the last ``window_s`` seconds.

        ``None`` when the track has not been observed for that long yet.
        """
        if not self.centers or now - self.centers[0][0] < window_s * 0.999:
            return None
        _, cx, cy = self.centers[-1]
        return max(math.hypot(x - cx, y - cy) for t, x, y in self.centers if now - t <= window_s + 1e-9)


class Tracker:
    """Associates detections and blobs with tracks and retires tracks after a timeout.

    Args:
        iou_match: minimum IoU for a detection to continue a track.
        blob_overlap: minimum fraction of a track's box a blob must cover to keep it alive.
        confirm_hits: detections a track needs to be confirmed as a person ...
        confirm_min_s: ... spread over at least this many seconds (brief look-alikes, e.g. a hand holding a
            bottle, are not people) ...
        confirm_hit_rate: ... detected on at least this fraction of the detector runs since it started ...
        confirm_min_score: ... with at least this mean detection score.
        tentative_timeout_s: unconfirmed tracks without a detection for this long are dropped.
        lost_after_s: confirmed tracks without support for this long are removed (the person left).
        exit_after_s: the same, for a track whose last box touched the left or right frame edge.
        edge_margin: normalized distance from the edge that counts as touching it.
        blob_only_max_s: a track with no detection for this long is removed even if blobs still overlap it
            (motion nearby must not keep a ghost alive forever).
        follow_after_s: only when a track has had no detection for this long does its box follow blobs.
    """

    def __init__(
        self,
        iou_match: float = 0.3,
        blob_overlap: float = 0.25,
        confirm_hits: int = 3,
        confirm_min_s: float = 1.0,
        confirm_hit_rate: float = 0.6,
        confirm_min_score: float = 0.0,
        tentative_timeout_s: float = 0.6,
        lost_after_s: float = 1.5,
        exit_after_s: float = 0.5,
        edge_margin: float = 0.06,
        blob_only_max_s: float = 6.0,
        follow_after_s: float = 0.3,
    ) -> None:
        self.iou_match = iou_match
        self.blob_overlap = blob_overlap
        self.confirm_hits = confirm_hits
        self.confirm_min_s = confirm_min_s
        self.confirm_hit_rate = confirm_hit_rate
        self.confirm_min_score = confirm_min_score
        self.tentative_timeout_s = tentative_timeout_s
        self.lost_after_s = lost_after_s
        self.exit_after_s = exit_after_s
        self.edge_margin = edge_margin
        self.blob_only_max_s = blob_only_max_s
        self.follow_after_s = follow_after_s
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self.tracks = []
        self._next_id = 1

    def update(self, pts: float, detections: Sequence[Detection] | None, blobs: Sequence[Blob]) -> list[Track]:
        """Advance to ``pts``. ``detections`` is ``None`` on frames where the detector did not run.

        Returns the tracks removed on this frame (the caller decides whether that is a departure).
        """
        hit_ids: set[int] = set()
        if detections is not None:
            for tr in self.tracks:
                tr.runs += 1
        if detections:
            self._associate(pts, detections, hit_ids)
        for tr in self.tracks:
            if tr.id not in hit_ids:
                self._blob_support(pts, tr, blobs)
            cx, cy = _center(tr.box)
            tr.centers.append((pts, cx, cy))
            if (
                tr.confirmed_pts is None
                and tr.id in hit_ids
                and tr.hits >= self.confirm_hits
                and pts - tr.first_pts >= self.confirm_min_s
                and tr.hits >= self.confirm_hit_rate * tr.runs
                and tr.score_sum / tr.hits >= self.confirm_min_score
            ):
                tr.confirmed_pts = pts
        removed = [tr for tr in self.tracks if self._expired(pts, tr)]
        if removed:
            gone = {tr.id for tr in removed}
            self.tracks = [tr for tr in self.tracks if tr.id not in gone]
        return removed

    def _associate(self, pts: float, detections: Sequence[Detection], hit_ids: set[int]) -> None:
        pairs = sorted(
            ((iou(tr.box, d.box), ti, di) for ti, tr in enumerate(self.tracks) for di, d in enumerate(detections)),
            reverse=True,
        )
        used_d: set[int] = set()
        for score, ti, di in pairs:
            if score < self.iou_match:
                break
            tr = self.tracks[ti]
            if tr.id in hit_ids or di in used_d:
                continue
            d = detections[di]
            tr.box, tr.score, tr.last_seen, tr.last_hit = d.box, d.score, pts, pts
            tr.hits += 1
            tr.score_sum += d.score
            hit_ids.add(tr.id)
            used_d.add(di)
        for di, d in enumerate(detections):
            if di in used_d:
                continue
            # A partial second box on a person already tracked (half body, head and shoulders) is support
            # for that track, not a new person.
            inside = [
                tr for tr in self.tracks if _intersection(tr.box, d.box) >= 0.6 * min(_area(tr.box), _area(d.box))
            ]
            if inside:
                tr = max(inside, key=lambda t: _intersection(t.box, d.box))
                if tr.id not in hit_ids:  # the same person, box drifted (e.g. carried by a partial blob)
                    tr.box, tr.score, tr.last_seen, tr.last_hit = d.box, d.score, pts, pts
                    tr.hits += 1
                    tr.score_sum += d.score
                    hit_ids.add(tr.id)
                continue
            tr = Track(self._next_id, d.box, pts, pts, pts, hits=1, score=d.score, score_sum=d.score)
            self._next_id += 1
            self.tracks.append(tr)
            hit_ids.add(tr.id)

    def _blob_support(self, pts: float, tr: Track, blobs: Sequence[Blob]) -> None:
        area = _area(tr.box)
        if area <= 0:
            return
        best: Blob | None = None
        best_cover = 0.0
        for b in blobs:
            inter = _intersection(tr.box, b.box)
            if inter <= 0:
                continue
            cover = max(inter / area, inter / max(_area(b.box), 1e-9) * 0.5)
            if cover > best_cover:
                best, best_cover = b, cover
        if best is None or best_cover < self.blob_overlap:
            return
        tr.last_seen = pts
        ratio = _area(best.box) / area
        # A blob of about a person's size while the detector has lost the person: follow it (walking out).
        # While the detector still finds them, a blob is often just a moving arm: keep the detected box.
        if 0.3 <= ratio <= 3.0 and pts - tr.last_hit > self.follow_after_s:
            tr.box = best.box

    def _expired(self, pts: float, tr: Track) -> bool:
        if not tr.confirmed:  # a candidate lives on detections alone: blobs do not make a person
            return pts - tr.last_hit > self.tentative_timeout_s
        if pts - tr.last_hit > self.blob_only_max_s:
            return True
        timeout = self.exit_after_s if tr.touches_edge(self.edge_margin) else self.lost_after_s
        return pts - tr.last_seen > timeout
