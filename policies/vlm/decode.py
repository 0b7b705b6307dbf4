"""Response decoding on the session's cache: greedy or sampled, stop strings, tokens streamed out.

Each generated token is appended to the same cache (positions continue from the stream's counter), so
after a Response the cache still equals the transcript. The last sampled token is not forwarded here:
the caller prepends it to the next chunk (saving one forward per Response).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from agentkit.policies.vlm.engine import StreamSession

MaxNewTokens = Annotated[int, Field(ge=1)]
"""A cap on generated tokens (at least 1)."""
Temperature = Annotated[float, Field(ge=0)]
"""A sampling temperature (0: greedy)."""
TopP = Annotated[float, Field(gt=0, le=1)]
"""A nucleus sampling mass in (0, 1]."""


class DecodeConfig(BaseModel):
    """Decoding settings.

    Attributes:
        max_new_tokens: hard cap on generated tokens.
        temperature: 0 for greedy; otherwise sampling temperature.
        top_p: nucleus sampling mass (sampling only).
        seed: seed of the sampling generator (reset per stream).
        stop: strings that end the response (the text is cut before them).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_new_tokens: MaxNewTokens = 64
    temperature: Temperature = 0.0
    top_p: TopP = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()


@dataclass
class DecodeResult:
    """What one Response decoded, and how fast."""

    text: str
    ids: list[int]
    last_id: int  # the final sampled token, not yet in the cache
    stopped_by: str  # "eos", "stop", "max_tokens"
    ttft_ms: float  # decode start -> first token sampled
    ms_per_token: float | None  # mean time per token after the first
    token_times_ms: list[float] = field(default_factory=list)


def sample(logits: Any, cfg: DecodeConfig, generator: Any, banned: list[int] | None = None) -> int:
    """One token id from ``logits`` (greedy when ``temperature == 0``), never one of ``banned``."""
    import torch

    if banned:
        logits = logits.clone()
        logits[torch.tensor(banned, device=logits.device)] = float("-inf")
    if cfg.temperature == 0:
        return int(torch.argmax(logits).item())
    probs = torch.softmax(logits.float() / cfg.temperature, dim=-1)
    if cfg.top_p < 1.0:
        sp, si = torch.sort(probs, descending=True)
        keep = torch.cumsum(sp, dim=-1) - sp < cfg.top_p
        sp = sp * keep
        probs = torch.zeros_like(probs).scatter(-1, si, sp)
    probs = probs / probs.sum()
    return int(torch.multinomial(probs.cpu(), 1, generator=generator).item())


def decode(
    session: StreamSession,
    first_logits: Any,
    cfg: DecodeConfig,
    eos_ids: set[int],
    generator: Any = None,
    on_token: Callable[[str], None] | None = None,
    t0: float | None = None,
) -> DecodeResult:
    """Generate a response from ``first_logits`` (the logits after the Response state token).

    Args:
        session: the stream's session; every token but the last is appended to its cache.
        first_logits: next-token logits to start from.
        cfg: decoding settings.
        eos_ids: token ids that end the turn.
        generator: a seeded ``torch.Generator`` for sampling.
        on_token: called with each new piece of text as soon as it is decoded.
        t0: ``time.perf_counter()`` the time to first token is measured from (default: now).
    """
    tok = session.adapter.tokenizer
    banned = sorted(session.adapter.placeholder_ids)
    t0 = time.perf_counter() if t0 is None else t0
    ids: list[int] = []
    times: list[float] = []
    text = ""
    logits = first_logits
    stopped = "max_tokens"
    while True:
        nid = sample(logits, cfg, generator, banned)
        times.append((time.perf_counter() - t0) * 1000.0)
        if nid in eos_ids:
            stopped = "eos"
            break
        ids.append(nid)
        new_text = tok.decode(ids, skip_special_tokens=False)
        delta = new_text[len(text) :] if new_text.startswith(text) else new_text
        text = new_text
        if on_token is not None and delta:
            on_token(delta)
        hit = [s for s in cfg.stop if s and s in text]
        if hit:
            text = text[: min(text.index(s) for s in hit)]
            stopped = "stop"
            break
        if len(ids) >= cfg.max_new_tokens:
            break
        logits = session.append([[nid]])
    per_tok = None
    if len(times) > 1:
        per_tok = (times[-1] - times[0]) / (len(times) - 1)
    return DecodeResult(text, ids, nid, stopped, times[0], per_tok, times)
