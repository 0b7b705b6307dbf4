"""Exactness check: replay a recorded session as ONE full forward and compare logits.

This is the test that proves positions, vision-token placement and eviction are right for an
architecture. Without eviction the reference is the plain full forward of the transcript, with positions
computed by the model itself (an independent check of the adapter). After eviction it is the full forward
of the transcript under a 4-D attention mask in which each token sees exactly the original tokens that
were in the cache when it was appended (so evicted tokens are zeroed out for everything after their
eviction), at the model's own original positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agentkit.policies.vlm.adapters.base import Chunk
from agentkit.policies.vlm.engine import StreamSession

RTOL = 1e-5  # relative part of the tolerance (torch.allclose's default)


@dataclass(frozen=True)
class ExactnessReport:
    """Result of :func:`compare_with_full_forward`.

    ``ok(tol)`` is ``torch.allclose``'s test with ``atol=tol`` and ``rtol=RTOL``: every logit within
    ``tol + RTOL * |reference logit|``. Why the relative part: fp32 rounding grows with the logits'
    magnitude, so a trained model with sharper logits (±25) differs from its full forward by a few 1e-6 of
    its logits in different summation order, which an absolute 1e-4 alone would call a failure; a real
    mistake (a wrong position, a token seen that should not be) moves logits by 1e-2 and more.
    """

    max_abs_diff: float
    max_position_diff: int
    tokens: int
    frames: int
    masked: bool  # True when eviction happened and a masked reference was used
    max_excess: float = float("nan")  # max of |diff| - RTOL * |reference|; nan: not measured

    def ok(self, tol: float = 1e-4) -> bool:
        excess = self.max_abs_diff if math.isnan(self.max_excess) else self.max_excess
        return excess <= tol and self.max_position_diff == 0


def compare_with_full_forward(session: StreamSession) -> ExactnessReport:
    """Replay ``session.trace`` (needs ``record=True``) as one full forward and compare all logits."""
    import torch

    records = [r for r in session.trace if not r.probe]
    if not records:
        raise ValueError("the session has no recorded trace (construct it with record=True)")
    adapter = session.adapter
    full = Chunk()
    orig: list[int] = []
    for r in records:
        full.extend(r.chunk)
        orig += r.orig
    if orig != list(range(len(orig))):
        raise ValueError("trace is not a contiguous transcript")
    n = len(orig)
    masked = any(r.visible != list(range(r.orig[0])) for r in records)
    ref_pos = adapter.reference_positions(full).cpu()
    eng_pos = torch.cat([r.positions for r in records], dim=1).cpu()
    max_pos_diff = int((ref_pos - eng_pos).abs().max().item())
    with torch.inference_mode():
        if not masked:
            ref = adapter.full_forward(full)
        else:
            dt = adapter.dtype
            allowed = torch.zeros(n, n, dtype=torch.bool)
            for r in records:
                q = torch.tensor(r.orig)
                if r.visible:
                    allowed[q[:, None], torch.tensor(r.visible)[None, :]] = True
                allowed[q[:, None], q[None, :]] = torch.tril(torch.ones(len(q), len(q), dtype=torch.bool))
            mask = torch.zeros(n, n, dtype=dt).masked_fill(~allowed, torch.finfo(dt).min)
            mask = mask[None, None].to(adapter.device)
            ref = adapter.full_forward(full, attention_mask=mask, position_ids=ref_pos)
    inc = torch.cat([r.logits for r in records], dim=0).float()
    ref = ref.float().cpu()
    diff = (inc - ref).abs()
    excess = (diff - RTOL * ref.abs()).max().item()
    frames = sum(len(r.chunk.images) for r in records)
    return ExactnessReport(float(diff.max().item()), max_pos_diff, n, frames, masked, float(excess))
