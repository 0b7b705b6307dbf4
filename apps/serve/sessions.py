"""The server's stream table: one :class:`~agentkit.policies.vlm.policy.VLMPolicy` (one device-resident KV
cache) per named stream, and the limits that keep the server alive.

* ``max_streams``: a new stream beyond it is refused (429 ``too_many_streams``) after streams idle longer than
  ``stream_idle_s`` have been dropped.
* ``max_cache_bytes``: after every batch, while all caches together hold more, the least recently used
  *idle* stream (no request in progress) is evicted to its sink: only the system prompt, the instruction and
  its pinned questions stay in its cache; the stream goes on from there (its next frame is appended after
  the sink). Streams in the batch just run are never evicted by it.
* What a stream has seen: the digest of every system/user message it consumed, so a client that re-sends
  the whole conversation (every OpenAI client does) gets only the new messages appended
  (:meth:`Stream.new_messages`).

All model work (creating a stream's policy, evicting, closing) happens in the scheduler's model thread; the
table itself is touched only from the event loop, except the read-only walk of :meth:`StreamTable.enforce_budget`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentkit.apps.serve.errors import ServeError
from agentkit.apps.serve.schemas import Message

log = logging.getLogger(__name__)

MAX_SEEN = 4096
"""Digests kept per stream (the first message, the prompt, is always kept)."""


def digest(message: Message) -> str:
    """A stable digest of a system/user message (role and content; images by their URL text)."""
    parts = []
    for p in message.parts():
        parts.append(("i", p.url()) if p.url() is not None else ("t", p.text or ""))
    role = "system" if message.role in ("system", "developer") else message.role
    raw = json.dumps([role, parts], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass
class Stream:
    """One served stream."""

    id: str
    policy: Any  # VLMPolicy
    ephemeral: bool = False  # a request without a stream name: dropped after the request
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    seen: list[str] = field(default_factory=list)
    requests: int = 0
    turns: int = 0
    busy: int = 0  # requests/turns in progress
    evictions: int = 0  # times the memory budget evicted it to its sink
    decode_base: Any = None  # the policy's own decoding settings (a request may change them for itself)
    last: Any = None  # the last Decision
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def clock(self) -> float:
        """Stream time (seconds since the stream was created), for frames without a ``t=`` time."""
        return round(time.monotonic() - self.created, 3)

    def new_messages(self, digests: list[str], has_system: bool, mode: str) -> tuple[int, bool]:
        """Which of a request's messages are new: ``(index of the first new one, restart the stream)``.

        ``conversation`` / ``auto``: the seen digests are a prefix of ``digests`` -> the rest is new; or
        ``digests`` is a compacted conversation (the same first message, then a run that ends exactly where
        the seen ones end) -> the rest is new. ``append`` / ``auto`` without a system message: all are new.
        Otherwise (a different conversation) the stream restarts and everything is new.
        """
        seen = self.seen
        if not seen:
            return 0, False
        if mode in ("auto", "conversation"):
            n = len(seen)
            if len(digests) >= n and digests[:n] == seen:
                return n, False
            if len(digests) >= 2 and digests[0] == seen[0]:
                start = _tail_overlap(seen, digests)
                if start is not None:
                    return start, False
        if mode == "append" or (mode == "auto" and not has_system):
            return 0, False
        return 0, True

    def remember(self, digests: Sequence[str]) -> None:
        self.seen.extend(digests)
        if len(self.seen) > MAX_SEEN:
            del self.seen[1 : len(self.seen) - MAX_SEEN + 1]

    def info(self) -> dict[str, Any]:
        s = self.policy.session
        now = time.monotonic()
        return {
            "stream": self.id,
            "cache_tokens": len(s),
            "cache_bytes": s.cache_bytes(),
            "position": s.next_pos,
            "requests": self.requests,
            "turns": self.turns,
            "budget_evictions": self.evictions,
            "evicted_tokens": s.stats.evicted_tokens,
            "idle_s": round(now - self.last_used, 3),
            "age_s": round(now - self.created, 3),
            "busy": self.busy > 0,
        }


def _tail_overlap(seen: list[str], digests: list[str]) -> int | None:
    """Where the new messages start when ``digests = [seen[0], *seen[j:], *new]`` for some ``j >= 1``."""
    n = len(seen)
    first = digests[1]
    for j in range(n - 1, 0, -1):
        if seen[j] != first:
            continue
        run = n - j
        if len(digests) >= 1 + run and digests[1 : 1 + run] == seen[j:]:
            return 1 + run
    return None


class StreamTable:
    """The streams, their limits, and the memory budget.

    Args:
        make_policy: builds a stream's policy (called in the model thread).
        max_streams / max_cache_bytes / idle_s: see :class:`~agentkit.apps.serve.config.ServeConfig`.
    """

    def __init__(self, make_policy: Any, max_streams: int, max_cache_bytes: int, idle_s: float | None) -> None:
        self.make_policy = make_policy
        self.max_streams = max_streams
        self.max_cache_bytes = max_cache_bytes
        self.idle_s = idle_s
        self.streams: dict[str, Stream] = {}
        self.budget_evictions = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self.streams)

    def get(self, stream_id: str) -> Stream:
        s = self.streams.get(stream_id)
        if s is None:
            raise ServeError(404, "stream_not_found", f"no stream named {stream_id!r}", param="agentkit.stream")
        return s

    def expire(self) -> list[Stream]:
        """Drop streams idle for longer than ``idle_s`` (none busy); returns them (to be closed)."""
        if self.idle_s is None:
            return []
        now = time.monotonic()
        gone = [s for s in self.streams.values() if not s.busy and now - s.last_used > self.idle_s]
        for s in gone:
            del self.streams[s.id]
        self.expired += len(gone)
        return gone

    def reserve(self, stream_id: str | None) -> None:
        """Check a new stream may be created (429 ``too_many_streams`` otherwise)."""
        if len(self.streams) >= self.max_streams:
            raise ServeError(
                429,
                "too_many_streams",
                f"{len(self.streams)} streams are open, the limit is {self.max_streams}; "
                "delete one (DELETE /v1/streams/NAME) or wait for idle ones to expire",
                param="agentkit.stream",
            )

    def add(self, stream: Stream) -> Stream:
        self.streams[stream.id] = stream
        return stream

    def remove(self, stream_id: str) -> Stream | None:
        return self.streams.pop(stream_id, None)

    def total_bytes(self) -> int:
        return sum(s.policy.session.cache_bytes() for s in list(self.streams.values()))

    def enforce_budget(self, active: Sequence[Any]) -> int:
        """In the model thread, after a batch: evict idle streams to their sink, least recently used first,
        until all caches fit ``max_cache_bytes``. ``active``: the policies of the batch just run (kept).
        Returns the number of streams evicted."""
        streams = list(self.streams.values())
        total = sum(s.policy.session.cache_bytes() for s in streams)
        if total <= self.max_cache_bytes:
            return 0
        keep = {id(p) for p in active}
        candidates = sorted((s for s in streams if id(s.policy) not in keep and not s.busy), key=lambda s: s.last_used)
        n = 0
        for s in candidates:
            if total <= self.max_cache_bytes:
                break
            before = s.policy.session.cache_bytes()
            tokens = s.policy.evict_to_sink()
            if tokens:
                s.evictions += 1
                n += 1
                total -= before - s.policy.session.cache_bytes()
                log.info("stream %s evicted to its sink (%d tokens) to fit the cache budget", s.id, tokens)
        self.budget_evictions += n
        return n


__all__ = ["Stream", "StreamTable", "digest"]
