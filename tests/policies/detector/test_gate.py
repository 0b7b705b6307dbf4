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


# -- NarratorGate: the general narrator's event cue -------------------------------------------------------


class _ScriptedNarrator:
    """Stands in for the narrator: Silence except Standby/Response on the listed frames."""

    def __init__(self, kinds: dict[int, str]) -> None:
        self.kinds = kinds
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def step(self, frame: Frame):
        from agentkit.types import Decision

        kind = self.kinds.get(frame.seq, "silence")
        if kind == "response":
            return Decision.response("Something came in.", meta={"events": ["enter"], "people": 0, "things": 1})
        if kind == "standby":
            return Decision.standby(meta={"people": 0, "things": 0})
        return Decision.silence(meta={"people": 0, "things": 0})


def test_narrator_gate_admits_events_holds_and_heartbeats(scene: np.ndarray) -> None:
    from agentkit.policies.detector import NarratorGate

    narrator = _ScriptedNarrator({10: "standby", 11: "standby", 12: "response"})
    gate = NarratorGate(narrator=narrator, max_interval_s=2.0, hold_s=0.3)
    admitted = [i for i in range(60) if gate.admit(_frame(scene, i / 10))]
    # the first frame; the event (10-12) and up to 0.3 s after it; then a heartbeat every 2 s
    assert admitted == [0, 10, 11, 12, 13, 14, 34, 54], admitted
    frame = Frame(scene, t=1.2, pts=1.2, seq=12)
    gate.reset()
    gate.admit(frame)
    assert frame.meta["detector"]["kind"] == "response" and frame.meta["detector"]["events"] == ["enter"]


def test_narrator_gate_config_errors() -> None:
    from agentkit.policies.detector import NarratorGate

    with pytest.raises(ConfigError, match="hold_s"):
        NarratorGate(narrator=_ScriptedNarrator({}), hold_s=-1)


def test_make_gate_picks_by_policy() -> None:
    from agentkit.policies.detector import MotionGate, NarratorGate, make_gate

    assert isinstance(make_gate("detector"), MotionGate)
    assert isinstance(make_gate("vlm"), NarratorGate)


def test_narrator_gate_with_the_real_narrator_skips_an_empty_street() -> None:
    """A plain static view with sensor noise: only the first frame and heartbeats get through."""
    from agentkit.policies.detector import NarratorGate

    rng = np.random.default_rng(0)
    base = rng.integers(60, 200, size=(180, 320, 3), dtype=np.uint8)
    gate = NarratorGate()
    admitted = 0
    for i in range(100):
        img = np.clip(base.astype(np.int16) + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
        admitted += gate.admit(_frame(img, i / 10))
    assert admitted <= 8, admitted  # 10 s: the first frame, a heartbeat every 2 s, the warm-up at most
