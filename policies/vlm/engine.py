"""One stream's device-resident KV cache: append chunks at explicit positions, probe, crop, evict.

The session is the engine's core. Every frame costs only its own tokens: a chunk is appended to a
:class:`~agentkit.policies.vlm.cache.StreamingCache` (a ``DynamicCache``) that stays on the model's device,
with RoPE positions the adapter computes from the stream's own position counter (never from the cache
length, which eviction shrinks). Eviction keeps a *sink* (the system prompt and instruction, plus pinned
user questions) and a window of the most recent segments, by having the cache keep only those tokens in
every layer; kept tokens keep their original positions, so the result equals a full forward of the
transcript under an attention mask that hides what was evicted.

With ``record=True`` the session keeps a trace (chunks, positions, which original tokens each chunk could
see, and all logits), which :mod:`agentkit.policies.vlm.reference` replays as one full forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from agentkit.policies.vlm.adapters.base import Adapter, Chunk, Part

WindowTokens = Annotated[int, Field(gt=0)]
"""A token budget of the eviction window (positive)."""
WindowSeconds = Annotated[float, Field(gt=0)]
"""A time span of the eviction window, seconds of stream time (positive)."""
PinnedQuestions = Annotated[int, Field(ge=0)]
"""How many recent questions stay pinned (0: none)."""


class WindowConfig(BaseModel):
    """What eviction keeps besides the sink.

    Attributes:
        tokens: most non-sink tokens kept in the cache (``None``: no token limit).
        seconds: drop segments older than this many seconds of stream time (``None``: no time limit).
        questions: how many of the most recent pinned user questions stay pinned; older ones become
            ordinary segments (evicted by age/tokens), so hours of questions cannot grow the cache.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: WindowTokens | None = None
    seconds: WindowSeconds | None = None
    questions: PinnedQuestions = 8

    @property
    def enabled(self) -> bool:
        return self.tokens is not None or self.seconds is not None


@dataclass
class TraceRecord:
    """One forward call: what was appended, where, what it could attend to, and its logits."""

    chunk: Chunk
    positions: Any  # (axes, L) long
    orig: list[int]  # original (transcript) index of each appended token
    visible: list[int]  # original indices present in the cache before the call
    logits: Any  # (L, vocab) float on CPU
    probe: bool = False


@dataclass
class _Segment:
    seg_id: int
    t: float
    pinned: bool
    n_tokens: int = 0
    question: bool = False


@dataclass
class PendingAppend:
    """A chunk prepared for appending (positions computed, segments resolved) but not yet forwarded.

    :meth:`StreamSession.append` is :meth:`~StreamSession.prepare`, one forward, :meth:`~StreamSession.commit`;
    the batched step (:mod:`agentkit.policies.vlm.batch`) prepares several sessions' chunks, runs ONE forward
    over all of them and commits each.
    """

    chunk: Chunk
    positions: Any  # (axes, L) long, on the CPU
    next_pos: int  # the stream's next position once committed
    segments: list[int]  # segment of each token


@dataclass
class ProbeMark:
    """What :meth:`StreamSession.unprobe` needs to remove a probe again."""

    n_before: int
    next_pos: int
    n_total: int
    segment: int


