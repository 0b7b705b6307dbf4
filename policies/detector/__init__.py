"""Detector narrator: people arriving and leaving, from the classical perception that ships with OpenCV.

``make_policy("detector", **kw)`` (an entry point) builds :class:`DetectorNarrator`; :class:`MotionGate` is the cheap
near-duplicate filter usable in front of any heavier policy. See docs/detector.md.
"""

from agentkit.policies.detector.config import DetectorConfig
from agentkit.policies.detector.gate import MotionGate
from agentkit.policies.detector.narrator import DetectorNarrator
from agentkit.policies.detector.people import Detection, HogPeopleDetector, hog_available

__all__ = ["Detection", "DetectorConfig", "DetectorNarrator", "HogPeopleDetector", "MotionGate", "hog_available"]
