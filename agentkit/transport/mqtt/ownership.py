"""Who owns a stream: rendezvous (highest-random-weight) hashing over the live workers.

Why: several ``agentkit serve --mqtt`` workers share the streams of one broker, and a stream's KV cache
lives on exactly one of them. Every worker sees the same set of live workers (their retained statuses on
``agentkit/workers/<id>/status``, the broker's last will turning a dead one offline), so every worker can
compute the owner of every stream by itself: the live worker with the highest ``weight(stream, worker)``.
No election, no lock, no consensus round: when a worker joins or dies, only the streams it owns (or now
wins) move, about ``1/N`` of them, and everybody agrees as soon as they have seen the same statuses.

The ranking also names each stream's successor (the second-highest weight): the worker that inherits the
stream if its owner dies. Workers keep a small ring of recent frames only for the streams they own or
would inherit (``rank < keep``), which is what a takeover rebuilds the cache from.

The weights are a keyed 64-bit BLAKE2b of ``stream NUL worker``: stable across processes, machines and
Python versions (``hash()`` is salted per process and must never be used for this).

Example:
    >>> owner("cam1", {"w1", "w2"}) in {"w1", "w2"}
    True
    >>> ranking("cam1", {"w1", "w2"})[0] == owner("cam1", {"w1", "w2"})
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


def weight(key: str, member: str) -> int:
    """The rendezvous weight of ``member`` for ``key`` (a 64-bit integer, the same on every machine)."""
    h = hashlib.blake2b(key.encode("utf-8") + b"\x00" + member.encode("utf-8"), digest_size=8, person=b"agentkit-hrw")
    return int.from_bytes(h.digest(), "big")


def ranking(key: str, members: Iterable[str]) -> list[str]:
    """``members`` ordered by their weight for ``key``, highest first (ties, never seen in practice, by name)."""
    return sorted(set(members), key=lambda m: (-weight(key, m), m))


def owner(key: str, members: Iterable[str]) -> str | None:
    """The member with the highest weight for ``key`` (``None`` when there are no members)."""
    best: tuple[int, str] | None = None
    for m in set(members):
        cand = (weight(key, m), m)
        if best is None or cand[0] > best[0] or (cand[0] == best[0] and cand[1] < best[1]):
            best = cand
    return None if best is None else best[1]


def rank(key: str, members: Iterable[str], member: str) -> int | None:
    """``member``'s place in :func:`ranking` (0: the owner, 1: the successor...); ``None`` if not a member."""
    order = ranking(key, members)
    return order.index(member) if member in order else None


@dataclass
class _Entry:
    session: str
    online: bool
    t: float


class Membership:
    """The live workers, from their statuses (``online``, ``session``, ``t``), robust to stale last wills.

    A worker restarted under the same id gets a new ``session``. An offline status (a clean goodbye or the
    broker's last will) puts a worker offline only if it names the session currently believed live (or none
    is known): the last will of an earlier run, delivered late, says nothing about the run that replaced it.
    An online status always wins (it is the newest run speaking).
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def update(self, worker: str, online: bool, session: str, t: float) -> bool:
        """Apply one status; returns whether the live set changed."""
        before = self.live()
        cur = self._entries.get(worker)
        if online:
            self._entries[worker] = _Entry(session, True, t)
        elif cur is None or cur.session == session or not cur.online:
            self._entries[worker] = _Entry(session, False, t)
        return self.live() != before

    def remove(self, worker: str) -> bool:
        """Forget ``worker`` (its retained status was cleared); returns whether the live set changed."""
        entry = self._entries.pop(worker, None)
        return entry is not None and entry.online

    def live(self) -> frozenset[str]:
        return frozenset(w for w, e in self._entries.items() if e.online)

    def session(self, worker: str) -> str | None:
        e = self._entries.get(worker)
        return e.session if e is not None else None

    def clear(self) -> None:
        self._entries.clear()


__all__ = ["Membership", "owner", "rank", "ranking", "weight"]
