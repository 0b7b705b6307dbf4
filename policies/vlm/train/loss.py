"""The training loss: assistant turns only, focal loss (or class weights) on the state tokens.

Why: Streamo's labels are imbalanced (~12:3:2 Silence:Standby:Response, DESIGN §4); plain cross-entropy
lets a model that always answers the majority state look good. Focal loss (Lin et al. 2017, gamma = 2 as
in Streamo) scales each state token's cross-entropy by ``(1 - p_t) ** gamma``, so tokens the model already
gets right count little and the rare, hard states dominate; class weights (``alpha``, inverse frequency)
are the other classic remedy. Answer tokens (tool calls, text, the closing ``<|im_end|>``) keep plain
cross-entropy. The loss is the mean over every target token of the batch.

Example:
    >>> import torch
    >>> logp = torch.log(torch.tensor([0.9, 0.5]))
    >>> [round(v, 4) for v in focal_terms(logp, gamma=2.0).tolist()]
    [0.0011, 0.1733]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

StateLoss = Literal["focal", "ce", "weighted"]
"""How state tokens are weighed: ``focal`` (gamma), ``ce`` (plain), ``weighted`` (inverse-frequency CE)."""


def focal_terms(logp: Any, gamma: float) -> Any:
    """Focal loss of target log-probabilities: ``-(1 - p) ** gamma * log p`` (``gamma = 0``: cross-entropy)."""
    import torch

    p = torch.exp(logp)
    return -((1.0 - p).clamp(min=0.0) ** gamma) * logp


def class_weights(counts: dict[str, int] | list[int]) -> list[float]:
    """Inverse-frequency weights of the three states, normalized so the label-weighted mean is 1.

    Example:
        >>> [round(w, 3) for w in class_weights([12, 3, 2])]
        [0.472, 1.889, 2.833]
    """
    c = list(counts.values()) if isinstance(counts, dict) else list(counts)
    total = sum(c)
    raw = [total / (len(c) * max(n, 1)) for n in c]
    return raw


@dataclass
class LossParts:
    """The batch loss and what it is made of (for logging)."""

    loss: Any  # scalar tensor with grad
    state_loss: float
    answer_loss: float
    state_tokens: int
    answer_tokens: int
    state_correct: int  # argmax over the three state tokens equals the label


def streaming_loss(
    logits: Any,
    labels: Any,
    states: Any,
    state_ids: list[int],
    *,
    mode: StateLoss = "focal",
    gamma: float = 2.0,
    weights: list[float] | None = None,
) -> LossParts:
    """The loss of a batch: logits ``(B, L, V)`` predict the next token; ``labels`` ``(B, L)`` hold the target
    ids (-100 elsewhere); ``states`` ``(B, L)`` the state index (0, 1, 2) where the token is a state token.

    Args:
        logits: model outputs for the rows (the prefix is not included: its tokens are never targets).
        labels: target ids aligned with the input tokens (the token at ``j`` is predicted at ``j - 1``).
        states: state index of each token, -1 for tokens that are not state tokens.
        state_ids: the three state-token ids.
        mode: ``focal`` (gamma), ``ce``, or ``weighted`` (``weights`` per state, cross-entropy).
        gamma: the focal exponent (Streamo: 2).
        weights: per-state weights for ``weighted`` (default: equal).
    """
    import torch

    lg = logits[:, :-1].float()
    tgt = labels[:, 1:].to(lg.device)
    st = states[:, 1:].to(lg.device)
    mask = tgt != -100
    logp_all = torch.log_softmax(lg[mask], dim=-1)
    t = tgt[mask]
    s = st[mask]
    logp = logp_all.gather(1, t[:, None])[:, 0]
    is_state = s >= 0
    ce = -logp
    state_terms = ce[is_state]
    if mode == "focal":
        state_terms = focal_terms(logp[is_state], gamma)
    elif mode == "weighted":
        w = torch.tensor(weights or [1.0, 1.0, 1.0], device=lg.device)
        state_terms = state_terms * w[s[is_state]]
    answer_terms = ce[~is_state]
    n = max(int(mask.sum()), 1)
    loss = (state_terms.sum() + answer_terms.sum()) / n
    with torch.no_grad():
        sid = torch.tensor(state_ids, device=lg.device)
        pred = logp_all[is_state][:, sid].argmax(-1)
        correct = int((pred == s[is_state]).sum())
    return LossParts(
        loss=loss,
        state_loss=float(state_terms.detach().mean()) if state_terms.numel() else 0.0,
        answer_loss=float(answer_terms.detach().mean()) if answer_terms.numel() else 0.0,
        state_tokens=int(is_state.sum()),
        answer_tokens=int((~is_state).sum()),
        state_correct=correct,
    )


def pointer_loss(attentions: Any, pointers: Any, layer: int = -1, head: int = 0) -> Any:
    """Pointer-attention loss: ``-log`` of the attention one head of one layer pays, from each token that
    writes a coordinate, to the image token the labeled point lies in (mean over those tokens).

    Why: a point is written as digits, so the model must first *find* the object among hundreds of tokens
    and then read where it is. From scratch, uniform attention gives the finding almost no gradient (the
    loss sits on a plateau where the digits follow their marginal distribution); supervising one head to
    look at the right image token (a training-only aid; inference is unchanged) lets the digits be read
    from that token's position code.

    Args:
        attentions: per layer ``(B, heads, L, keys)`` attention probabilities.
        pointers: ``(N, 3)`` long tensor of (row, query index, key index).
        layer: which layer's attention (default: the last).
        head: which head.
    """
    import torch

    if pointers is None or pointers.numel() == 0:
        return None
    att = attentions[layer][:, head]
    p = pointers.to(att.device)
    probs = att[p[:, 0], p[:, 1], p[:, 2]].float()
    return -torch.log(probs.clamp(min=1e-6)).mean()


__all__ = ["LossParts", "StateLoss", "class_weights", "focal_terms", "pointer_loss", "streaming_loss"]
