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

from agentkit.policies.detector.classes import HaarFaceDetector, body_from_face, faces_available
from agentkit.policies.detector.config import DetectorConfig
from agentkit.policies.detector.describe import (
    colour_name,
    count_text,
    direction_word,
    edge_word,
    place_word,
    size_word,
    speed_word,
    touching_edges,
)
from agentkit.policies.detector.motion import Blob, ForegroundModel
from agentkit.policies.detector.objects import ObjectEvent, ObjectTrack, ObjectTracker
from agentkit.policies.detector.people import Detection, HogPeopleDetector
from agentkit.policies.detector.scene import SceneChange, SceneChangeDetector
from agentkit.policies.detector.tracker import Track, Tracker
from agentkit.policy import Policy
from agentkit.types import Box, Decision, Frame

PersonDetector = Callable[[np.ndarray], list[Detection]]

EVENT_TYPES: dict[str, tuple[tuple[str, ...], ...]] = {
    # the label types each narrated event can stand for, one tuple per event slot (see benchmarks/narration.py)
    "arrive": (("arrive", "enter"),),  # came in and stopped
    "enter": (("enter",),),  # came in, still moving
    "pass": (("enter",), ("leave",)),  # came in and left again
    "leave": (("leave",),),
    "stop": (("stop",),),
    "start": (("start",),),
    "move": (("start",), ("stop",)),  # started moving and stopped again
    "placed": (("count",),),  # something put down: one more thing at rest in view
    "removed": (("count",),),  # something taken away
    "present": (("count",),),  # someone found in view who did not come in (there from the start)
}
"""Event kinds the narrator reports in ``meta["event"]``/``meta["events"]`` and what each can be scored as."""


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


def _thing(t: ObjectTrack) -> tuple[str, str]:
    """("Something small and red", "The small red thing") for an unclassified track."""
    size = size_word(t.max_area)
    colour = colour_name(t.colour) if t.colour is not None else ""
    if colour:
        return f"Something {size} and {colour}", f"The {size} {colour} thing"
    return f"Something {size}", f"The {size} thing"


def _heading(t: ObjectTrack) -> str:
    vx, vy = t.velocity(1.0)
    if abs(vx) + abs(vy) < 1e-6:
        return ""
    speed = speed_word(float(np.hypot(vx, vy)))
    return f"moving {direction_word(vx, vy)}" + (f" {speed}" if speed else "")


def thing_sentence(ev: ObjectEvent) -> str:
    """One sentence for an event of an unclassified thing; it never names a class."""
    t = ev.track
    some, the = _thing(t)
    cx, cy = _center(ev.where if ev.where is not None else t.box)
    here = place_word(cx, cy)
    came = f"came in from {edge_word(t.entry)}" if t.entry else f"appeared {place_word(*t.first_center)}"
    heading = _heading(t)
    if ev.kind == "enter":
        return f"{some} {came}" + (f", {heading}." if heading else ".")
    if ev.kind == "arrive":
        return f"{some} {came} and stopped {here}."
    if ev.kind == "pass":
        return f"{some} {came} and left through {edge_word(list(ev.edges))}."
    if ev.kind == "leave":
        if ev.edges:
            return f"{the} left through {edge_word(list(ev.edges))}."
        return f"{the} went out of sight {here}."
    if ev.kind == "stop":
        return f"{the} stopped {here}."
    if ev.kind == "start":
        return f"{the} started " + (heading if heading else "moving") + "."
    if ev.kind == "move":
        return f"{the} moved and stopped again {here}."
    if ev.kind == "placed":
        return f"{some} was put down {here}."
    if ev.kind == "removed":
        if t.announced:
            return f"{the} {here} was taken away."
        return f"Something was taken away from {here.removeprefix('at ').removeprefix('in ')}."
    return f"{the} changed."


def _widen(b: tuple[float, float, float, float], fx: float = 0.5, fy: float = 0.1) -> tuple[float, float, float, float]:
    w, h = b[2] - b[0], b[3] - b[1]
    return (b[0] - fx * w, b[1] - fy * h, b[2] + fx * w, b[3] + fy * h)


def scene_sentence(ch: SceneChange) -> str:
    """The sentence for a change of the scene, e.g. "Something small and white was put down at the left."."""
    size = size_word(ch.area)
    colour = colour_name(ch.colour) if ch.colour is not None else ""
    some = f"Something {size} and {colour}" if colour else f"Something {size}"
    here = place_word(*_center(ch.box))
    if ch.kind == "placed":
        return f"{some} was put down {here}."
    return f"{some} was taken away from {here.removeprefix('at ').removeprefix('in ')}."


