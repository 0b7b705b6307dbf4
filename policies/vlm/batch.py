"""Cross-stream batching: the next chunk of several streams in ONE forward, each on its own KV cache.

Why: on a server many streams send a frame at about the same time. Appending them one by one costs one
forward each, and for small per-frame chunks a forward's fixed cost (kernel launches, Python, the vision
tower's set-up) dominates. Here the chunks of up to ``B`` streams go through the model together.

How, per forward (:func:`append_batch`):

* The streams' caches have different lengths ``P_b``. For each layer, a temporary ``[B, heads, P + N, dim]``
  buffer holds every stream's cached keys/values **left-padded** to ``P = max P_b``, followed by the new
  chunk's (``N = max N_b``; new tokens **right-padded**). The buffer is filled lazily inside the layer's
  ``update`` (:class:`_GatherLayer`), so only one layer's gather is alive at a time besides the caches.
* A ``[B, 1, N, P + N]`` attention mask hides both paddings (causal within the new tokens); position ids
  are each stream's own, computed by its adapter for its chunk at its own next position (Qwen's 3-axis
  M-RoPE positions per chunk, shifted), never from the padded layout. Padded query rows always see their
  stream's real tokens, so no row is fully masked.
* Pixel inputs of all streams are concatenated in stream order: the model scatters vision embeddings into
  the placeholder tokens in row-major order, which is exactly that order.
* The logits of each stream's last real token are taken (``logits_to_keep`` as per-row indices); then each
  stream's new keys/values are cut out of the buffer and written back into its own
  :class:`~agentkit.policies.vlm.cache.StreamingCache` (a private copy, or a view into the buffer), and the
  session's bookkeeping is committed exactly as a one-stream append would.

The result equals the one-stream path (:meth:`StreamSession.append`) within float rounding: masked
entries contribute ``exp(-inf) = 0`` to every softmax (tested within 1e-4 in ``tests/policies/vlm/test_batch.py``
for Qwen2-VL and the 1-D RoPE architectures, streams of different lengths, a question in one stream).

:func:`step_batch` is a whole :class:`~agentkit.policies.vlm.policy.VLMPolicy` step for several streams: each
stream's turn is planned (prefill of a new stream's prompt, previous turn's closing tokens, questions, the
frame), the turns go through one batched forward (zero-shot probes through a second one), the state is chosen
per stream, and a Response is then **decoded per stream, one after the other**, on its own cache (decoding is
token by token and rare next to Silence/Standby; batching it is left for later).

Importing this module imports torch and transformers (as :mod:`~agentkit.policies.vlm.cache` does).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transformers.cache_utils import Cache, DynamicLayer

from agentkit.policies.vlm.engine import PendingAppend, StreamSession
from agentkit.types import Decision, Frame

if TYPE_CHECKING:
    import torch

    from agentkit.policies.vlm.cache import StreamingLayer
    from agentkit.policies.vlm.policy import StepPlan, VLMPolicy


class _GatherLayer(DynamicLayer):
    """One layer of the temporary batch cache: the streams' cached keys/values, left-padded to a common
    length, gathered on the first ``update`` into a buffer that also receives the new chunk's."""

    def __init__(self, sources: list[StreamingLayer | None], past: list[int], width: int) -> None:
        super().__init__()
        self.sources, self.past, self.width = sources, past, width

    def get_seq_length(self) -> int:
        keys: Any = self.keys
        return self.width if not self.is_initialized else int(keys.shape[-2])

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.width + query_length, 0

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        b, h, n, d = key_states.shape
        w = self.width
        keys = key_states.new_empty(b, h, w + n, d)
        values = value_states.new_empty(b, h, w + n, d)
        for i, (src, p) in enumerate(zip(self.sources, self.past, strict=True)):
            if p < w:  # left padding: masked, but must be finite (0 * NaN would still be NaN)
                keys[i, :, : w - p].zero_()
                values[i, :, : w - p].zero_()
            if src is not None and p:
                src_k: Any = src.keys
                src_v: Any = src.values
                keys[i, :, w - p : w] = src_k[0]
                values[i, :, w - p : w] = src_v[0]
        keys[:, :, w:] = key_states
        values[:, :, w:] = value_states
        self.keys, self.values = keys, values
        self.device, self.is_initialized = keys.device, True
        self.sources = []  # the streams' tensors are no longer needed by this forward
        return keys, values


class _GatherCache(Cache):
    """The temporary cache of one batched forward (one :class:`_GatherLayer` per decoder layer)."""

    def __init__(self, layers: list[_GatherLayer]) -> None:
        super().__init__(layers=list(layers))


def cpu_attention_gqa(device: Any) -> None:
    """On CPU, let transformers' SDPA attention use grouped-query attention directly (``enable_gqa``) instead
    of first copying the key/value heads (``repeat_kv``), also with an attention mask: the same numbers (0.0
    difference), ~40% less attention time measured here (B=8, 1,100 cached tokens). Unless the user set it."""
    import os

    if getattr(device, "type", str(device)) == "cpu":
        os.environ.setdefault("TRANSFORMERS_SDPA_FORCE_GQA", "1")


