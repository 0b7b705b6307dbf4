"""The detector narrator: classical perception that narrates people arriving and leaving.

Per frame (all on one downscaled copy, default 192 px wide): MOG2 background subtraction gives moving
blobs; every ``hog_every`` frames the HOG people detector gives person boxes; an IoU tracker with
hysteresis joins them over time. Decisions follow the Streamo protocol:

* **Standby** while something is under way: motion not explained by a person already in view (someone may
  be walking in), a person candidate not yet confirmed or not yet settled, a person in view who is no
  longer detected but still moving (maybe walking out).
* **Response** once an event is complete: a confirmed person has settled (arrived), or a person's track
  timed out (left). Text like "A person arrived (2 people in view)."; ``boxes`` are the people in view,
  ``meta["event"]`` is ``"arrive"``, ``"leave"`` or ``"change"`` (both at once).
* **Silence** otherwise.

Nothing of a frame is kept beyond the background model and the tracker's boxes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from agentkit.policies.detector.config import DetectorConfig
from agentkit.policies.detector.motion import Blob, ForegroundModel
from agentkit.policies.detector.people import Detection, HogPeopleDetector
from agentkit.policies.detector.tracker import Track, Tracker
from agentkit.policy import Policy
from agentkit.types import Box, Decision, Frame

PersonDetector = Callable[[np.ndarray], list[Detection]]


def _people(n: int) -> str:
    if n == 0:
        return "no one in view"
    return "1 person in view" if n == 1 else f"{n} people in view"


def _count_phrase(n: int, verb: str) -> str:
    return f"A person {verb}" if n == 1 else f"{n} people {verb}"


def event_text(arrived: int, left: int, in_view: int) -> str:
    """The narration for arrivals and departures on one frame, e.g. "A person arrived (2 people in view)."."""
    parts = []
    if arrived:
        parts.append(_count_phrase(arrived, "arrived"))
    if left:
        part = _count_phrase(left, "left")
        parts.append(part if not parts else part[0].lower() + part[1:])
    return f"{' and '.join(parts)} ({_people(in_view)})."


class DetectorNarrator(Policy):
    """Narrates people arriving and leaving, from OpenCV background subtraction + HOG + tracking.

    Args:
        config: a :class:`DetectorConfig` or a dict of its fields; keyword arguments override it.
        detector: a callable ``gray image -> list[Detection]`` replacing HOG (for tests or another
            detector); default: :class:`HogPeopleDetector` built from the config.
        **overrides: any :class:`DetectorConfig` field, e.g. ``hog_every=3``.

    Raises:
        ConfigError: a setting is invalid (the message names the field and the value).
        PolicyError: ``hog_backend="opencv"`` but this OpenCV has no HOG (OpenCV 5 without contrib).

    Example:
        >>> from agentkit.policy import make_policy
        >>> policy = make_policy("detector", hog_every=2)  # doctest: +SKIP
        >>> decision = policy.step(frame)  # doctest: +SKIP
    """

    name = "detector"
    Config = DetectorConfig

    def __init__(
        self,
        config: DetectorConfig | dict[str, Any] | None = None,
        detector: PersonDetector | None = None,
        **overrides: Any,
    ) -> None:
        self.config = cfg = self.configure(config, overrides, DetectorConfig)
        if detector is None:
            hog = HogPeopleDetector(
                border=cfg.hog_border,
                border_x=cfg.hog_border_x,
                scale=cfg.hog_scale,
                stride=cfg.hog_stride,
                hit_threshold=cfg.hog_hit_threshold,
                min_score=cfg.hog_min_score,
                backend=cfg.hog_backend,
            )
            detector = hog.detect
        self._detect = detector
        self._fg = ForegroundModel(
            history=cfg.mog2_history,
            var_threshold=cfg.mog2_var_threshold,
            min_blob_fraction=cfg.min_blob_fraction,
            warmup_frames=cfg.warmup_frames,
            global_change_fraction=cfg.global_change_fraction,
            relearn_rate=cfg.relearn_rate,
        )
        self._tracker = Tracker(
            iou_match=cfg.iou_match,
            blob_overlap=cfg.blob_overlap,
            confirm_hits=cfg.confirm_hits,
            confirm_min_s=cfg.confirm_min_s,
            confirm_hit_rate=cfg.confirm_hit_rate,
            confirm_min_score=cfg.confirm_min_score,
            tentative_timeout_s=cfg.tentative_timeout_s,
            lost_after_s=cfg.lost_after_s,
            exit_after_s=cfg.exit_after_s,
            edge_margin=cfg.edge_margin,
            blob_only_max_s=cfg.blob_only_max_s,
        )
        self.reset()

    # -- Policy -----------------------------------------------------------------------------------------
    def reset(self) -> None:
        self._fg.reset()
        self._tracker.reset()
        self._size: tuple[int, int] | None = None
        self._frames = 0
        self._last_hog_pts = float("-inf")
        self._moving = False
        self._on_run = 0
        self._off_run = 0

    @property
    def tracks(self) -> list[Track]:
        """The tracks alive now (read-only use: for tests and overlays)."""
        return list(self._tracker.tracks)

    def step(self, frame: Frame) -> Decision:
        t0 = time.perf_counter()
        cfg = self.config
        h, w = frame.height, frame.width
        ww = min(cfg.work_width, w)
        wh = max(1, round(h * ww / w))
        if self._size != (ww, wh):
            if self._size is not None:  # resolution changed mid-stream: start over
                self.reset()
            self._size = (ww, wh)
        try:
            small = frame.image
            if (ww, wh) != (w, h):
                small = cv2.resize(frame.image, (ww, wh), interpolation=cv2.INTER_AREA)
            motion = self._fg.apply(small)
            run_hog = (
                self._frames % cfg.hog_every == 0
                or frame.pts - self._last_hog_pts >= cfg.hog_max_gap_s  # sparse frames (a gate in front)
                or frame.pts < self._last_hog_pts
                or (cfg.hog_on_motion and motion.fraction >= cfg.motion_fraction)
            )
            if run_hog:
                self._last_hog_pts = float(frame.pts)
            dets = self._detect(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)) if run_hog else None
        except cv2.error as e:  # a frame OpenCV cannot process: record it, keep the stream going
            self._frames += 1
            return Decision.silence(
                seq=frame.seq, pts=frame.pts, errors=[f"opencv: {e}".splitlines()[0]], model_ms=_ms(t0)
            )
        self._frames += 1
        pts = float(frame.pts)
        removed = self._tracker.update(pts, dets, motion.blobs)
        arrived = self._arrivals(pts)
        left = [tr for tr in removed if tr.announced]
        in_view = [tr for tr in self._tracker.tracks if tr.announced]
        unexplained = self._unexplained_motion(motion.blobs, in_view)
        motion_event = self._motion_hysteresis(unexplained >= cfg.motion_fraction)

        meta: dict[str, Any] = {"people": len(in_view), "motion": round(motion.fraction, 4)}
        boxes = [Box(*tr.box, label="person", score=round(tr.score, 3)) for tr in in_view]
        if arrived or left:
            meta["event"] = "change" if (arrived and left) else ("arrive" if arrived else "leave")
            meta["arrived"], meta["left"] = len(arrived), len(left)
            if left:
                meta["departed"] = [Box(*tr.box, label="person").to_dict() for tr in left]
            return Decision.response(
                event_text(len(arrived), len(left), len(in_view)),
                seq=frame.seq,
                pts=frame.pts,
                boxes=boxes,
                meta=meta,
                model_ms=_ms(t0),
            )
        if cfg.narrate_motion and motion_event is not None:
            meta["event"] = f"motion_{motion_event}"
            text = "Motion started." if motion_event == "start" else "Motion stopped."
            return Decision.response(text, seq=frame.seq, pts=frame.pts, boxes=boxes, meta=meta, model_ms=_ms(t0))
        if self._under_way(pts, unexplained):
            return Decision.standby(seq=frame.seq, pts=frame.pts, boxes=boxes, meta=meta, model_ms=_ms(t0))
        return Decision.silence(seq=frame.seq, pts=frame.pts, boxes=boxes, meta=meta, model_ms=_ms(t0))

    # -- event logic ------------------------------------------------------------------------------------
    def _arrivals(self, pts: float) -> list[Track]:
        cfg = self.config
        out = []
        for tr in self._tracker.tracks:
            if tr.announced or tr.confirmed_pts is None:
                continue
            moved = tr.movement(pts, cfg.settle_s)
            settled = moved is not None and moved < cfg.settle_distance
            if settled or pts - tr.confirmed_pts >= cfg.arrive_max_wait_s:
                tr.announced = True
                out.append(tr)
        return out

    def _under_way(self, pts: float, unexplained: float) -> bool:
        """Something started that may complete into an event: wait (Standby) rather than stay silent."""
        if self._moving or unexplained >= self.config.motion_fraction:
            return True
        for tr in self._tracker.tracks:
            if not tr.announced:
                return True  # a candidate that is not (yet) an arrival
            if pts - tr.last_hit > self.config.standby_after_miss_s:
                return True  # in view but no longer detected: maybe walking out
        return False

    def _unexplained_motion(self, blobs: Sequence[Blob], people: Sequence[Track]) -> float:
        """Foreground fraction in blobs that do not mostly lie inside a person already in view."""
        total = 0.0
        for b in blobs:
            bx = b.box
            barea = max((bx[2] - bx[0]) * (bx[3] - bx[1]), 1e-9)
            inside = False
            for tr in people:
                t = tr.box
                ix = max(0.0, min(bx[2], t[2]) - max(bx[0], t[0]))
                iy = max(0.0, min(bx[3], t[3]) - max(bx[1], t[1]))
                if ix * iy >= 0.5 * barea:
                    inside = True
                    break
            if not inside:
                total += b.area
        return total

    def _motion_hysteresis(self, moving_now: bool) -> str | None:
        cfg = self.config
        if moving_now:
            self._on_run += 1
            self._off_run = 0
            if not self._moving and self._on_run >= cfg.motion_on_frames:
                self._moving = True
                return "start"
        else:
            self._off_run += 1
            self._on_run = 0
            if self._moving and self._off_run >= cfg.motion_off_frames:
                self._moving = False
                return "stop"
        return None


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
