"""The NumPy port of OpenCV's HOG people detector against OpenCV's own, and on its own."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agentkit.envs.media.video import VideoSource
from agentkit.errors import PolicyError
from agentkit.policies.detector import hog_numpy, hog_svm
from agentkit.policies.detector.hog_numpy import NumpyHog, group_rectangles, window_descriptor
from agentkit.policies.detector.people import HogPeopleDetector, hog_available

REPO = Path(__file__).resolve().parents[3]
needs_cv_hog = pytest.mark.skipif(not hog_available(), reason="this OpenCV build has no cv2.HOGDescriptor")


def _video() -> Path:
    for folder in (REPO / "samples", REPO.parent / "shared" / "data" / "videos"):
        if (folder / "one-by-one-person-detection.mp4").is_file():
            return folder / "one-by-one-person-detection.mp4"
    pytest.skip("one-by-one-person-detection.mp4 not found in samples/ or ../shared/data/videos")


def _padded_gray(image: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(cv2.resize(image, (192, 108), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return cv2.copyMakeBorder(g, 32, 32, 0, 0, cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def frames() -> dict[float, np.ndarray]:
    """Real frames: empty room (2 s), walking in (7 s), standing (12, 30, 100 s), walking out (19 s)."""
    wanted = (2.0, 7.0, 12.0, 19.0, 30.0, 100.0)
    out = {}
    for t in wanted:
        f = next(VideoSource(str(_video()), start_s=t, end_s=t + 0.05).iter_frames())
        out[t] = _padded_gray(f.image)
    return out


@needs_cv_hog
def test_embedded_weights_are_opencvs() -> None:
    ref = np.asarray(cv2.HOGDescriptor_getDefaultPeopleDetector(), np.float32).ravel()
    assert np.array_equal(hog_svm.people_svm(), ref)


def test_corrupt_weights_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert hog_svm.people_svm().shape == (3781,)
    monkeypatch.setattr(hog_svm, "_B64", "AAAA" + hog_svm._B64[4:])
    with pytest.raises(RuntimeError, match="corrupt"):
        hog_svm.people_svm()


@needs_cv_hog
def test_descriptor_equals_opencvs(frames: dict[float, np.ndarray]) -> None:
    hog = cv2.HOGDescriptor()
    for g in frames.values():
        for x, y in ((0, 0), (60, 10), (128, 44)):
            patch = np.ascontiguousarray(g[y : y + 128, x : x + 64])
            ref = hog.compute(patch).ravel()
            assert np.abs(window_descriptor(patch) - ref).max() < 1e-4


@needs_cv_hog
def test_detections_equal_opencvs(frames: dict[float, np.ndarray]) -> None:
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    mine = NumpyHog()
    for t, g in frames.items():
        r1, w1 = hog.detectMultiScale(g, hitThreshold=0, winStride=(4, 4), padding=(0, 0), scale=1.05)
        r2, w2 = mine.detect_multiscale(g, 0.0, 4, 1.05)
        assert len(r1) == len(r2), t
        for a, b, wa, wb in zip(r1, r2, np.ravel(w1), w2, strict=True):
            assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 1, t
            assert abs(float(wa) - wb) < 1e-3, t


def test_numpy_detector_finds_the_person(frames: dict[float, np.ndarray]) -> None:
    det = HogPeopleDetector(backend="numpy")
    assert det.backend == "numpy"
    assert det.detect(frames[2.0][32:-32]) == []  # empty room
    (person,) = det.detect(frames[12.0][32:-32])  # standing at the table
    x1, y1, x2, y2 = person.box
    assert 0.3 < (x1 + x2) / 2 < 0.7 and y2 - y1 > 0.8


def test_group_rectangles() -> None:
    near = [(100, 50, 64, 128), (102, 52, 64, 128), (98, 49, 66, 130)]
    far = [(10, 10, 64, 128)]
    rects, weights = group_rectangles(near + far, [1.0, 2.0, 0.5, 3.0], 2, 0.2)
    assert rects == [(100, 50, 65, 129)] and weights == [2.0]  # the lone window is not a detection
    rects, _ = group_rectangles(near + far, [1.0] * 4, 0, 0.2)
    assert len(rects) == 4  # threshold 0: no grouping, as in OpenCV


def test_backend_choice_errors() -> None:
    with pytest.raises(PolicyError, match="unknown HOG backend"):
        HogPeopleDetector(backend="gpu")
    with pytest.raises(PolicyError, match="divides 8"):
        HogPeopleDetector(backend="numpy", stride=3)
    with pytest.raises(ValueError):
        window_descriptor(np.zeros((10, 10), np.uint8))
    assert hog_numpy.BLOCKS_X * hog_numpy.BLOCKS_Y * 36 == 3780