def _num_layers(model: Any) -> int:
    cfg = model.config
    text = cfg.get_text_config(decoder=True) if hasattr(cfg, "get_text_config") else cfg
    return int(text.num_hidden_layers)


def _pad_id(adapter: Any) -> int:
    """A plain text token for padding (never a vision placeholder, which the model would fill with pixels)."""
    tok = adapter.tokenizer
    for cand in (tok.pad_token_id, tok.eos_token_id, 0):
        if cand is not None and int(cand) not in adapter.placeholder_ids:
            return int(cand)
    return 0


def _mask(valid: Any, width: int, dtype: Any) -> Any:
    """The 4-D additive attention mask ``[B, 1, N, P + N]`` of a batch: query ``j`` (a new token) sees the
    stream's real cached tokens and its own new tokens up to itself; padding is never seen. Built here in one
    go (the model takes a 4-D mask as it is) instead of from a 2-D padding mask, layer type by layer type."""
    import torch

    n_batch, kv = valid.shape
    span = kv - width
    causal = torch.arange(kv)[None, :] <= (width + torch.arange(span))[:, None]  # [N, P + N]
    allowed = causal[None] & valid[:, None, :]  # [B, N, P + N]
    mask = torch.zeros((n_batch, 1, span, kv), dtype=dtype)
    return mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)


def append_batch(items: Sequence[tuple[StreamSession, PendingAppend]], copy: bool = True) -> list[Any]:
    """Forward the prepared chunks of several streams as ONE batch and commit each to its session.

    Args:
        items: ``(session, pending)`` pairs, ``pending`` from ``session.prepare(...)`` at the session's current
            state; every session must use the same adapter (one model), each session at most once.
        copy: give each stream's cache its own copy of its keys/values. ``False`` leaves them as views into
            the batch's buffer (one copy less per step; the next batch copies them anyway): the buffer, which
            holds every stream of the batch, stays alive until all of them have moved on, so a caller that
            uses it must call ``session.cache.compact()`` on a stream that leaves the batch (the
            :class:`~agentkit.policies.vlm.scheduler.BatchScheduler` does).

    Returns:
        Each stream's next-token logits after its chunk (``(vocab,)``), in the order of ``items``.

    Raises:
        ValueError: sessions on different models, or a session given twice.
    """
    import torch

    if not items:
        return []
    if len(items) == 1:  # exactly the one-stream path
        session, pending = items[0]
        return [session.append_prepared(pending)]
    sessions = [s for s, _ in items]
    adapter = sessions[0].adapter
    if any(s.adapter is not adapter for s in sessions):
        raise ValueError("a batch must run on one model: the sessions have different adapters")
    if len({id(s) for s in sessions}) != len(sessions):
        raise ValueError("a session appears twice in one batch (its chunks must be appended in order)")
    chunks = [p.chunk for _, p in items]
    past = [s.cache.get_seq_length() for s in sessions]
    new = [len(c.ids) for c in chunks]
    width, span = max(past), max(new)
    n_batch = len(items)
    dev = adapter.device
    record = any(s.record for s in sessions)

    ids = torch.full((n_batch, span), _pad_id(adapter), dtype=torch.long)
    valid = torch.zeros((n_batch, width + span), dtype=torch.bool)
    axes = adapter.pos_axes
    pos = torch.zeros((axes, n_batch, span), dtype=torch.long)
    for b, ((_, pending), p, n) in enumerate(zip(items, past, new, strict=True)):
        ids[b, :n] = torch.tensor(pending.chunk.ids, dtype=torch.long)
        valid[b, width - p : width + n] = True
        pos[:, b, :n] = pending.positions
        pos[:, b, n:] = pending.positions[:, -1:]  # padding: any position, its query is never read
    images = [img for c in chunks for img in c.images]
    kw = adapter.vision_inputs(images) if images else {}
    n_layers = _num_layers(adapter.model)
    layers: list[_GatherLayer] = []
    for i in range(n_layers):
        sources = [s.cache.layer(i) if i < len(s.cache.layers) else None for s in sessions]
        layers.append(_GatherLayer(sources, past, width))
    cache = _GatherCache(layers)
    keep: int | torch.Tensor = 0 if record else torch.tensor([[n - 1] for n in new], device=dev)
    with torch.inference_mode():
        out = adapter.model(
            input_ids=ids.to(dev),
            position_ids=(pos if axes == 3 else pos[0]).to(dev),
            past_key_values=cache,
            attention_mask=_mask(valid, width, adapter.dtype).to(dev),
            use_cache=True,
            logits_to_keep=keep,
            **kw,
        )
    logits = out.logits  # (B, 1, vocab), or (B, span, vocab) when a session records its trace
    result = []
    for b, ((session, pending), p, n) in enumerate(zip(items, past, new, strict=True)):
        lo, hi = width - p, width + n
        for i, layer in enumerate(layers):
            lk: Any = layer.keys
            lv: Any = layer.values
            if copy:
                k = lk[b : b + 1, :, lo:hi].clone(memory_format=torch.contiguous_format)
                v = lv[b : b + 1, :, lo:hi].clone(memory_format=torch.contiguous_format)
            else:
                k, v = lk[b : b + 1, :, lo:hi], lv[b : b + 1, :, lo:hi]
            session.cache.layer(i).assign(k, v)
        mine = logits[b, :n] if record else logits[b]
        session.commit(pending, mine)
        result.append(mine[-1])
    return result


