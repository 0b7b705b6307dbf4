"""The thing tracker on drawn blobs: entries, exits, stops, re-identification after an occlusion, flicker."""

from __future__ import annotations

import numpy as np

from agentkit.policies.detector.motion import Blob
from agentkit.policies.detector.objects import ObjectTracker, looks_like_light, merge_blobs

W, H, FPS = 160, 90, 10.0


def _render(boxes: list[tuple[tuple[float, float, float, float], tuple[int, int, int]]]):
    """A grey frame with coloured rectangles, their mask, and their blobs (clipped to the frame)."""
    img = np.full((H, W, 3), 128, np.uint8)
    mask = np.zeros((H, W), np.uint8)
    blobs = []
    for (x1, y1, x2, y2), col in boxes:
        a, b = max(0.0, x1), min(1.0, x2)
        if b <= a:
            continue
        xs, xe, ys, ye = round(a * W), round(b * W), round(y1 * H), round(y2 * H)
        img[ys:ye, xs:xe] = col
        mask[ys:ye, xs:xe] = 255
        blobs.append(Blob((xs / W, ys / H, xe / W, ye / H), (xe - xs) * (ye - ys) / (W * H)))
    return img, mask, blobs


def _run(tracker: ObjectTracker, script, seconds: float):
    """``script(t)`` -> list of (box, colour) in view at time t; returns [(pts, kind, track id, edges)]."""
    out = []
    for i in range(round(seconds * FPS)):
        t = i / FPS
        img, mask, blobs = _render(script(t))
        for ev in tracker.update(t, blobs, image=img, mask=mask, background=None):
            out.append((round(t, 2), ev.kind, ev.track.id, ev.edges))
    return out


def _slide(t: float, t0: float, x0: float, v: float, w: float = 0.12, y=(0.35, 0.65)):
    x = x0 + v * (t - t0)
    return (x, y[0], x + w, y[1])


RED, BLUE = (200, 30, 30), (30, 60, 200)


def test_a_thing_comes_in_keeps_moving_and_leaves() -> None:
    tr = ObjectTracker()
    events = _run(tr, lambda t: [(_slide(t, 0.5, -0.12, 0.3), RED)] if t >= 0.5 else [], 6.5)
    kinds = [e[1] for e in events]
    assert kinds == ["enter", "leave"], events
    enter, leave = events
    assert 2.0 <= enter[0] <= 3.0  # narrated after enter_wait_s, still moving
    assert leave[3] == ("right",)
    assert enter[2] == leave[2]  # one thing all along


def test_a_fast_thing_passes_through_in_one_event() -> None:
    tr = ObjectTracker()
    events = _run(tr, lambda t: [(_slide(t, 0.5, -0.12, 1.2), BLUE)] if t >= 0.5 else [], 3.0)
    assert [e[1] for e in events] == ["pass"], events
    assert events[0][3] == ("right",)


def test_a_thing_that_stops_has_arrived_and_stays_in_view() -> None:
    def script(t: float):
        if t < 0.5:
            return []
        x = min(-0.12 + 0.4 * (t - 0.5), 0.4)
        return [((x, 0.35, x + 0.12, 0.65), RED)]

    tr = ObjectTracker()
    events = _run(tr, script, 5.0)
    assert [e[1] for e in events] == ["arrive"], events
    assert 1.8 <= events[0][0] <= 3.0  # stops at 1.8 s, settled 0.5 s later
    (thing,) = tr.visible()
    assert thing.resting and thing.entry == ["left"]


def test_short_occlusion_is_the_same_thing_not_a_leave_and_an_entry() -> None:
    def script(t: float):
        if t < 0.5 or 3.0 <= t < 3.8:  # hidden behind something for 0.8 s in the middle of the view
            return []
        return [(_slide(t, 0.5, -0.12, 0.3), RED)]

    tr = ObjectTracker()
    events = _run(tr, script, 6.5)
    assert [e[1] for e in events] == ["enter", "leave"], events
    assert events[0][2] == events[1][2]


def test_a_different_colour_after_an_occlusion_is_another_thing() -> None:
    def script(t: float):
        if t < 0.5 or 3.0 <= t < 3.8:
            return []
        return [(_slide(t, 0.5, -0.12, 0.3), RED if t < 3.0 else BLUE)]

    tr = ObjectTracker()
    events = _run(tr, script, 6.5)
    ids = {e[2] for e in events}
    assert len(ids) == 2, events  # the blue one that shows up where the red one went is not re-identified


def test_flicker_in_one_place_is_never_a_thing() -> None:
    def script(t: float):
        return [((0.4, 0.2, 0.55, 0.5), (240, 240, 240))] if int(t * FPS) % 2 else []

    tr = ObjectTracker()
    assert _run(tr, script, 10.0) == []
    assert not tr.pending(10.0)


def test_a_still_blob_that_appears_in_the_middle_is_not_narrated() -> None:
    tr = ObjectTracker()
    assert _run(tr, lambda t: [((0.4, 0.4, 0.5, 0.5), RED)] if t > 1.0 else [], 5.0) == []


def test_merge_blobs_joins_pieces() -> None:
    pieces = [Blob((0.1, 0.1, 0.2, 0.3), 0.01), Blob((0.21, 0.1, 0.3, 0.3), 0.01), Blob((0.8, 0.8, 0.9, 0.9), 0.01)]
    merged = sorted(merge_blobs(pieces, 0.03), key=lambda b: b.box)
    assert [b.box for b in merged] == [(0.1, 0.1, 0.3, 0.3), (0.8, 0.8, 0.9, 0.9)]
    assert merged[0].area == 0.02


def test_looks_like_light() -> None:
    rng = np.random.default_rng(0)
    tex = rng.uniform(50, 200, (20, 20)).astype(np.float32)
    assert looks_like_light(tex * 0.7 + 10, tex)  # same texture, darker: a shadow
    assert not looks_like_light(np.full((20, 20), 30, np.float32) + rng.normal(0, 8, (20, 20)), tex)
    assert looks_like_light(np.full((20, 20), 200, np.float32), np.full((20, 20), 150, np.float32))  # flat wall


def test_still_unnarrated_tracks_are_forgotten() -> None:
    """A long stream must not pile up tracks: still blobs nobody narrated go after ``forget_s``."""
    tr = ObjectTracker(forget_s=2.0)
    _run(tr, lambda t: [((0.4, 0.4, 0.5, 0.5), RED)] if t > 1.0 else [], 6.0)
    assert tr.tracks == []
