"""The IoU tracker's life cycle on hand-made detections and blobs (no images, no OpenCV models)."""

from __future__ import annotations

import pytest

from agentkit.policies.detector.motion import Blob
from agentkit.policies.detector.people import Detection, iou, nms
from agentkit.policies.detector.tracker import Tracker

PERSON = (0.40, 0.05, 0.60, 0.95)


def _tracker(**kw: float) -> Tracker:
    args = dict(
        confirm_hits=3,
        confirm_min_s=1.0,
        tentative_timeout_s=0.6,
        lost_after_s=1.5,
        exit_after_s=0.5,
        blob_only_max_s=6.0,
    )
    args.update(kw)
    return Tracker(**args)  # type: ignore[arg-type]


def _feed(tr: Tracker, t0: float, t1: float, box=PERSON, fps: float = 10.0, score: float = 1.0, blobs=()) -> list:
    removed = []
    n = round((t1 - t0) * fps)
    for i in range(n):
        removed += tr.update(t0 + i / fps, [Detection(box, score)] if box else [], blobs)
    return removed


def test_iou_and_nms() -> None:
    assert iou(PERSON, PERSON) == pytest.approx(1.0)
    assert iou(PERSON, (0.7, 0.1, 0.9, 0.9)) == 0.0
    kept = nms([Detection(PERSON, 0.5), Detection((0.41, 0.05, 0.61, 0.95), 0.9), Detection((0.7, 0.1, 0.9, 0.9), 0.1)])
    assert [d.score for d in kept] == [0.9, 0.1]


def test_confirmed_only_after_hits_spread_over_time() -> None:
    tr = _tracker()
    _feed(tr, 0.0, 0.5)  # 5 hits in 0.5 s: too brief
    assert len(tr.tracks) == 1 and not tr.tracks[0].confirmed
    _feed(tr, 0.5, 1.1)
    assert tr.tracks[0].confirmed
    assert tr.tracks[0].confirmed_pts == pytest.approx(1.0)


def test_brief_lookalike_never_confirmed_and_expires() -> None:
    tr = _tracker()
    _feed(tr, 0.0, 0.6)
    removed = _feed(tr, 0.6, 2.0, box=None)  # detector runs, finds nothing
    assert [t.confirmed for t in removed] == [False]
    assert tr.tracks == []


def test_low_hit_rate_is_not_a_person() -> None:
    tr = _tracker(confirm_hit_rate=0.6)
    for i in range(30):  # detected on one run in three for 3 s
        tr.update(i / 10, [Detection(PERSON, 1.0)] if i % 3 == 0 else [], ())
    assert tr.tracks and not tr.tracks[0].confirmed


def test_blobs_keep_a_confirmed_person_but_not_a_candidate() -> None:
    tr = _tracker()
    _feed(tr, 0.0, 1.5)
    assert tr.tracks[0].confirmed
    blob = Blob(PERSON, 0.1)
    removed = _feed(tr, 1.5, 4.5, box=None, blobs=(blob,))  # HOG lost them, but they still move there
    assert removed == [] and len(tr.tracks) == 1
    # a fresh candidate is not kept alive by motion alone
    tr2 = _tracker()
    _feed(tr2, 0.0, 0.3)
    removed = _feed(tr2, 0.3, 1.5, box=None, blobs=(blob,))
    assert len(removed) == 1 and tr2.tracks == []


def test_blob_only_support_has_a_limit() -> None:
    tr = _tracker(blob_only_max_s=2.0)
    _feed(tr, 0.0, 1.5)
    removed = _feed(tr, 1.5, 5.0, box=None, blobs=(Blob(PERSON, 0.1),))
    assert len(removed) == 1 and removed[0].confirmed


def test_lost_after_timeout_shorter_at_the_edge() -> None:
    tr = _tracker()
    _feed(tr, 0.0, 1.5)
    removed = _feed(tr, 1.5, 2.9, box=None)
    assert removed == []  # 1.3 s without support < lost_after_s
    removed = _feed(tr, 2.9, 3.2, box=None)
    assert len(removed) == 1

    edge_box = (0.85, 0.05, 0.99, 0.95)
    tr = _tracker()
    _feed(tr, 0.0, 1.5, box=edge_box)
    removed = _feed(tr, 1.5, 2.2, box=None)
    assert len(removed) == 1  # touching the edge: exit_after_s (0.5 s)


def test_box_follows_a_walking_blob_only_once_detection_is_lost() -> None:
    tr = _tracker(follow_after_s=0.3)
    _feed(tr, 0.0, 1.5)
    shifted = (0.48, 0.05, 0.68, 0.95)
    tr.update(1.5, None, (Blob(shifted, 0.1),))  # detector did not run, detection is fresh: keep the box
    assert tr.tracks[0].box == PERSON
    for i in range(1, 6):
        tr.update(1.5 + i / 10, None, (Blob(shifted, 0.1),))
    assert tr.tracks[0].box == shifted


def test_partial_second_box_is_the_same_person() -> None:
    tr = _tracker()
    _feed(tr, 0.0, 0.3)
    upper = (0.41, 0.05, 0.59, 0.5)  # head and shoulders inside the tracked person
    tr.update(0.3, [Detection(upper, 0.5)], ())
    assert len(tr.tracks) == 1


def test_two_people_two_tracks() -> None:
    tr = _tracker()
    other = (0.05, 0.05, 0.25, 0.95)
    for i in range(15):
        tr.update(i / 10, [Detection(PERSON, 1.0), Detection(other, 1.0)], ())
    assert len(tr.tracks) == 2 and all(t.confirmed for t in tr.tracks)
    assert len({t.id for t in tr.tracks}) == 2


def test_movement_window() -> None:
    tr = _tracker()
    _feed(tr, 0.0, 0.2)
    t = tr.tracks[0]
    assert t.movement(0.1, 0.5) is None  # not observed for 0.5 s yet
    _feed(tr, 0.2, 1.0)
    assert t.movement(0.9, 0.5) == pytest.approx(0.0)