def probe_batch(items: Sequence[tuple[StreamSession, list[Any]]]) -> list[Any]:
    """The zero-shot probe (:meth:`StreamSession.probe`) of several streams in one forward: each probe is
    appended, its logits read, and removed again."""
    marks = [s.probe_mark() for s, _ in items]
    pending = [(s, s.prepare(parts, segment=m.segment)) for (s, parts), m in zip(items, marks, strict=True)]
    logits = append_batch(pending)
    for (s, _), m in zip(items, marks, strict=True):
        s.unprobe(m)
    return logits


@dataclass
class Turn:
    """One stream's turn in a batched step: its policy and its frame (``None``: a turn of questions only,
    asked with ``policy.instruct`` before; ``pts`` its stream time). ``vision``: the frame's chunk when it
    was already made (``adapter.frame_chunk``), e.g. by a scheduler while the previous batch ran."""

    policy: VLMPolicy
    frame: Frame | None
    pts: float | None = None
    vision: Any = None


def step_batch(turns: Sequence[Turn], copy: bool = True) -> list[Decision]:
    """One :meth:`VLMPolicy.step` for each turn (one per stream), their chunks in ONE forward.

    Errors are values, as in ``VLMPolicy.step``: a turn that fails to plan, a batch whose forward raises, or a
    Response whose decoding raises becomes a Silence with the error recorded and that stream reset.
    ``Decision.meta`` gets ``prefilled_tokens`` (tokens this turn prefilled, a new stream's prompt included)
    and ``batch`` (streams in the forward); ``model_ms`` runs from the start of the batch to this stream's
    decision (a Response decoded for an earlier stream of the batch delays the later ones).

    ``copy``: as in :func:`append_batch`.

    Raises:
        ValueError: two turns of the same policy (a stream's turns must run in order, one per batch).
    """
    t0 = time.perf_counter()
    if len({id(t.policy) for t in turns}) != len(turns):
        raise ValueError("two turns of one stream in a batch: a stream's turns run one per batch, in order")
    out: list[Decision | None] = [None] * len(turns)
    plans: dict[int, StepPlan] = {}
    for i, turn in enumerate(turns):
        try:
            plan = turn.policy.plan_step(turn.frame, turn.pts, turn.vision)
        except Exception as e:
            out[i] = turn.policy.failed(e, turn.frame)
            continue
        if isinstance(plan, Decision):
            out[i] = plan
        else:
            plans[i] = plan
    idx = list(plans)
    if idx:
        try:
            logits = append_batch([(turns[i].policy.session, plans[i].pending) for i in idx], copy=copy)
            probed = [k for k, i in enumerate(idx) if plans[i].zero_shot]
            if probed:
                pl = probe_batch([(turns[idx[k]].policy.session, turns[idx[k]].policy.probe_parts()) for k in probed])
                for k, lg in zip(probed, pl, strict=True):
                    logits[k] = lg
        except Exception as e:
            for i in idx:
                out[i] = turns[i].policy.failed(e, turns[i].frame)
        else:
            for i, lg in zip(idx, logits, strict=True):
                pol, plan = turns[i].policy, plans[i]
                prefilled = pol.session.stats.tokens_appended - plan.appended_before
                try:
                    d = pol.finish_step(plan, lg, t0)
                except Exception as e:
                    d = pol.failed(e, turns[i].frame)
                d.meta.update(prefilled_tokens=prefilled, batch=len(idx))
                d.model_ms = (time.perf_counter() - t0) * 1000.0
                out[i] = d
    decisions: list[Decision] = []
    for turn, maybe in zip(turns, out, strict=True):
        d = maybe if maybe is not None else Decision.silence(errors=["internal: no decision"])
        if turn.frame is not None:
            d.seq, d.pts = turn.frame.seq, turn.frame.pts
        elif turn.pts is not None:
            d.pts = turn.pts
        if d.model_ms is None:
            d.model_ms = (time.perf_counter() - t0) * 1000.0
        decisions.append(d)
    return decisions


__all__ = ["Turn", "append_batch", "cpu_attention_gqa", "probe_batch", "step_batch"]
