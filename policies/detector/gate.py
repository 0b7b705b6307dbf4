"""Gates: skip frames before a heavy policy sees them.

A VLM step costs tens to thousands of milliseconds. Two gates, both counted as Silence by the loop:

* :class:`MotionGate` compares a 64 px wide grayscale thumbnail with the last *admitted* frame (well under a
  millisecond); it compares against the last admitted frame (not the previous one), so slow drift still gets
  through once it adds up, and it admits a heartbeat frame every ``max_interval_s`` so a policy that measures
  time (timeouts, "left the room") still sees time pass.
* :class:`NarratorGate` runs the general detector narrator (a few milliseconds) and admits the frames where
  something is under way (its Standby) or just completed (its Response), plus a heartbeat: the VLM looks
  when the classical narrator saw an event, not at a camera shaking or a light flickering. The narrator's
  reading of the frame is put in ``frame.meta["detector"]`` for the policy behind it.

:func:`make_gate` picks one for ``agentkit narrate --gate``.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.errors import ConfigError
from agentkit.types import DecisionKind, Frame


class MotionGateConfig(BaseModel):
    """Settings of :class:`MotionGate`.

    Attributes:
        thumb_width: width of the grayscale thumbnail compared between frames.
        pixel_threshold: grey-level change (0-255) for a thumbnail pixel to count as changed.
        changed_fraction: admit when at least this fraction of thumbnail pixels changed.
        mean_threshold: ... or when the mean absolute difference exceeds this (global light change).
        max_interval_s: admit at least one frame every this many seconds of stream time (``None``: never).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    thumb_width: int = Field(64, ge=8, le=1024)
    pixel_threshold: int = Field(20, ge=1, le=255)
    changed_fraction: float = Field(0.005, gt=0.0, le=1.0)
    mean_threshold: float = Field(6.0, gt=0.0)
    max_interval_s: float | None = Field(1.0, gt=0.0)


class MotionGate:
    """``admit(frame)`` is False for a frame nearly identical to the last admitted one.

    Args:
        config: a :class:`MotionGateConfig` (or dict); keyword arguments override its fields.

    Example:
        >>> gate = MotionGate(changed_fraction=0.01)  # doctest: +SKIP
        >>> if gate.admit(frame): decision = policy.step(frame)  # doctest: +SKIP
    """

    def __init__(self, config: MotionGateConfig | dict | None = None, **overrides: object) -> None:
        base = config.model_dump() if isinstance(config, MotionGateConfig) else dict(config or {})
        base.update(overrides)
        try:
            self.config = MotionGateConfig(**base)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err.get("loc", ())) or "config"
            raise ConfigError(f"motion gate: {field}={err.get('input')!r}: {err.get('msg')}") from None
        self.admitted = 0
        self.rejected = 0
        self.reset()

    def reset(self) -> None:
        """Forget the reference frame: the next frame is admitted."""
        self._ref: np.ndarray | None = None
        self._ref_pts = 0.0

    def _thumb(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        tw = min(self.config.thumb_width, w)
        th = max(1, round(h * tw / w))
        small = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)

    def _compare(self, thumb: np.ndarray) -> tuple[float, float] | None:
        if self._ref is None or self._ref.shape != thumb.shape:
            return None
        diff = cv2.absdiff(thumb, self._ref)
        return float(np.count_nonzero(diff >= self.config.pixel_threshold)) / diff.size, float(diff.mean())

    def changed(self, frame: Frame) -> tuple[float, float]:
        """(changed pixel fraction, mean absolute difference) of ``frame`` vs. the last admitted frame."""
        res = self._compare(self._thumb(frame.image))
        return (1.0, 255.0) if res is None else res

    def admit(self, frame: Frame) -> bool:
        """True if the frame differs enough from the last admitted one (or the heartbeat is due)."""
        cfg = self.config
        thumb = self._thumb(frame.image)
        res = self._compare(thumb)
        if res is None:
            ok = True
        else:
            frac, mean = res
            ok = frac >= cfg.changed_fraction or mean >= cfg.mean_threshold
            if not ok and cfg.max_interval_s is not None:
                # heartbeat; a pts that went backwards (seek, new stream) also starts over
                ok = frame.pts - self._ref_pts >= cfg.max_interval_s or frame.pts < self._ref_pts
        if ok:
            self._ref, self._ref_pts = thumb, float(frame.pts)
            self.admitted += 1
        else:
            self.rejected += 1
        return ok


