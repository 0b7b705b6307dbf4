"""The detector narrator's settings, validated in one place.

Every threshold the narrator uses lives here (nothing is tuned to one video's timestamps), so a user can
adapt it to another camera from a YAML ``policy_args`` block or ``make_policy("detector", **kw)``. A bad
value raises :class:`~agentkit.errors.ConfigError` naming the field and the value.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from agentkit.policy import PolicyConfig


class DetectorConfig(PolicyConfig):
    """Settings of :class:`~agentkit.policies.detector.DetectorNarrator`.

    Attributes:
        work_width: width in pixels every frame is downscaled to before any analysis (aspect kept). The
            HOG people window is 64x128 px, so at this width a person must span roughly 60-100 % of the
            frame height to be found; raise it (cost grows ~quadratically) for people far from the camera.
        hog_backend: ``"auto"`` (OpenCV's HOG when this OpenCV build has it, else the NumPy port),
            ``"opencv"`` or ``"numpy"`` (same detector, same weights, ~3x slower).
        hog_border: pixels of replicated border added above and below the downscaled image so a person
            filling the whole frame height still fits the HOG window.
        hog_border_x: the same on the left and right (0: replicated edge columns look like a person).
        hog_every: run the HOG people detector on every N-th frame (always on a frame with fresh motion
            when ``hog_on_motion``); between runs tracks are carried by background-subtraction blobs.
        hog_max_gap_s: also run HOG whenever this much stream time passed since its last run (frames may
            arrive sparsely, e.g. behind a motion gate: a person standing still must still be re-detected).
        hog_on_motion: also run HOG on any frame whose foreground fraction exceeds ``motion_fraction``.
        hog_scale: scale step of the HOG image pyramid (smaller: more scales, slower, more recall).
        hog_stride: HOG window stride in pixels (4 or 8).
        hog_hit_threshold: SVM margin a window needs to count as a person (OpenCV ``hitThreshold``).
        hog_min_score: detections whose grouped SVM weight is below this are dropped.
        mog2_history: frames of history of the MOG2 background model (10 fps: 500 = 50 s).
        mog2_history_s: the same in seconds of stream: the background learns at this rate whatever the frame
            rate (50 s = 500 frames at 10 fps; a thing that stops is absorbed after ~5 s at any frame rate).
        mog2_var_threshold: MOG2 squared Mahalanobis distance for a pixel to be foreground.
        warmup_frames: frames at the start of a stream (or after a resolution change) whose foreground is
            ignored while the background model learns.
        global_change_fraction: when this fraction of the frame turns foreground at once it is a light or
            camera-exposure change, not motion: the background is relearned fast (``relearn_rate``).
        relearn_rate: MOG2 learning rate on such frames.
        min_blob_fraction: connected foreground components smaller than this fraction of the frame are noise.
        motion_fraction: foreground fraction above which a frame counts as "in motion".
        motion_on_frames: consecutive moving frames before motion counts as started (hysteresis).
        motion_off_frames: consecutive still frames before motion counts as stopped (hysteresis).
        iou_match: minimum IoU for a detection to continue a track.
        blob_overlap: minimum fraction of a track's box covered by a foreground blob for the blob to keep
            the track alive between HOG hits (a person walking out is often no longer found by HOG).
        confirm_hits: HOG hits a new track needs before it is a person ...
        confirm_min_s: ... spread over at least this many seconds (brief look-alikes such as a hand holding
            a bottle are not confirmed) ...
        confirm_hit_rate: ... found by HOG on at least this fraction of its runs since the track started ...
        confirm_min_score: ... with at least this mean HOG score.
        tentative_timeout_s: a not-yet-confirmed track with no HOG hit for this long is discarded.
        settle_s: the arrival is complete when the person's box centre moved less than ``settle_distance``
            (normalized) over this window ...
        settle_distance: ... (see ``settle_s``).
        arrive_max_wait_s: ... or at the latest this long after confirmation, even if still moving.
        lost_after_s: a confirmed person with no HOG hit and no overlapping motion for this long has left.
        exit_after_s: shorter timeout for a person whose last box touched the frame edge (walked out).
        edge_margin: normalized distance from the frame edge that counts as touching it.
        standby_after_miss_s: a person in view not re-detected by HOG for this long makes the narrator
            answer Standby (they may be walking out) until they are detected again or have left.
        blob_only_max_s: a person not re-detected by HOG for this long is dropped even if motion still
            overlaps their box (so motion nearby cannot keep a ghost in view forever).
        narrate_motion: also answer Response "Motion started." / "Motion stopped." for motion that is not
            explained by a person in view (off by default: motion is then Standby, it may become an arrival).
        objects: general narration: track every moving thing (not only people) and narrate it by what was
            measured (size, colour, where it came in, stopped and left, direction, speed). Off: people only.
        merge_gap: blobs closer than this (normalized) are one thing.
        object_min_area: a thing must reach this box area (fraction of the frame) to be narrated.
        object_min_life_s: ... and be followed at least this long.
        object_min_travel: a thing that appeared inside the view (not at an edge) must move this far (normalized)
            to be narrated: flicker, swaying leaves and noise stay put.
        enter_wait_s: a thing that came in and keeps moving is narrated ("came in") after this long.
        object_settle_distance: a thing whose centre moved less than this over ``settle_s`` is at rest.
        start_travel: a resting thing that moved this far "started moving" (or after ``enter_wait_s``).
        object_exit_after_s: a thing whose blob vanished at a frame edge has left after this long.
        reid_s: a thing whose blob vanished inside the view (occluded) is kept this long and re-identified by
            predicted position and colour when it shows again.
        reid_colour: largest colour difference (RGB distance / 255) for re-identification.
        busy_level: places that are foreground this often (a running average; flicker, leaves, a screen) start
            no new things.
        align_max_shift: undo camera shake up to this many work pixels (0: off).
        faces: also run OpenCV's Haar frontal-face cascade (shipped in the opencv wheel): a face is a person
            in view (HOG needs the whole body).
        face_every_s: run the face cascade at most this often (stream seconds).
        face_width: image width the face cascade runs at.
        face_min_size: smallest face side in pixels at ``face_width``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    work_width: int = Field(192, ge=64, le=4096)
    hog_backend: Literal["auto", "opencv", "numpy"] = "auto"
    hog_border: int = Field(32, ge=0, le=256)
    hog_border_x: int = Field(0, ge=0, le=256)
    hog_every: int = Field(2, ge=1, le=100)
    hog_max_gap_s: float = Field(0.3, gt=0)
    hog_on_motion: bool = False
    hog_scale: float = Field(1.05, gt=1.0, le=2.0)
    hog_stride: int = Field(4, ge=1, le=32)
    hog_hit_threshold: float = 0.0
    hog_min_score: float = 0.0
    mog2_history: int = Field(500, ge=10)
    mog2_history_s: float = Field(50.0, gt=0)
    mog2_var_threshold: float = Field(16.0, gt=0)
    warmup_frames: int = Field(5, ge=0)
    global_change_fraction: float = Field(0.5, gt=0.0, le=1.0)
    relearn_rate: float = Field(0.2, gt=0.0, le=1.0)
    min_blob_fraction: float = Field(0.002, ge=0.0, lt=1.0)
    motion_fraction: float = Field(0.005, ge=0.0, lt=1.0)
    motion_on_frames: int = Field(2, ge=1)
    motion_off_frames: int = Field(10, ge=1)
    iou_match: float = Field(0.3, gt=0.0, le=1.0)
    blob_overlap: float = Field(0.25, gt=0.0, le=1.0)
    confirm_hits: int = Field(3, ge=1)
    confirm_min_s: float = Field(1.0, ge=0)
    confirm_hit_rate: float = Field(0.6, ge=0.0, le=1.0)
    confirm_min_score: float = 0.0
    tentative_timeout_s: float = Field(0.6, gt=0)
    settle_s: float = Field(0.5, gt=0)
    settle_distance: float = Field(0.04, gt=0)
    arrive_max_wait_s: float = Field(2.0, ge=0)
    lost_after_s: float = Field(1.5, gt=0)
    exit_after_s: float = Field(0.5, gt=0)
    edge_margin: float = Field(0.06, ge=0.0, lt=0.5)
    blob_only_max_s: float = Field(6.0, gt=0)
    standby_after_miss_s: float = Field(0.5, gt=0)
    narrate_motion: bool = False
    objects: bool = True
    merge_gap: float = Field(0.03, ge=0.0, lt=0.5)
    object_min_area: float = Field(0.004, ge=0.0, lt=1.0)
    object_min_life_s: float = Field(0.4, ge=0.0)
    object_min_travel: float = Field(0.12, ge=0.0, le=2.0)
    enter_wait_s: float = Field(2.0, gt=0)
    object_settle_distance: float = Field(0.03, gt=0)
    start_travel: float = Field(0.15, gt=0)
    object_exit_after_s: float = Field(0.4, gt=0)
    reid_s: float = Field(2.0, ge=0)
    reid_colour: float = Field(0.25, gt=0)
    busy_level: float = Field(0.25, gt=0.0, le=1.0)
    align_max_shift: float = Field(16.0, ge=0.0)
    faces: bool = True
    face_every_s: float = Field(1.0, gt=0)
    face_width: int = Field(256, ge=32, le=4096)
    face_min_size: int = Field(20, ge=8)

    @model_validator(mode="after")
    def _check_relations(self) -> DetectorConfig:
        if self.exit_after_s > self.lost_after_s:
            raise ValueError(f"exit_after_s ({self.exit_after_s}) must not exceed lost_after_s ({self.lost_after_s})")
        return self
