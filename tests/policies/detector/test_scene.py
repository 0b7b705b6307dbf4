"""The scene reference: something put down / taken away is told once the place is still."""

from __future__ import annotations

import numpy as np

from agentkit.policies.detector.scene import SceneChangeDetector

W, H, FPS = 192, 108, 10.0


def _background() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.full((H, W, 3), 150, np.uint8)
    img[70:] = 200  # a table
    img += rng.integers(0, 6, size=img.shape, dtype=np.uint8)
    return img


def _thing(img: np.ndarray) -> None:
    img[45:75, 90:104] = (40, 60, 160)  # a bottle-sized box with a striped label: edges
    img[52:56, 90:104] = 240
    img[62:66, 90:104] = 240


def _arm(img: np.ndarray, reach: float) -> None:
    img[0 : int(reach * 50), 92:102] = (120, 30, 30)


def _arm_box(t: float) -> list[tuple[float, float, float, float]]:
    """What the narrator follows: the arm reaching in from the top edge, while it is in view."""
    return [(92 / W, 0.0, 102 / W, 0.5)] if 1.0 <= t < 3.0 else []


def _run(detector: SceneChangeDetector, frames, exclude=_arm_box, t0: float = 0.0):
    out = []
    for i, img in enumerate(frames):
        t = i / FPS
        for ch in detector.update(t0 + t, img, exclude(t)):
            out.append((round(t, 1), ch.kind, ch.box))
    return out


def _visit(bg: np.ndarray, put: bool, take: bool, seconds: float = 6.0):
    """An arm reaches down from the top (1-2 s), puts a thing down or takes it, goes back up (2-3 s)."""
    frames = []
    for i in range(round(seconds * FPS)):
        t = i / FPS
        img = bg.copy()
        there = (take and t < 2.0) or (put and t >= 2.0) or (not put and not take)
        if there and (put or take):
            _thing(img)
        if 1.0 <= t < 3.0:
            _arm(img, (t - 1.0) if t < 2.0 else (3.0 - t))
        frames.append(img)
    return frames


def test_put_down_then_taken_away() -> None:
    bg = _background()
    det = SceneChangeDetector()
    events = _run(det, _visit(bg, put=True, take=False))
    assert [e[1] for e in events] == ["placed"], events
    t, _, box = events[0]
    assert 3.0 <= t <= 5.0
    assert 0.4 < (box[0] + box[2]) / 2 < 0.6
    events = _run(det, _visit(bg, put=False, take=True), t0=10.0)  # the same scene, later: taken away
    assert [e[1] for e in events] == ["removed"], events


def test_nothing_reported_while_followed_or_without_a_change() -> None:
    bg = _background()
    # the arm comes and goes, nothing changes
    assert _run(SceneChangeDetector(), _visit(bg, put=False, take=False)) == []
    # something put down inside a followed box (a person standing there) is not compared until it is gone
    det = SceneChangeDetector()
    followed = lambda t: [(0.3, 0.0, 0.7, 1.0)] if t < 6 else []  # noqa: E731
    events = _run(det, _visit(bg, put=True, take=False, seconds=8.0), exclude=followed)
    assert [e[1] for e in events] == ["placed"] and events[0][0] >= 6.0, events


def test_flicker_is_never_still() -> None:
    bg = _background()
    frames = []
    for i in range(80):
        img = bg.copy()
        if i % 2:
            img[10:40, 10:50] = 250
        frames.append(img)
    assert _run(SceneChangeDetector(), frames) == []
