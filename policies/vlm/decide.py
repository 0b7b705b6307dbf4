"""Silence / Standby / Response from next-token logits.

Two modes. ``tokens``: the model was trained with state tokens (Streamo's ``</Silence>``, ``</Standby>``,
``</Response>`` or agentkit's ``<silence>``...): read their logits after each frame, renormalize over the
three, choose (argmax, or thresholds), and append the chosen token so the cache equals the transcript.
``zero_shot``: the model has no such tokens; a short probe question is appended, the logits of candidate
answers (first token of "yes"/"no") are read, and the probe is cropped off the cache again.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentkit.types import DecisionKind

STATE_TOKEN_SETS: dict[str, tuple[str, str, str]] = {
    "agentkit": ("<silence>", "<standby>", "<response>"),
    "streamo": ("</Silence>", "</Standby>", "</Response>"),
}
KINDS = (DecisionKind.SILENCE, DecisionKind.STANDBY, DecisionKind.RESPONSE)

Probability = Annotated[float, Field(ge=0, le=1)]
"""A probability threshold in [0, 1]."""
DEFAULT_PROBE = "Is there something to say about the video right now? Answer yes or no."


class DecisionConfig(BaseModel):
    """How a state is chosen.

    Attributes:
        mode: ``tokens`` or ``zero_shot``.
        response_threshold: choose Response when its probability (over the candidates) is at least this;
            ``None``: argmax.
        standby_threshold: otherwise choose Standby when its probability is at least this; ``None``: argmax.
        probe: the zero-shot question (a user turn appended after the frame, then removed).
        candidates: zero-shot answer words per state (the first token of each is read).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["tokens", "zero_shot"] = "tokens"
    response_threshold: Probability | None = None
    standby_threshold: Probability | None = None
    probe: str = DEFAULT_PROBE
    candidates: tuple[tuple[str, str], ...] = (("response", "yes"), ("silence", "no"))


def choose(logits: Any, ids: dict[DecisionKind, int], cfg: DecisionConfig) -> tuple[DecisionKind, dict[str, float]]:
    """Pick a state from next-token ``logits`` restricted to the candidate ``ids``.

    Returns:
        The chosen kind and the renormalized probability of each candidate kind.
    """
    import torch

    kinds = list(ids)
    sel = logits[torch.tensor([ids[k] for k in kinds], device=logits.device)].float()
    p = torch.softmax(sel, dim=-1).cpu().tolist()
    probs = {k.value: float(v) for k, v in zip(kinds, p, strict=True)}
    if cfg.response_threshold is None and cfg.standby_threshold is None:
        return kinds[max(range(len(kinds)), key=lambda i: p[i])], probs
    r = probs.get("response", 0.0)
    s = probs.get("standby", 0.0)
    if cfg.response_threshold is not None and r >= cfg.response_threshold:
        return DecisionKind.RESPONSE, probs
    if cfg.standby_threshold is not None and DecisionKind.STANDBY in ids and s >= cfg.standby_threshold:
        return DecisionKind.STANDBY, probs
    if cfg.response_threshold is None and r >= max(probs.values()):
        return DecisionKind.RESPONSE, probs
    return DecisionKind.SILENCE, probs


def resolve_state_ids(adapter: Any, names: tuple[str, str, str]) -> dict[DecisionKind, int] | None:
    """Token ids of the three state tokens, or ``None`` if the tokenizer lacks any of them."""
    ids = {}
    for kind, name in zip(KINDS, names, strict=True):
        tid = adapter.token_id(name)
        if tid is None:
            return None
        ids[kind] = tid
    return ids


def detect_state_tokens(adapter: Any) -> tuple[str, str, str] | None:
    """The first known state-token set the tokenizer has (agentkit's, then Streamo's)."""
    for names in STATE_TOKEN_SETS.values():
        if resolve_state_ids(adapter, names) is not None:
            return names
    return None


def candidate_ids(adapter: Any, cfg: DecisionConfig) -> dict[DecisionKind, int]:
    """First token id of each zero-shot candidate answer word."""
    out: dict[DecisionKind, int] = {}
    for kind, word in cfg.candidates:
        ids = adapter.text_ids(word)
        if not ids:
            raise ValueError(f"zero-shot candidate {word!r} tokenizes to nothing")
        out[DecisionKind(kind)] = ids[0]
    if len(set(out.values())) != len(out):
        raise ValueError(f"zero-shot candidates share a first token: {dict(cfg.candidates)}")
    return out
