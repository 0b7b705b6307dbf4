"""Detector narrator: people arriving and leaving, from the classical perception that ships with OpenCV.

``make_policy("detector", **kw)`` builds :class:`DetectorNarrator`; :class:`MotionGate` is the cheap
near-duplicate filter usable in front of any heavier policy. See docs/detector.md.
"""

from agentkit.policies.detector.config import DetectorConfig
from agentkit.policies.detector.gate import MotionGate
from agentkit.policies.detector.narrator import DetectorNarrator as _DetectorNarrator
from agentkit.policies.detector.people import Detection, HogPeopleDetector, hog_available
from agentkit.policy import register_policy

DetectorNarrator = register_policy("detector")(_DetectorNarrator)

__all__ = ["Detection", "DetectorConfig", "DetectorNarrator", "HogPeopleDetector", "MotionGate", "hog_available"]
