"""MotionGate: near-duplicate frames are rejected, changes and heartbeats get through."""

from __future__ import annotations

import numpy as np
import pytest

from agentkit.errors import ConfigError
from agentkit.policies.detector import MotionGate
from agentkit.types import Frame


def _frame(img: np.ndarray, pts: float) -> Frame:
    return Frame(img, t=pts, pts=pts, seq=round(pts * 10))


@pytest.fixture()
def scene() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(60, 200, size=(240, 320, 3), dtype=np.uint8)


def test_duplicates_rejected_changes_admitted(scene: np.ndarray) -> None:
    gate = MotionGate(max_interval_s=None)
    assert gate.admit(_frame(scene, 0.0))  # the first frame always passes
    noisy = np.clip(scene.astype(np.int16) + np.random.default_rng(1).integers(-4, 5, scene.shape), 0, 255)
    assert not gate.admit(_frame(scene.copy(), 0.1))
    assert not gate.admit(_frame(noisy.astype(np.uint8), 0.2))  # sensor noise is not motion
    moved = scene.copy()
    moved[60:180, 100:160] = 0  # an object appears
    assert gate.admit(_frame(moved, 0.3))
    assert not gate.admit(_frame(moved.copy(), 0.4))  # compared with the last *admitted* frame
    assert (gate.admitted, gate.rejected) == (2, 3)


def test_slow_drift_adds_up(scene: np.ndarray) -> None:
    gate = MotionGate(max_interval_s=None, mean_threshold=6.0)
    assert gate.admit(_frame(scene, 0.0))
    results = []
    for i in range(1, 12):  # +1 grey level per frame: each step alone is a duplicate
        img = np.clip(scene.astype(np.int16) + i, 0, 255).astype(np.uint8)
        results.append(gate.admit(_frame(img, i / 10)))
    assert results[:5] == [False] * 5
    assert any(results)


def test_global_light_change_admitted(scene: np.ndarray) -> None:
    gate = MotionGate(max_interval_s=None)
    gate.admit(_frame(scene, 0.0))
    assert gate.admit(_frame(np.clip(scene.astype(np.int16) + 30, 0, 255).astype(np.uint8), 0.1))


def test_heartbeat_and_reset(scene: np.ndarray) -> None:
    gate = MotionGate(max_interval_s=1.0)
    assert gate.admit(_frame(scene, 0.0))
    assert [gate.admit(_frame(scene, t / 10)) for t in range(1, 11)] == [False] * 9 + [True]
    assert gate.admit(_frame(scene, 0.5))  # time went backwards: a new stream or a seek
    gate.reset()
    assert gate.admit(_frame(scene, 0.6))
    assert gate.admit(_frame(scene[:120, :160].copy(), 0.7))  # another resolution: no reference yet


def test_changed_measure_and_config_errors(scene: np.ndarray) -> None:
    gate = MotionGate()
    assert gate.changed(_frame(scene, 0.0)) == (1.0, 255.0)
    gate.admit(_frame(scene, 0.0))
    frac, mean = gate.changed(_frame(scene, 0.1))
    assert frac == 0.0 and mean == 0.0
    with pytest.raises(ConfigError, match="changed_fraction"):
        MotionGate(changed_fraction=0)
    with pytest.raises(ConfigError, match="bogus"):
        MotionGate(bogus=1)
