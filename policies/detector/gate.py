"""A cheap motion gate: skip near-duplicate frames before a heavy policy sees them.

A VLM step costs tens to thousands of milliseconds; comparing a 64 px wide grayscale thumbnail with the
last admitted one costs well under a millisecond. The gate compares against the last *admitted* frame (not
the previous frame), so slow drift still gets through once it adds up, and it admits a heartbeat frame
every ``max_interval_s`` so a policy that measures time (timeouts, "left the room") still sees time pass.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentkit.errors import ConfigError
from agentkit.types import Frame


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