class NarratorGateConfig(BaseModel):
    """Settings of :class:`NarratorGate` (the narrator's own settings go in ``narrator``).

    Attributes:
        max_interval_s: admit at least one frame every this many seconds of stream time (``None``: never).
        hold_s: keep admitting frames this long after the narrator's last Standby or Response (the end of an
            event is worth a look too).
        narrator: :class:`~agentkit.policies.detector.DetectorConfig` fields for the narrator it runs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_interval_s: float | None = Field(2.0, gt=0.0)
    hold_s: float = Field(0.5, ge=0.0)
    narrator: dict[str, Any] = Field(default_factory=dict)


class NarratorGate:
    """``admit(frame)`` is True while the general detector narrator sees an event under way or completed.

    Args:
        config: a :class:`NarratorGateConfig` (or dict); keyword arguments override its fields.
        narrator: the narrator to run (default: a :class:`~agentkit.policies.detector.DetectorNarrator` built
            from ``config.narrator``); tests inject one with a stand-in detector.

    Example:
        >>> gate = NarratorGate(max_interval_s=5.0)  # doctest: +SKIP
        >>> if gate.admit(frame): decision = vlm.step(frame)  # frame.meta["detector"] says why  # doctest: +SKIP
    """

    def __init__(
        self, config: NarratorGateConfig | dict | None = None, narrator: Any = None, **overrides: object
    ) -> None:
        base = config.model_dump() if isinstance(config, NarratorGateConfig) else dict(config or {})
        base.update(overrides)
        try:
            self.config = NarratorGateConfig(**base)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err.get("loc", ())) or "config"
            raise ConfigError(f"narrator gate: {field}={err.get('input')!r}: {err.get('msg')}") from None
        if narrator is None:
            from agentkit.policies.detector.narrator import DetectorNarrator

            narrator = DetectorNarrator(self.config.narrator)
        self.narrator = narrator
        self.admitted = 0
        self.rejected = 0
        self.last: Any = None  # the narrator's last Decision
        self.reset()

    def reset(self) -> None:
        """Start over (a new stream): the next frame is admitted."""
        self.narrator.reset()
        self._last_admit: float | None = None
        self._last_event = float("-inf")

    def admit(self, frame: Frame) -> bool:
        """Run the narrator on ``frame``; True if an event is under way or completed, or the heartbeat is due."""
        cfg = self.config
        d = self.narrator.step(frame)
        self.last = d
        pts = float(frame.pts)
        busy = d.kind is not DecisionKind.SILENCE
        if busy:
            self._last_event = pts
        ok = (
            busy
            or self._last_admit is None
            or pts < self._last_admit  # the stream went back: start over
            or pts - self._last_event <= cfg.hold_s
            or (cfg.max_interval_s is not None and pts - self._last_admit >= cfg.max_interval_s)
        )
        if isinstance(frame.meta, dict):
            frame.meta["detector"] = {
                "kind": d.kind.value,
                "text": d.text,
                "events": list(d.meta.get("events", [])),
                "people": d.meta.get("people"),
                "things": d.meta.get("things"),
            }
        if ok:
            self._last_admit = pts
            self.admitted += 1
        else:
            self.rejected += 1
        return ok


def make_gate(policy: str) -> MotionGate | NarratorGate:
    """The gate ``agentkit narrate --gate`` puts in front of ``policy``.

    The detector narrator itself gets the cheap :class:`MotionGate` (running the narrator twice would only
    double the cost); any other policy (``vlm``, ``http``, ...) gets the :class:`NarratorGate`, so the model
    looks when the classical narrator saw something happen.
    """
    return MotionGate() if policy == "detector" else NarratorGate()
