"""The narrator's event logic on drawn frames: a dark figure walks in, stands, walks out.

The real MOG2 background model runs on the drawn frames; only the person detector is replaced by a
stand-in that finds the dark figure (HOG is trained on photographs, not on rectangles). The real HOG
path is covered by test_detector_video.py on the real clip.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from agentkit.errors import ConfigError
from agentkit.policies.detector import DetectorNarrator
from agentkit.policies.detector.narrator import event_text
from agentkit.policies.detector.people import Detection
from agentkit.types import DecisionKind, Frame

W, H, FPS = 320, 180, 10.0
FIG_W, FIG_Y1, FIG_Y2 = 0.12, 0.1, 0.9


def _background(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tex = rng.integers(150, 220, size=(H // 10, W // 10, 3), dtype=np.uint8)
    return np.kron(tex, np.ones((10, 10, 1), dtype=np.uint8))


def _frame(bg: np.ndarray, xs: list[float], i: int, rng: np.random.Generator) -> Frame:
    img = bg.copy()
    for x in xs:
        x1, x2 = round(x * W), round((x + FIG_W) * W)
        x1c, x2c = max(0, x1), min(W, x2)
        if x2c > x1c:
            img[round(FIG_Y1 * H) : round(FIG_Y2 * H), x1c:x2c] = 25
    noise = rng.integers(-3, 4, size=img.shape)
    img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return Frame(img, t=i / FPS, pts=i / FPS, seq=i, source="synthetic")


def dark_figure_detector(gray: np.ndarray) -> list[Detection]:
    """Stand-in for HOG: each dark, tall, fully visible column group is a person."""
    h, w = gray.shape
    cols = np.flatnonzero((gray < 60).sum(axis=0) > 0.5 * h)
    if cols.size == 0:
        return []
    groups = np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1)
    dets = []
    for g in groups:
        x1, x2 = int(g[0]), int(g[-1]) + 1
        if x1 == 0 or x2 == w:  # cut by the frame edge: not recognisable as a person yet
            continue
        rows = np.flatnonzero((gray[:, x1:x2] < 60).any(axis=1))
        dets.append(Detection((x1 / w, rows[0] / h, x2 / w, (rows[-1] + 1) / h), 1.0))
    return dets


def _walk(script: list[tuple[float, float, float]], t_end: float) -> list[float | None]:
    """Figure x position per frame from (t_start, x_start, x_end) legs with linear motion."""
    xs: list[float | None] = []
    for i in range(round(t_end * FPS)):
        t = i / FPS
        x = None
        for k, (t0, x0, x1) in enumerate(script):
            t1 = script[k + 1][0] if k + 1 < len(script) else t_end
            if t0 <= t < t1:
                x = x0 + (x1 - x0) * min(1.0, (t - t0) / max(t1 - t0, 1e-9))
        xs.append(x)
    return xs


def _run(policy: DetectorNarrator, tracks: list[list[float | None]]) -> list:
    bg = _background()
    rng = np.random.default_rng(1)
    out = []
    for i in range(len(tracks[0])):
        xs = [tr[i] for tr in tracks if tr[i] is not None and tr[i] < 1.0]
        out.append(policy.step(_frame(bg, xs, i, rng)))
    return out


def _responses(decisions: list) -> list:
    return [d for d in decisions if d.kind is DecisionKind.RESPONSE]


# Enter from the left over 2 s (starting at 1 s), stand 4 s, walk out to the right over 2 s, gone 3 s.
ONE_PERSON = [(0.0, -1.0, -1.0), (1.0, -FIG_W, 0.45), (3.0, 0.45, 0.45), (7.0, 0.45, 1.1), (9.0, 1.1, 1.1)]


def test_arrival_and_departure_of_a_drawn_figure() -> None:
    policy = DetectorNarrator(detector=dark_figure_detector)
    xs = [None if (x is None or x <= -1.0) else x for x in _walk(ONE_PERSON, 12.0)]
    decisions = _run(policy, [xs])
    resp = _responses(decisions)
    assert [d.meta["event"] for d in resp] == ["arrive", "leave"], [(d.pts, d.text) for d in resp]
    arrive, leave = resp
    assert 3.0 - 1.0 <= arrive.pts <= 3.0 + 3.0  # stops at 3.0 s
    assert arrive.text == "A person arrived (1 person in view)."
    assert len(arrive.boxes) == 1 and arrive.boxes[0].label == "person"
    b = arrive.boxes[0]
    assert b.x1 == pytest.approx(0.45, abs=0.03) and b.x2 == pytest.approx(0.57, abs=0.03)
    exit_t = 7.0 + (1.0 - 0.45) / (1.1 - 0.45) * 2.0  # left edge of the figure passes x = 1
    assert exit_t - 1.0 <= leave.pts <= exit_t + 3.0
    assert leave.text == "A person left (no one in view)."
    assert leave.boxes == [] and leave.meta["departed"]
    # the protocol: silent before anything happens, Standby while walking in, silent while standing
    assert all(d.kind is DecisionKind.SILENCE for d in decisions if d.pts < 0.9)
    assert any(d.kind is DecisionKind.STANDBY for d in decisions if 1.0 <= d.pts < arrive.pts)
    assert all(d.kind is DecisionKind.SILENCE for d in decisions if 5.0 <= d.pts < 6.9)
    assert all(d.kind is DecisionKind.SILENCE for d in decisions if d.pts > leave.pts + 1.5)
    assert all(d.meta["people"] == 1 for d in decisions if arrive.pts <= d.pts < leave.pts)


def test_two_people_count() -> None:
    policy = DetectorNarrator(detector=dark_figure_detector)
    first = _walk([(0.0, -FIG_W, 0.2), (2.0, 0.2, 0.2)], 14.0)
    second = _walk([(0.0, 1.2, 1.2), (5.0, 1.0, 0.6), (7.0, 0.6, 0.6), (10.0, 0.6, 1.2)], 14.0)
    decisions = _run(policy, [first, second])
    texts = [d.text for d in _responses(decisions)]
    assert texts == [
        "A person arrived (1 person in view).",
        "A person arrived (2 people in view).",
        "A person left (1 person in view).",
    ]


def test_empty_scene_and_light_change_stay_quiet() -> None:
    policy = DetectorNarrator(detector=dark_figure_detector)
    bg = _background()
    rng = np.random.default_rng(2)
    out = []
    for i in range(60):
        img = bg if i < 30 else np.clip(bg.astype(np.int16) + 25, 0, 255).astype(np.uint8)  # exposure jump
        out.append(policy.step(_frame(img, [], i, rng)))
    assert _responses(out) == []
    assert sum(d.kind is DecisionKind.STANDBY for d in out) <= 3


def test_step_keeps_no_frame() -> None:
    policy = DetectorNarrator(detector=dark_figure_detector)
    bg = _background()
    rng = np.random.default_rng(3)
    frame = _frame(bg, [0.3], 0, rng)
    ref = weakref.ref(frame.image)
    policy.step(frame)
    del frame
    gc.collect()
    assert ref() is None


def test_resolution_change_starts_over() -> None:
    policy = DetectorNarrator(detector=dark_figure_detector)
    rng = np.random.default_rng(4)
    policy.step(_frame(_background(), [], 0, rng))
    small = Frame(np.full((90, 160, 3), 128, np.uint8), t=0.1, pts=0.1, seq=1)
    d = policy.step(small)
    assert d.kind is DecisionKind.SILENCE and not d.errors


def test_event_text() -> None:
    assert event_text(1, 0, 2) == "A person arrived (2 people in view)."
    assert event_text(0, 1, 1) == "A person left (1 person in view)."
    assert event_text(0, 2, 0) == "2 people left (no one in view)."
    assert event_text(1, 1, 1) == "A person arrived and a person left (1 person in view)."


def test_config_errors_name_field_and_value() -> None:
    with pytest.raises(ConfigError, match="hog_every=0"):
        DetectorNarrator(detector=dark_figure_detector, hog_every=0)
    with pytest.raises(ConfigError, match="no_such_field"):
        DetectorNarrator(detector=dark_figure_detector, no_such_field=1)
    with pytest.raises(ConfigError, match="exit_after_s"):
        DetectorNarrator(detector=dark_figure_detector, exit_after_s=5.0, lost_after_s=1.0)
    cfg = DetectorNarrator({"hog_every": 3}, detector=dark_figure_detector, settle_s=0.7).config
    assert (cfg.hog_every, cfg.settle_s) == (3, 0.7)