def _center(b: tuple[float, float, float, float]) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


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
            align_max_shift=cfg.align_max_shift,
            history_s=cfg.mog2_history_s,
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
        self._objects = ObjectTracker(
            merge_gap=cfg.merge_gap,
            min_area=cfg.object_min_area,
            min_life_s=cfg.object_min_life_s,
            min_travel=cfg.object_min_travel,
            enter_wait_s=cfg.enter_wait_s,
            settle_s=cfg.settle_s,
            settle_distance=cfg.object_settle_distance,
            start_travel=cfg.start_travel,
            start_wait_s=cfg.enter_wait_s,
            exit_after_s=cfg.object_exit_after_s,
            reid_s=cfg.reid_s,
            reid_colour=cfg.reid_colour,
            busy_level=cfg.busy_level,
        )
        self._scene = SceneChangeDetector()
        self._face_detector = (
            HaarFaceDetector(width=cfg.face_width, min_size=cfg.face_min_size)
            if cfg.faces and faces_available()
            else None
        )
        # faces are looked for every ``face_every_s``: confirmation needs two hits over ~0.5 s
        self._faces = Tracker(
            iou_match=0.2,
            blob_overlap=0.1,
            confirm_hits=2,
            confirm_min_s=min(0.4, cfg.face_every_s),
            confirm_hit_rate=0.5,
            tentative_timeout_s=2.5 * cfg.face_every_s,
            lost_after_s=max(3.0, 4 * cfg.face_every_s),
            exit_after_s=1.0,
            edge_margin=cfg.edge_margin,
            blob_only_max_s=8.0,
        )
        self.reset()

    # -- Policy -----------------------------------------------------------------------------------------
    def reset(self) -> None:
        self._fg.reset()
        self._tracker.reset()
        self._objects.reset()
        self._faces.reset()
        self._scene.reset()
        self._first_pts: float | None = None
        self._last_pts: float | None = None
        self._last_face_pts = float("-inf")
        self._departed: list[tuple[tuple[float, float, float, float], float]] = []  # (last box, until pts)
        self._size: tuple[int, int] | None = None
        self._frames = 0
        self._last_hog_pts = float("-inf")
        self._moving = False
        self._on_run = 0
        self._off_run = 0

    @property
    def tracks(self) -> list[Track]:
        """The people tracks alive now (read-only use: for tests and overlays)."""
        return list(self._tracker.tracks)

    @property
    def things(self) -> list[ObjectTrack]:
        """The unclassified things alive now, narrated or not (read-only use: for tests and overlays)."""
        return list(self._objects.tracks)

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
            dt = frame.pts - self._last_pts if self._last_pts is not None and frame.pts > self._last_pts else None
            self._last_pts = float(frame.pts)
            motion = self._fg.apply(small, dt=dt)
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
        if self._first_pts is None or pts < self._first_pts:
            self._first_pts = pts
        removed = self._tracker.update(pts, dets, motion.solid)
        arrived = self._arrivals(pts)
        # there from the start: found in the first second, away from the edges (not seen coming in)
        present = [
            tr
            for tr in arrived
            if tr.first_pts - self._first_pts < 1.0 and not touching_edges(tr.first_box or tr.box, cfg.edge_margin)
        ]
        arrived = [tr for tr in arrived if tr not in present]
        left = [tr for tr in removed if tr.announced]
        in_view = [tr for tr in self._tracker.tracks if tr.announced]
        face_present, face_left = self._face_step(frame, small, pts, motion.solid, in_view)
        faces_in_view = self._face_people(in_view)
        present += face_present
        left_n = len(left) + len(face_left)
        for tr in left + face_left:
            self._departed.append((_widen(tr.box), pts + 3.0))
        self._departed = [(b, until) for b, until in self._departed if until > pts]
        thing_events: list[ObjectEvent] = []
        if cfg.objects:
            # a person's own pieces (an arm, their shadow, the part of them a blob still shows when HOG lost
            # them walking out) lie in or right beside their box
            claims = [_widen(tr.box) for tr in self._tracker.tracks if tr.confirmed]
            claims += [body_from_face(tr.box) for tr in self._faces.tracks if tr.confirmed]
            claims += [b for b, _ in self._departed]
            # a candidate not confirmed within 1.5 s is a look-alike (a hand holding a bottle): no longer held
            holds = [tr.box for tr in self._tracker.tracks if not tr.confirmed and pts - tr.first_pts < 1.5]
            holds += [body_from_face(tr.box) for tr in self._faces.tracks if not tr.confirmed]
            thing_events = self._objects.update(
                pts,
                motion.solid,
                image=motion.image,
                mask=motion.solid_mask,
                background=motion.background,
                claims=claims,
                holds=holds,
            )
        changes: list[SceneChange] = []
        if cfg.objects and motion.image is not None and self._frames > cfg.warmup_frames:
            # people: with a wide margin (HOG's box leaves out an arm held out; what of a person stood still
            # must not enter the reference picture, or their leaving reads as something taken away)
            exclude = [_widen(tr.box, 1.0, 0.2) for tr in self._tracker.tracks]
            exclude += claims + holds
            # whatever reaches in from an edge (an arm, with its shadow) is followed, even where the thing
            # tracker lost part of it
            exclude += [b.box for b in motion.blobs if touching_edges(b.box, cfg.edge_margin)]
            exclude += [
                t.box
                for t in self._objects.tracks
                if t.lost_since is None and (t.announced or not t.resting or t.entry) and not t.light
            ]
            changes = self._scene.update(pts, motion.image, exclude, foreground=motion.mask)
        things = self._objects.visible() if cfg.objects else []
        unexplained = self._unexplained_motion(motion.solid, in_view)
        motion_event = self._motion_hysteresis(unexplained >= cfg.motion_fraction)

        n_people = len(in_view) + len(faces_in_view)
        meta: dict[str, Any] = {"people": n_people, "motion": round(motion.fraction, 4)}
        if cfg.objects:
            meta["things"] = len(things)
        boxes = [Box(*tr.box, label="person", score=round(tr.score, 3)) for tr in in_view]
        boxes += [Box(*tr.box, label="face") for tr in faces_in_view]
        boxes += [Box(*t.box, label="object") for t in things]
        kinds: list[str] = []
        sentences: list[str] = []
        if arrived or left_n:
            kinds += ["arrive"] * len(arrived) + ["leave"] * left_n
            sentences.append(event_text(len(arrived), left_n, n_people)[:-1].rsplit(" (", 1)[0] + ".")
        for _tr in present:
            kinds.append("present")
        if len(present) == 1:
            tr = present[0]
            where = body_from_face(tr.box) if tr in face_present else tr.box  # a face is at the top of a person
            sentences.append(f"A person is in view {place_word(*_center(where))}.")
        elif present:
            sentences.append(f"{len(present)} people are in view.")
        for ev in thing_events:
            kinds.append(ev.kind)
            sentences.append(thing_sentence(ev))
        for ch in changes:
            kinds.append(ch.kind)
            sentences.append(scene_sentence(ch))
        if kinds:
            if all(k in ("arrive", "leave") for k in kinds):
                meta["event"] = "change" if (arrived and left_n) else ("arrive" if arrived else "leave")
                meta["arrived"], meta["left"] = len(arrived), left_n
            else:
                meta["event"] = kinds[0] if len(set(kinds)) == 1 else "change"
            meta["events"] = kinds
            departed = [Box(*tr.box, label="person") for tr in left + face_left]
            departed += [Box(*ev.track.box, label="object") for ev in thing_events if ev.kind in ("leave", "pass")]
            departed += [Box(*ch.box, label="object") for ch in changes if ch.kind == "removed"]
            if departed:
                meta["departed"] = [b.to_dict() for b in departed]
            boxes += [Box(*ch.box, label="object") for ch in changes if ch.kind == "placed"]
            body = " ".join(sentences)
            if set(kinds) == {"present"} and n_people == len(present) and not things:
                text = body  # "A person is in view ..." already says how many
            else:
                text = f"{body[:-1]} ({count_text(n_people, len(things))})."
            return Decision.response(text, seq=frame.seq, pts=frame.pts, boxes=boxes, meta=meta, model_ms=_ms(t0))
        if cfg.narrate_motion and motion_event is not None:
            meta["event"] = f"motion_{motion_event}"
            text = "Motion started." if motion_event == "start" else "Motion stopped."
            return Decision.response(text, seq=frame.seq, pts=frame.pts, boxes=boxes, meta=meta, model_ms=_ms(t0))
        if self._under_way(pts, unexplained) or (cfg.objects and self._objects.pending(pts)):
            return Decision.standby(seq=frame.seq, pts=frame.pts, boxes=boxes, meta=meta, model_ms=_ms(t0))
        return Decision.silence(seq=frame.seq, pts=frame.pts, boxes=boxes, meta=meta, model_ms=_ms(t0))

    # -- faces ------------------------------------------------------------------------------------------
    def _face_step(
        self, frame: Frame, small: np.ndarray, pts: float, blobs: Sequence[Blob], people: Sequence[Track]
    ) -> tuple[list[Track], list[Track]]:
        """Run the face cascade when due; returns face-people newly in view and those gone through an edge."""
        if self._face_detector is None:
            return [], []
        cfg = self.config
        dets: list[Detection] | None = None
        if pts - self._last_face_pts >= cfg.face_every_s or pts < self._last_face_pts:
            self._last_face_pts = pts
            src = frame.image if frame.width >= cfg.face_width or small.shape[1] < cfg.face_width else small
            h, w = src.shape[:2]
            if w > cfg.face_width:
                src = cv2.resize(
                    src, (cfg.face_width, max(1, round(h * cfg.face_width / w))), interpolation=cv2.INTER_AREA
                )
            dets = self._face_detector.detect(cv2.cvtColor(src, cv2.COLOR_RGB2GRAY))
        removed = self._faces.update(pts, dets, blobs)
        new = []
        for tr in self._faces.tracks:
            if tr.confirmed and not tr.announced:
                tr.announced = True
                if not self._inside_person(tr, people):
                    new.append(tr)
        gone = [tr for tr in removed if tr.announced and tr.touches_edge(cfg.edge_margin)]
        gone = [tr for tr in gone if not self._inside_person(tr, people)]
        return new, gone

    def _face_people(self, people: Sequence[Track]) -> list[Track]:
        return [tr for tr in self._faces.tracks if tr.announced and not self._inside_person(tr, people)]

    @staticmethod
    def _inside_person(face: Track, people: Sequence[Track]) -> bool:
        cx, cy = _center(face.box)
        return any(p.box[0] <= cx <= p.box[2] and p.box[1] <= cy <= p.box[3] for p in people)

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
