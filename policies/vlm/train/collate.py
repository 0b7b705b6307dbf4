"""A dialogue -> model inputs, built with the engine's own adapter so training sees what streaming sees.

Why: a model trained on tokens or positions that differ from the engine's (another chat template, a frame
header written differently, a question in another place, vision tokens expanded another way, positions
computed another way) would be trained for a stream it never gets. :func:`encode_dialogue` writes the
transcript chunk by chunk exactly as :meth:`agentkit.policies.vlm.VLMPolicy.step` appends it to the cache:
the system turn (the engine's prefill), then per frame ``[question turn] <|im_start|>user\\n<Xs-Ys>\\n``
+ the frame's vision tokens + ``<|im_end|>\\n<|im_start|>assistant\\n``, then the state token (a Response:
the answer and ``<|im_end|>``) and the turn close. Every piece is tokenized by the adapter's ``encode``
with the same part boundaries, frames go through the adapter's ``frame_chunk`` (the checkpoint's image
processor), and positions come from the model's own computation over the whole transcript
(``adapter.reference_positions``), which ``agentkit verify stream`` checks equal to the engine's
incremental positions. ``tests/policies/vlm/train/test_collate.py`` compares the ids with a real engine
trace.

Labels are on assistant turns only: the state token (its kind is kept for the state loss), a Response's
answer tokens and the ``<|im_end|>`` that ends it (the engine stops decoding there). The turn close the
engine appends itself after Silence and Standby is not a target.

A batch shares the system prefix (identical for every dialogue of a world): :func:`collate` returns it
once, and the trainer runs it once per batch and repeats its key/value cache for every row, which removes
most of the cost of a long tool-schema prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentkit.policies.vlm.adapters.base import Adapter, Chunk
from agentkit.policies.vlm.train.dataset import STATES, Dialogue, is_label_point

IGNORE = -100
"""Label of a token that is not a target."""


@dataclass
class Encoded:
    """One dialogue as token ids with labels, split into the shared system prefix and the rest.

    Attributes:
        prefix: the system turn (what the engine prefills into the cache's sink).
        rest: every frame turn after it (ids, modality types, processed frames).
        labels: per token of ``rest``: its id where it is a target, else :data:`IGNORE`.
        states: per token of ``rest``: the state index (0 silence, 1 standby, 2 response) where the token
            is a state token, else -1.
        positions: RoPE positions of ``prefix + rest`` as the model computes them, ``(axes, L)``.
        answers: per Response turn: the index in ``rest`` of its state token, and its label calls.
        pointers: ``(query, key)`` index pairs in ``rest``: a token that predicts a digit of a labeled point
            and the frame's image token the point lies in (for the optional pointer-attention loss).
    """

    prefix: Chunk
    rest: Chunk
    labels: list[int]
    states: list[int]
    positions: Any
    answers: list[tuple[int, list[dict[str, Any]]]] = field(default_factory=list)
    pointers: list[tuple[int, int]] = field(default_factory=list)


def state_token_ids(adapter: Adapter, names: tuple[str, str, str]) -> list[int]:
    """Token ids of the three state tokens, in the order silence, standby, response.

    Raises:
        ValueError: the tokenizer lacks one of them.
    """
    ids = []
    for name in names:
        tid = adapter.token_id(name)
        if tid is None:
            raise ValueError(f"the tokenizer has no state token {name!r}")
        ids.append(tid)
    return ids


def prefix_parts(adapter: Adapter, dialogue: Dialogue) -> list[Any]:
    """The system turn's parts, as the engine prefills them."""
    return [adapter.template.system.format(system=dialogue.system, instruction=dialogue.instruction)]


def turn_chunks(adapter: Adapter, question: str | None, pts: float, vision: Chunk) -> Chunk:
    """One frame's user turn up to the assistant's first token, as :meth:`VLMPolicy.step` encodes it."""
    t = adapter.template
    out = Chunk()
    header: list[Any] = [t.user_open]
    if question and question.strip():  # the engine strips a question and ends it with a newline
        out.extend(adapter.encode([t.user_open, question.strip() + "\n"]))
        header = []
    out.extend(adapter.encode([*header, t.frame_header.format(t0=pts, t1=pts + 1), vision, t.turn_close]))
    out.extend(adapter.encode([t.assistant_open]))
    return out


def encode_dialogue(
    adapter: Adapter,
    dialogue: Dialogue,
    load_frame: Callable[[str], np.ndarray],
    state_ids: Sequence[int],
) -> Encoded:
    """Token ids, labels, state marks and positions of one dialogue (see the module docstring)."""
    import torch

    close = adapter.text_ids(adapter.template.turn_close)
    prefix = adapter.encode(prefix_parts(adapter, dialogue))
    rest = Chunk()
    labels: list[int] = []
    states: list[int] = []
    answers: list[tuple[int, list[dict[str, Any]]]] = []

    def add(chunk: Chunk, targets: list[int], marks: list[int]) -> None:
        rest.extend(chunk)
        labels.extend(targets)
        states.extend(marks)

    pointers: list[tuple[int, int]] = []
    for turn in dialogue.turns:
        vision = adapter.frame_chunk(load_frame(turn.frame))
        user = turn_chunks(adapter, turn.question, turn.pts, vision)
        image_at = len(rest.ids) + user.types.index(1) if 1 in user.types else None
        grid = image_grid(adapter, vision)
        add(user, [IGNORE] * len(user.ids), [-1] * len(user.ids))
        k = STATES.index(turn.state)
        sid = state_ids[k]
        if turn.state == "response":
            answers.append((len(rest.ids), turn.calls))
        add(Chunk([sid], [0]), [sid], [k])
        if turn.state == "response":
            ans = adapter.text_ids(turn.answer) if turn.answer else []
            if image_at is not None and grid is not None:
                pointers += point_pointers(adapter, ans, turn.calls, len(rest.ids), image_at, grid)
            add(Chunk(ans, [0] * len(ans)), list(ans), [-1] * len(ans))
            add(Chunk(close, [0] * len(close)), [close[0]] + [IGNORE] * (len(close) - 1), [-1] * len(close))
        else:
            add(Chunk(close, [0] * len(close)), [IGNORE] * len(close), [-1] * len(close))
    full = Chunk()
    full.extend(prefix)
    full.extend(rest)
    with torch.no_grad():
        positions = adapter.reference_positions(full)
    adapter.reset_state()
    return Encoded(prefix, rest, labels, states, positions.cpu(), answers, pointers)


def image_grid(adapter: Adapter, vision: Chunk) -> tuple[int, int] | None:
    """``(rows, columns)`` of a frame's image tokens when they form a row-major grid (SmolVLM / Idefics3:
    a square; Qwen: the merged patch grid), else ``None``."""
    n = vision.types.count(1)
    img = vision.images[0] if vision.images else {}
    grid = img.get("image_grid_thw")
    if grid is not None:
        merge = int(getattr(adapter, "merge", 2))
        rows, cols = int(grid[0, 1]) // merge, int(grid[0, 2]) // merge
        return (rows, cols) if rows * cols == n else None
    side = int(round(n**0.5))
    return (side, side) if side * side == n and adapter.arch in ("smolvlm", "idefics3") else None


def _points(calls: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
    return [
        (float(v["x"]), float(v["y"])) for c in calls for v in (c.get("arguments") or {}).values() if is_label_point(v)
    ]


def point_pointers(
    adapter: Adapter, answer: list[int], calls: Sequence[dict[str, Any]], at: int, image_at: int, grid: tuple[int, int]
) -> list[tuple[int, int]]:
    """Pairs (query, key) for the pointer loss: each token from a point's ``[`` up to its last digit (each
    predicts the next character of the point) and the image token the labeled point lies in; ``at`` and
    ``image_at`` are where the answer and the frame's first image token sit. Empty when the answer's
    ``[x, y]`` spans do not line up with the calls' points."""
    pieces = [adapter.tokenizer.decode([i]) for i in answer]
    spans: list[tuple[int, int]] = []
    j = 0
    while j < len(pieces):
        if pieces[j].endswith("["):
            k = j + 1
            while k < len(pieces) and all(ch in "0123456789., " for ch in pieces[k]):
                k += 1
            if k < len(pieces) and pieces[k].startswith("]") and k > j + 1:
                spans.append((j, k))
            j = k
        else:
            j += 1
    pts = _points(calls)
    if len(spans) != len(pts):
        return []
    rows, cols = grid
    out = []
    for (a, b), (x, y) in zip(spans, pts, strict=True):
        key = image_at + min(int(y * rows), rows - 1) * cols + min(int(x * cols), cols - 1)
        out += [(at + q, key) for q in range(a, b)]
    return out


@dataclass
class Batch:
    """Model inputs of several dialogues that share one system prefix (rows right-padded)."""

    prefix_ids: Any  # (1, P) long
    prefix_positions: Any  # (axes, 1, P) or (1, P)
    ids: Any  # (B, L) long
    types: Any  # (B, L) int
    positions: Any  # (axes, B, L) or (B, L)
    attention_mask: Any  # (B, P + L) long
    labels: Any  # (B, L) long
    states: Any  # (B, L) long, -1 where the token is not a state token
    images: list[dict[str, Any]]  # processed frames in row-major order of ``ids``
    pointers: Any = None  # (N, 3) long: row, query index in ``ids``, key index in the cache (prefix included)
    n_samples: int = 0
    n_tokens: int = 0


def collate(encoded: Sequence[Encoded], pad_id: int, pos_axes: int) -> Batch:
    """Stack dialogues that share one prefix into a :class:`Batch`.

    Raises:
        ValueError: the dialogues' prefixes differ (batch them by system prompt).
    """
    import torch

    first = encoded[0].prefix.ids
    if any(e.prefix.ids != first for e in encoded[1:]):
        raise ValueError("dialogues in one batch must share the system prefix")
    p = len(first)
    b, length = len(encoded), max(len(e.rest.ids) for e in encoded)
    ids = torch.full((b, length), pad_id, dtype=torch.long)
    types = torch.zeros((b, length), dtype=torch.int)
    labels = torch.full((b, length), IGNORE, dtype=torch.long)
    states = torch.full((b, length), -1, dtype=torch.long)
    mask = torch.zeros((b, p + length), dtype=torch.long)
    mask[:, :p] = 1
    pos = torch.zeros((pos_axes, b, length), dtype=torch.long)
    images: list[dict[str, Any]] = []
    pointers = [(i, q, p + k) for i, e in enumerate(encoded) for q, k in e.pointers]
    for i, e in enumerate(encoded):
        n = len(e.rest.ids)
        ids[i, :n] = torch.tensor(e.rest.ids)
        types[i, :n] = torch.tensor(e.rest.types, dtype=torch.int)
        labels[i, :n] = torch.tensor(e.labels)
        states[i, :n] = torch.tensor(e.states)
        mask[i, p : p + n] = 1
        pos_i = e.positions[:, p:]
        pos[:, i, :n] = pos_i
        if n < length:  # padding continues the positions (masked out anyway)
            pos[:, i, n:] = pos_i[:, -1:] + torch.arange(1, length - n + 1)
        images += e.rest.images
    prefix_pos = encoded[0].positions[:, :p]
    prefix_positions = prefix_pos[:, None, :] if pos_axes == 3 else prefix_pos
    positions = pos if pos_axes == 3 else pos[0]
    return Batch(
        prefix_ids=torch.tensor([first], dtype=torch.long),
        prefix_positions=prefix_positions,
        ids=ids,
        types=types,
        positions=positions,
        attention_mask=mask,
        labels=labels,
        states=states,
        images=images,
        pointers=torch.tensor(pointers, dtype=torch.long).reshape(-1, 3),
        n_samples=b,
        n_tokens=b * p + int(mask[:, p:].sum()),
    )


def forward(model: Any, adapter: Adapter, batch: Batch, attentions: bool = False) -> Any:
    """Logits ``(B, L, vocab)`` of the batch's rows: the shared prefix once, its cache repeated per row.

    With ``attentions`` (the model must run eager attention) returns ``(logits, attentions)``: the rows'
    attention probabilities of every layer, ``(B, heads, L, P + L)`` each."""
    import warnings

    import torch
    from transformers import DynamicCache

    dev = adapter.device
    cache = DynamicCache()
    warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated", category=FutureWarning)
    model(
        input_ids=batch.prefix_ids.to(dev),
        position_ids=batch.prefix_positions.to(dev),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    if batch.n_samples > 1:
        cache.batch_repeat_interleave(batch.n_samples)
    kw = adapter.vision_inputs(batch.images) if batch.images else {}
    out = model(
        input_ids=batch.ids.to(dev),
        position_ids=batch.positions.to(dev),
        attention_mask=batch.attention_mask.to(dev),
        past_key_values=cache,
        use_cache=True,
        output_attentions=attentions,
        **kw,
    )
    del cache
    logits: torch.Tensor = out.logits
    if attentions:
        return logits, out.attentions
    return logits


__all__ = [
    "IGNORE",
    "Batch",
    "Encoded",
    "collate",
    "encode_dialogue",
    "forward",
    "image_grid",
    "point_pointers",
    "prefix_parts",
    "state_token_ids",
    "turn_chunks",
]
