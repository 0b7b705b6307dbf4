"""Batch scheduler: turns of different streams that arrive together run as one batched step.

Why: a server receives frames from many streams on its event loop. Running each as it comes costs one
forward per frame; waiting too long for company makes every stream slow. The scheduler sits between:

* Callers ``await scheduler.submit(policy, frame)`` from the event loop. While the model runs a batch, new
  turns queue up; the next batch takes them **first come, first served, at most one turn per stream and at
  most** ``max_batch`` **turns**. A stream's second turn waits for the next batch (its turns must run in
  order), so no stream can crowd out another: a turn waits at most ``ceil(streams / max_batch)`` batches.
* Before a batch starts, the scheduler waits up to ``window_ms`` for the streams of the last two batches
  that have not submitted their next turn yet (closed-loop clients send their next frame as soon as they get a
  decision), and never longer (three windows for a stream whose frame is already being prepared): a lone
  stream is served at once, a stream that stops sending costs the others one window at most.
* The model runs in ONE worker thread (models are not re-entrant; CUDA/torch state is per thread), so the
  event loop keeps accepting requests. Each frame's image processing (``adapter.frame_chunk``) runs before
  the turn is queued, in a small preparation pool, overlapping the batch in flight.
* ``after_batch`` (optional) runs in the worker thread after each batch: the place to enforce a memory
  budget, since nothing else touches the caches there.

Latency bound per turn: preparation + window + (batches ahead of it, at most ``ceil(streams/max_batch)``)
x (one batch's time), plus its own batch.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agentkit.policies.vlm.batch import Turn, step_batch
from agentkit.policies.vlm.policy import VLMPolicy
from agentkit.types import Decision, Frame


@dataclass
class _Job:
    turn: Turn
    vision: Any
    future: asyncio.Future[Decision]
    queued: float = field(default_factory=time.perf_counter)


@dataclass
class SchedulerStats:
    """Counters of a :class:`BatchScheduler` (``batches``, ``turns``, mean batch size, worker busy time)."""

    batches: int = 0
    turns: int = 0
    max_batch_seen: int = 0
    busy_s: float = 0.0
    waited_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "turns": self.turns,
            "mean_batch": round(self.turns / self.batches, 3) if self.batches else 0.0,
            "max_batch": self.max_batch_seen,
            "busy_s": round(self.busy_s, 3),
        }


class BatchScheduler:
    """Collects turns of many streams and runs them as batched steps in one worker thread.

    Args:
        max_batch: most turns (streams) in one forward; 1 runs one stream at a time.
        window_ms: how long a batch may wait for the previous batch's streams (0: never wait).
        after_batch: called in the worker thread with the batch's policies after each batch.
        prepare_workers: threads that make the frames' vision chunks ahead of the model (0: in the worker).

    Example:
        >>> sched = BatchScheduler(max_batch=8)  # doctest: +SKIP
        >>> decision = await sched.submit(policy, frame)  # doctest: +SKIP
    """

    def __init__(
        self,
        max_batch: int = 8,
        window_ms: float = 5.0,
        after_batch: Callable[[Sequence[VLMPolicy]], None] | None = None,
        prepare_workers: int = 2,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if window_ms < 0:
            raise ValueError(f"window_ms must be >= 0, got {window_ms}")
        self.max_batch = max_batch
        self.window_s = window_ms / 1000.0
        self.after_batch = after_batch
        self.stats = SchedulerStats()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._prep = (
            ThreadPoolExecutor(max_workers=prepare_workers, thread_name_prefix="prep") if prepare_workers else None
        )
        self._queue: collections.deque[_Job] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._recent: collections.deque[set[int]] = collections.deque(maxlen=2)  # streams of the last batches
        self._closed = False
        self._in_buffer: dict[int, VLMPolicy] = {}  # streams whose caches view the last batch's buffer
        self._preparing: dict[int, int] = {}  # streams with a frame in the preparation pool

    # -- running on the model thread --------------------------------------------------------------------
    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in the model's worker thread (between batches): for anything that touches a
        stream's cache (creating, evicting, deleting a stream)."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    # -- submitting -------------------------------------------------------------------------------------
    async def submit(self, policy: VLMPolicy, frame: Frame | None, pts: float | None = None) -> Decision:
        """Queue one turn of ``policy``'s stream and wait for its decision (a Silence with the error recorded
        if the step failed; never raises for model errors)."""
        if self._closed:
            raise RuntimeError("the scheduler is closed")
        loop = asyncio.get_running_loop()
        self._ensure_running()
        vision = None
        if frame is not None and self._prep is not None:
            self._preparing[id(policy)] = self._preparing.get(id(policy), 0) + 1
            try:  # overlapping the batch in flight; a rejected frame is left to plan_step (a recorded error)
                vision = await loop.run_in_executor(self._prep, policy.adapter.frame_chunk, frame.image)
            except (ValueError, RuntimeError):
                vision = None
            finally:
                self._preparing[id(policy)] -= 1
                if not self._preparing[id(policy)]:
                    del self._preparing[id(policy)]
        job = _Job(Turn(policy, frame, pts), vision, loop.create_future())
        self._queue.append(job)
        assert self._wake is not None
        self._wake.set()
        return await job.future

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="batch-scheduler")

    # -- the loop ----------------------------------------------------------------------------------------
    def _queued_streams(self) -> set[int]:
        return {id(j.turn.policy) for j in self._queue}

    def _take(self) -> list[_Job]:
        """Up to ``max_batch`` jobs, oldest first, one per stream; the others keep their order."""
        batch: list[_Job] = []
        rest: list[_Job] = []
        seen: set[int] = set()
        while self._queue:
            job = self._queue.popleft()
            key = id(job.turn.policy)
            if len(batch) < self.max_batch and key not in seen and not job.future.cancelled():
                batch.append(job)
                seen.add(key)
            elif not job.future.cancelled():
                rest.append(job)
        self._queue.extend(rest)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while not self._closed:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
                if self._closed:
                    return
            t_wait = time.perf_counter()
            start = loop.time()
            while self.window_s > 0 and len(self._queued_streams()) < self.max_batch:
                missing = set().union(*self._recent) - self._queued_streams()
                # a missing stream whose frame is being prepared is surely coming: worth up to 3 windows
                coming = any(k in self._preparing for k in missing)
                remaining = start + self.window_s * (3 if coming else 1) - loop.time()
                if not missing or remaining <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            self.stats.waited_s += time.perf_counter() - t_wait
            batch = self._take()
            if not batch:
                continue
            self._recent.append({id(j.turn.policy) for j in batch})
            t0 = time.perf_counter()
            try:
                decisions = await loop.run_in_executor(self._worker, self._step, batch)
            except Exception as e:  # step_batch turns model errors into decisions; this is a bug guard
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(e)
                continue
            self.stats.busy_s += time.perf_counter() - t0
            self.stats.batches += 1
            self.stats.turns += len(batch)
            self.stats.max_batch_seen = max(self.stats.max_batch_seen, len(batch))
            for job, d in zip(batch, decisions, strict=True):
                d.meta.setdefault("queue_ms", round((t0 - job.queued) * 1000.0, 3))
                if not job.future.done():
                    job.future.set_result(d)

    def _step(self, batch: list[_Job]) -> list[Decision]:
        """In the worker thread: plan every turn (with its prepared vision chunk), one batched forward.

        The streams' caches stay views into the batch's buffer (one copy less per step); a stream of the
        previous batch that is not in this one gets its own copy, so no old buffer outlives its batch."""
        turns = []
        for job in batch:
            turns.append(Turn(job.turn.policy, job.turn.frame, job.turn.pts, job.vision))
        decisions = step_batch(turns, copy=False)
        now = {id(t.policy): t.policy for t in turns}
        for pol in self._in_buffer.values():
            if id(pol) not in now:
                pol.session.cache.compact()
        self._in_buffer = now
        if self.after_batch is not None:
            self.after_batch([j.turn.policy for j in batch])
        return decisions

    async def close(self) -> None:
        """Stop the loop (queued turns are cancelled) and the threads."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        while self._queue:
            job = self._queue.popleft()
            if not job.future.done():
                job.future.cancel()
        self._worker.shutdown(wait=True)
        if self._prep is not None:
            self._prep.shutdown(wait=True)


__all__ = ["BatchScheduler", "SchedulerStats"]
