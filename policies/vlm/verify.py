"""``verify stream``: prove that a checkpoint's positions are handled right by the engine.

Streams frames, a question mid-stream and a decoded response through :class:`VLMPolicy` with tracing on,
then replays the transcript as one full forward (:mod:`.reference`). Run once keeping everything and once
with a small eviction window. A new architecture whose positions the engine gets wrong shows up here as a
logit difference far above the tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agentkit.policies.vlm.reference import ExactnessReport, compare_with_full_forward
from agentkit.types import DecisionKind, Frame


@dataclass
class VerifyResult:
    """One verification run."""

    label: str
    report: ExactnessReport
    responses: int
    evicted_tokens: int
    kinds: list[str]


def stream_and_compare(
    model: Any,
    frames: int = 12,
    window_tokens: int | None = None,
    response_tokens: int = 6,
    question: str = "What is happening now?",
    frame_size: tuple[int, int] = (48, 64),
    device: str | None = None,
    dtype: str | None = "float32",
    seed: int = 0,
    label: str = "",
    video: str | None = None,
    **policy_kw: Any,
) -> VerifyResult:
    """Stream ``frames`` random frames (question at the middle, forced Response near the end) and compare.

    Args:
        model: checkpoint path / hub id, or a :class:`~agentkit.policies.vlm.loading.Loaded`.
        frames: frames to stream (>= 4).
        window_tokens: eviction window (``None``: keep everything, plain full-forward reference).
        response_tokens: tokens decoded for the forced Response.
        question: the text inserted mid-stream.
        frame_size: ``(height, width)`` of the random frames.
        device / dtype: where to run; fp32 by default (the tolerance is an fp32 one).
        seed: seed of the random frames.
        label: a name for the report.
        video: stream the first ``frames`` frames of this video file (PyAV) instead of random frames.
        **policy_kw: more :class:`~agentkit.policies.vlm.config.VLMConfig` options (``decision``, ``max_pixels``...).
    """
    from agentkit.policies.vlm.policy import VLMPolicy

    images = _video_frames(video, frames) if video else None
    frames = min(frames, len(images)) if images else frames
    if frames < 4:
        raise ValueError(f"frames must be >= 4, got {frames}")
    pol = VLMPolicy(
        model,
        device=device,
        dtype=dtype,
        record=True,
        window_tokens=window_tokens,
        max_new_tokens=response_tokens,
        **policy_kw,
    )
    base = pol.decision_cfg
    forced = {frames - 2, frames // 2 + 1}
    rng = np.random.default_rng(seed)
    kinds = []
    responses = 0
    for i in range(frames):
        if i == frames // 2:
            pol.instruct(question, float(i))
        pol.decision_cfg = base.model_copy(update={"response_threshold": 0.0}) if i in forced else base
        img = images[i] if images else rng.integers(0, 255, (*frame_size, 3), dtype=np.uint8)
        d = pol.step(Frame(img, t=float(i), pts=float(i), seq=i))
        if any("vlm step failed" in e for e in d.errors):
            raise RuntimeError(d.errors[0])
        kinds.append(d.kind.value)
        responses += d.kind is DecisionKind.RESPONSE
    pol.decision_cfg = base
    report = compare_with_full_forward(pol.session)
    evicted = pol.session.stats.evicted_tokens
    pol.close()
    return VerifyResult(label or ("eviction" if window_tokens else "no eviction"), report, responses, evicted, kinds)


def _video_frames(path: str, n: int) -> list[np.ndarray]:
    """The first ``n`` frames of a video as RGB arrays (fewer if the video is shorter)."""
    import av

    out: list[np.ndarray] = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) >= n:
                break
    if len(out) < 4:
        raise ValueError(f"{path} has fewer than 4 decodable frames")
    return out
