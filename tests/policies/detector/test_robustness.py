"""The real narrator on footage transformed or generated here: camera shake, light changes, a busy
background, and vehicles that no detector here can name.

The clip is 20 s of the bundled video (3-23 s: an empty room, the first person walks in, stands at the
table, walks out). Each transform must leave exactly the two real events (the arrival and the departure,
within the scorer's -1/+3 s window) and add nothing. The vehicles are drawn: coloured boxes with wheels
and windows crossing a street; they must be narrated as things, by colour, edge and direction, and never
as a person.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from agentkit.envs.media.video import VideoSource
from agentkit.policy import make_policy
from agentkit.types import DecisionKind, Frame

REPO = Path(__file__).resolve().parents[3]
ARRIVE_T, LEAVE_T = 8.0, 20.0  # configs/labels/one-by-one-person-detection.json, first person
CLASS_WORDS = re.compile(r"\b(person|people|face|man|woman|car|vehicle|van|dog|cat|bottle|hand)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def clip() -> list[Frame]:
    for folder in (REPO / "samples", REPO.parent / "shared" / "data" / "videos"):
        if (folder / "one-by-one-person-detection.mp4").is_file():
            path = folder / "one-by-one-person-detection.mp4"
            return list(VideoSource(str(path), start_s=3.0, end_s=23.0).iter_frames())
    pytest.skip("one-by-one-person-detection.mp4 not found in samples/ or ../shared/data/videos")


def _narrate(frames: list[Frame], transform) -> list[tuple[float, list[str], str]]:
    policy = make_policy("detector")
    out = []
    for i, f in enumerate(frames):
        d = policy.step(Frame(transform(f.image, i), t=f.t, pts=f.pts, seq=f.seq))
        if d.kind is DecisionKind.RESPONSE:
            out.append((float(d.pts), list(d.meta.get("events", [])), d.text or ""))
    return out


def _only_the_real_events(responses: list[tuple[float, list[str], str]]) -> None:
    assert [r[1] for r in responses] == [["arrive"], ["leave"]], responses
    (arrive, _, _), (leave, _, _) = responses
    assert ARRIVE_T - 1.0 <= arrive <= ARRIVE_T + 3.0
    assert LEAVE_T - 1.0 <= leave <= LEAVE_T + 3.0


def test_camera_shake(clip: list[Frame]) -> None:
    """Every frame moved by a random sub-pixel to several-pixel translation (up to 6 px at 768 px wide)."""
    rng = np.random.default_rng(0)
    h, w = clip[0].image.shape[:2]

    def shake(img: np.ndarray, i: int) -> np.ndarray:
        dx, dy = rng.uniform(-6.0, 6.0, 2)
        m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float32)
        return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    _only_the_real_events(_narrate(clip, shake))


def test_light_ramp_and_steps(clip: list[Frame]) -> None:
    """Brightness ramps from 75 % to 125 % over 10 s; +35 grey levels are switched on at 15 s and off at 19 s
    (while the person walks out); the white wall clips."""

    def light(img: np.ndarray, i: int) -> np.ndarray:
        t = i / 10.0
        gain = 0.75 + 0.5 * min(1.0, t / 10.0)
        offset = 35.0 if 12.0 <= t < 16.0 else 0.0
        return np.clip(img.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)

    _only_the_real_events(_narrate(clip, light))


def test_busy_background(clip: list[Frame]) -> None:
    """A patch of the wall (top right, 180x140 px) sways like leaves and flickers like a screen all along."""

    def busy(img: np.ndarray, i: int) -> np.ndarray:
        out = img.copy()
        y1, y2, x1, x2 = 20, 160, 560, 740
        yy, xx = np.mgrid[y1:y2, x1:x2]
        sway = 0.9 * np.sin(i * 0.7)
        tex = 128 + 90 * np.sin((xx + 12 * sway * np.sin(yy / 9.0)) / 6.0) * np.cos((yy + 8 * sway) / 7.0)
        flicker = 40 if (i // 3) % 2 else -40
        out[y1:y2, x1:x2] = (np.clip(tex + flicker, 0, 255)[..., None] * np.array([0.5, 0.9, 0.4])).astype(np.uint8)
        return out

    _only_the_real_events(_narrate(clip, busy))


def _street(seconds: float, cars, fps: float = 15.0, w: int = 640, h: int = 360) -> list[Frame]:
    rng = np.random.default_rng(0)
    bg = np.zeros((h, w, 3), np.uint8)
    bg[:170] = (150, 160, 170)
    tex = rng.integers(-18, 18, size=(18, w // 10 + 1, 1))
    bg[:170] = np.clip(bg[:170].astype(int) + np.kron(tex, np.ones((10, 10, 1), int))[:170, :w], 0, 255)
    bg[170:185] = (200, 200, 195)  # kerb
    bg[185:] = (70, 70, 75)  # road
    for x in range(0, w, 80):
        bg[265:270, x : x + 40] = (230, 230, 230)
    frames = []
    for i in range(round(seconds * fps)):
        t = i / fps
        img = bg.copy()
        for t0, x0, vx, y, cw, ch, colour in cars:
            if t < t0:
                continue
            x1 = int(round(x0 + vx * (t - t0)))
            a, b = max(0, x1), min(w, x1 + cw)
            if b > a:
                img[y : y + ch, a:b] = colour
                img[y + 8 : y + 30, max(0, min(w, x1 + 30)) : max(0, min(w, x1 + cw - 30))] = (40, 60, 90)
                for wx in (x1 + 15, x1 + cw - 45):
                    img[y + ch - 12 : y + ch, max(0, min(w, wx)) : max(0, min(w, wx + 30))] = (20, 20, 20)
        noisy = np.clip(img.astype(int) + rng.integers(-3, 4, size=img.shape), 0, 255).astype(np.uint8)
        frames.append(Frame(noisy, t=t, pts=t, seq=i))
    return frames


def test_vehicles_are_described_never_named() -> None:
    """A red car crosses left to right, then a blue van right to left, faster; no detector here knows cars."""
    cars = [(1.0, -220, 160.0, 190, 200, 80, (200, 30, 30)), (9.0, 650, -260.0, 250, 240, 90, (30, 60, 200))]
    policy = make_policy("detector")
    responses = []
    for f in _street(16.0, cars):
        d = policy.step(f)
        if d.kind is DecisionKind.RESPONSE:
            responses.append(d)
    texts = [d.text or "" for d in responses]
    assert not any(CLASS_WORDS.search(t) for t in texts), texts  # no class that no detector saw
    assert all(b.label == "object" for d in responses for b in d.boxes), [d.boxes for d in responses]
    red = [t for t in texts if "red" in t]
    blue = [t for t in texts if "blue" in t]
    assert any("came in from the left" in t and "moving right" in t for t in red), texts
    assert any("left through the right" in t for t in red), texts
    assert any("came in from the right" in t for t in blue), texts
    assert any("left through the left" in t for t in blue), texts
    kinds = [k for d in responses for k in d.meta["events"]]
    assert kinds.count("enter") + kinds.count("pass") == 2 and kinds.count("leave") + kinds.count("pass") == 2