@dataclass
class SessionStats:
    frames: int = 0
    tokens_appended: int = 0
    evicted_tokens: int = 0
    evictions: int = 0
    forwards: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class StreamSession:
    """The persistent KV cache of one stream and the bookkeeping that keeps its positions right.

    Args:
        adapter: the architecture adapter wrapping model, tokenizer and image processor.
        window: eviction limits; default keeps everything.
        record: keep a full trace for exactness checks (memory grows with the stream; tests only).
    """

    def __init__(self, adapter: Adapter, window: WindowConfig | None = None, record: bool = False) -> None:
        self.adapter = adapter
        self.window = window or WindowConfig()
        self.record = record
        self.reset()

    # -- state ----------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new stream: empty cache, position 0, per-stream model state cleared."""
        from agentkit.policies.vlm.cache import StreamingCache

        self.adapter.reset_state()
        self.cache = StreamingCache()
        self.next_pos = 0  # RoPE position of the next appended token
        self.n_total = 0  # transcript length (original index of the next token)
        self.slot_orig: list[int] = []  # original index of each cache slot
        self.slot_seg: list[int] = []  # segment of each cache slot
        self.segments: dict[int, _Segment] = {}
        self._seg_counter = 0
        self.trace: list[TraceRecord] = []
        self.stats = SessionStats()

    def __len__(self) -> int:
        return len(self.slot_orig)

    @property
    def current_segment(self) -> int:
        """Id of the most recently opened segment (0 before any)."""
        return self._seg_counter

    def new_segment(self, t: float, pinned: bool = False, question: bool = False) -> int:
        """Open a segment (the unit of eviction: a frame turn, a question); returns its id.

        A ``question`` segment is pinned while it is among the ``window.questions`` most recent ones.
        """
        self._seg_counter += 1
        self.segments[self._seg_counter] = _Segment(self._seg_counter, float(t), pinned or question, 0, question)
        return self._seg_counter

    # -- appending ------------------------------------------------------------------------------------
    def append(
        self,
        parts: list[Part] | Chunk,
        segment: int | None = None,
        all_logits: bool = False,
    ) -> Any:
        """Append parts (text, token ids, frames) as one forward call; return the last token's logits.

        Args:
            parts: ordered prompt parts, or an already encoded :class:`Chunk`.
            segment: the segment the tokens belong to (default: the most recent one).
            all_logits: compute logits for every appended token (only the last is returned).

        Returns:
            A ``(vocab,)`` float tensor: the next-token logits after the chunk.
        """
        return self.append_prepared(self.prepare(parts, segment), all_logits=all_logits)

    def append_prepared(self, pending: PendingAppend, all_logits: bool = False) -> Any:
        """Forward a :meth:`prepare` d chunk on this session's cache alone and commit it; the last logits."""
        import torch

        keep = 0 if (all_logits or self.record) else 1
        with torch.inference_mode():
            logits = self.adapter.forward(pending.chunk, pending.positions, self.cache, logits_to_keep=keep)
        self.commit(pending, logits)
        return logits[-1]

    def prepare(
        self,
        parts: list[Part] | Chunk,
        segment: int | None = None,
        segments: list[int] | None = None,
    ) -> PendingAppend:
        """Encode ``parts`` and compute their positions at the stream's next position, without forwarding.

        Args:
            parts: ordered prompt parts, or an already encoded :class:`Chunk`.
            segment: the segment all tokens belong to (default: the most recent one).
            segments: instead, the segment of each token (as long as the chunk).

        Raises:
            ValueError: an empty chunk, or ``segments`` of the wrong length.
        """
        chunk = parts if isinstance(parts, Chunk) else self.adapter.encode(parts)
        if not chunk.ids:
            raise ValueError("cannot append an empty chunk")
        if segments is None:
            if segment is None:
                segment = self._seg_counter if self._seg_counter else self.new_segment(0.0, pinned=True)
            segments = [segment] * len(chunk.ids)
        elif len(segments) != len(chunk.ids):
            raise ValueError(f"segments has {len(segments)} entries for a chunk of {len(chunk.ids)} tokens")
        pos, nxt = self.adapter.positions(chunk, self.next_pos)
        return PendingAppend(chunk, pos, nxt, list(segments))

    def commit(self, pending: PendingAppend, logits: Any = None) -> None:
        """Record that ``pending`` is now in the cache (the forward has written its keys and values).

        Args:
            pending: what :meth:`prepare` returned, for this session, at its current state.
            logits: the forward's logits ``(L, vocab)`` (needed only when recording a trace).
        """
        n = len(pending.chunk.ids)
        orig = list(range(self.n_total, self.n_total + n))
        if self.record:
            if logits is None or logits.shape[0] != n:
                raise ValueError("a recording session needs the logits of every appended token")
            visible = list(self.slot_orig)
            self.trace.append(
                TraceRecord(pending.chunk, pending.positions.clone(), orig, visible, logits.float().cpu())
            )
        self.slot_orig += orig
        self.slot_seg += pending.segments
        for sg in pending.segments:
            self.segments[sg].n_tokens += 1
        self.n_total += n
        self.next_pos = pending.next_pos
        self.stats.tokens_appended += n
        self.stats.forwards += 1

    def probe(self, parts: list[Part]) -> Any:
        """Append ``parts``, return the last logits, then remove them again (the zero-shot probe).

        The transcript, positions and trace are left exactly as before the call.
        """
        mark = self.probe_mark()
        logits = self.append(parts, segment=mark.segment)
        self.unprobe(mark)
        return logits

    def probe_mark(self) -> ProbeMark:
        """The state a probe appended after now is removed back to (see :meth:`unprobe`)."""
        return ProbeMark(len(self), self.next_pos, self.n_total, self._seg_counter)

    def unprobe(self, mark: ProbeMark) -> None:
        """Remove everything appended since ``mark`` (a probe) from the cache and the bookkeeping."""
        n = len(self) - mark.n_before
        if n:
            self.cache.crop(-n)
        del self.slot_orig[mark.n_before :], self.slot_seg[mark.n_before :]
        self.segments[mark.segment].n_tokens -= n
        self.next_pos, self.n_total = mark.next_pos, mark.n_total
        self.stats.tokens_appended -= n
        if self.record:
            self.trace[-1].probe = True

    # -- eviction -------------------------------------------------------------------------------------
    def evict(self, now: float) -> int:
        """Drop the oldest unpinned segments beyond the window; returns the number of tokens evicted.

        The newest segment is never evicted. Kept tokens keep their original positions.
        """
        if not self.window.enabled:
            return 0
        questions = sorted((s for s in self.segments.values() if s.question and s.pinned), key=lambda s: s.seg_id)
        for s in questions[: max(0, len(questions) - self.window.questions)]:
            s.pinned = False  # an old question ages out like any other segment
        order = [s for s in self.segments.values() if not s.pinned and s.n_tokens > 0]
        if len(order) <= 1:
            return 0
        order.sort(key=lambda s: s.seg_id)
        unpinned = sum(s.n_tokens for s in order)
        drop: set[int] = set()
        for s in order[:-1]:
            too_many = self.window.tokens is not None and unpinned > self.window.tokens
            too_old = self.window.seconds is not None and s.t < now - self.window.seconds
            if not (too_many or too_old):
                break
            drop.add(s.seg_id)
            unpinned -= s.n_tokens
        if not drop:
            return 0
        keep = [i for i, sg in enumerate(self.slot_seg) if sg not in drop]
        n_drop = len(self.slot_seg) - len(keep)
        self.cache.select(keep)
        self.slot_orig = [self.slot_orig[i] for i in keep]
        self.slot_seg = [self.slot_seg[i] for i in keep]
        for sid in drop:
            del self.segments[sid]
        self.stats.evicted_tokens += n_drop
        self.stats.evictions += 1
        return n_drop

    def evict_to_sink(self) -> int:
        """Drop every unpinned segment, the newest included: only the sink (prompt, instruction, pinned
        questions) stays. Used when a server must free memory from an idle stream. Returns the tokens evicted.

        The newest segment's entry is kept (empty), so appending to the current segment stays valid; kept
        tokens keep their original positions, as with :meth:`evict`.
        """
        drop = {s.seg_id for s in self.segments.values() if not s.pinned and s.n_tokens > 0}
        if not drop:
            return 0
        keep = [i for i, sg in enumerate(self.slot_seg) if sg not in drop]
        n_drop = len(self.slot_seg) - len(keep)
        self.cache.select(keep)
        self.slot_orig = [self.slot_orig[i] for i in keep]
        self.slot_seg = [self.slot_seg[i] for i in keep]
        for sid in drop:
            if sid == self._seg_counter:
                self.segments[sid].n_tokens = 0
            else:
                del self.segments[sid]
        self.stats.evicted_tokens += n_drop
        self.stats.evictions += 1
        return n_drop

    # -- snapshots ------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """A copy of the stream state (cache tensors cloned) that :meth:`restore` can return to."""
        import copy

        return {
            "kv": self.cache.snapshot(),
            "next_pos": self.next_pos,
            "n_total": self.n_total,
            "slot_orig": list(self.slot_orig),
            "slot_seg": list(self.slot_seg),
            "segments": copy.deepcopy(self.segments),
            "seg_counter": self._seg_counter,
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Return to a :meth:`snapshot` (the trace is not restored)."""
        import copy

        self.cache.restore(snap["kv"])
        self.next_pos, self.n_total = snap["next_pos"], snap["n_total"]
        self.slot_orig, self.slot_seg = list(snap["slot_orig"]), list(snap["slot_seg"])
        self.segments = copy.deepcopy(snap["segments"])
        self._seg_counter = snap["seg_counter"]

    # -- introspection --------------------------------------------------------------------------------
    def cache_bytes(self) -> int:
        """Bytes held by the cache's key/value tensors."""
        return self.cache.nbytes
