"""Detector narrator: people and every other moving thing, from classical perception that ships with OpenCV.

``make_policy("detector", **kw)`` (an entry point) builds :class:`DetectorNarrator`; :class:`MotionGate` (cheap
near-duplicate filter) and :class:`NarratorGate` (the narrator's event cue) go in front of a heavier policy.
See docs/detector.md.
"""

from agentkit.policies.detector.config import DetectorConfig
from agentkit.policies.detector.gate import MotionGate, NarratorGate, make_gate
from agentkit.policies.detector.narrator import DetectorNarrator
from agentkit.policies.detector.people import Detection, HogPeopleDetector, hog_available

__all__ = [
    "Detection",
    "DetectorConfig",
    "DetectorNarrator",
    "HogPeopleDetector",
    "MotionGate",
    "NarratorGate",
    "hog_available",
    "make_gate",
]
