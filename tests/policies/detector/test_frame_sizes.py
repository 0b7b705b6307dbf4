"""Any frame size from 1x1 to 4000x4000 goes through the detector narrator: no crash, no error, a valid Decision.

Before the size check, a frame whose downscaled, padded copy was smaller than the 64x128 HOG window made
OpenCV's ``detectMultiScale`` kill the process (64x48, 640x100: segmentation fault) or raise on every HOG
frame (7x3). The real HOG backend runs here (no stand-in detector).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentkit.policies.detector.people import WINDOW, HogPeopleDetector, hog_available
from agentkit.policy import make_policy
from agentkit.types import Decision, DecisionKind, Frame

BACKENDS = ["numpy"] + (["opencv"] if hog_available() else [])


def _frames(width: int, height: int, n: int) -> list[Frame]:
    """A grey background with a dark bar sliding across: motion blobs and HOG runs on every size."""
    out = []
    bar = max(1, width // 6)
    for i in range(n):
        img = np.full((height, width, 3), 160, np.uint8)
        x = (i * max(1, width // n)) % width
        img[height // 8 : max(height // 8 + 1, 7 * height // 8), x : x + bar] = 30
        out.append(Frame(img, t=i / 10, pts=i / 10, seq=i, source=f"synthetic {width}x{height}"))
    return out


def _check(decision: Decision, frame: Frame) -> None:
    assert isinstance(decision, Decision)
    assert decision.kind in (DecisionKind.SILENCE, DecisionKind.STANDBY, DecisionKind.RESPONSE)
    assert not decision.errors, decision.errors
    assert decision.seq == frame.seq and decision.pts == frame.pts
    for b in decision.boxes:
        assert 0.0 <= b.x1 <= b.x2 <= 1.0 and 0.0 <= b.y1 <= b.y2 <= 1.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("size", [(7, 3), (64, 48), (640, 100), (1, 1), (1, 4000), (4000, 1), (63, 200), (2, 2)])
def test_sizes_that_crashed_or_raised_give_valid_decisions(size, backend):
    policy = make_policy("detector", hog_backend=backend)
    for frame in _frames(*size, n=9):  # past the 5 warm-up frames, HOG on every second frame
        _check(policy.step(frame), frame)


@settings(
    max_examples=40,
    deadline=None,  # a 4000x4000 frame takes a while to draw and downscale on a loaded 2-core machine
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(width=st.integers(1, 4000), height=st.integers(1, 4000))
def test_any_frame_size_gives_a_valid_decision(width, height):
    policy = make_policy("detector")
    for frame in _frames(width, height, n=8):
        _check(policy.step(frame), frame)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hog_finds_no_one_in_an_image_smaller_than_its_window(backend):
    hog = HogPeopleDetector(backend=backend)
    short = WINDOW[1] - 2 * hog.border - 1  # one row short of the window once padded
    for h, w in [(short, WINDOW[0]), (short, 192), (3, 7), (WINDOW[1], WINDOW[0] - 1), (1, 1)]:
        assert not hog.fits(w, h)
        assert hog.detect(np.full((h, w), 128, np.uint8)) == []
    assert hog.fits(WINDOW[0], short + 1)
    assert hog.detect(np.full((short + 1, WINDOW[0]), 128, np.uint8)) == []  # fits, runs, finds no one


def test_a_flat_background_gives_no_numpy_warnings():
    """Exposure compensation on a one-colour background: no gain to fit, no ``RankWarning`` per frame."""
    policy = make_policy("detector")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i, frame in enumerate(_frames(640, 100, n=30)):
            frame.image[frame.image == 160] = 100 + i % 3  # flat, slightly flickering background
            _check(policy.step(frame), frame)
