"""The event loop: source -> latest-wins slot -> (gate) -> policy thread -> sinks and executor.

Why it is shaped like this:

* A queue between a live source and a busy policy makes latency grow with stream length. The slot holds
  one frame; a newer frame replaces an unprocessed one, and the replaced frame is counted as dropped.
  Lossless sources (offline files) instead wait until the slot is free, so every frame is processed.
* ``Policy.step`` runs in one dedicated worker thread (models are not re-entrant, and CUDA/torch state is
  per thread), so the event loop keeps receiving frames and running actions while the model works.
* Tool calls run as asyncio tasks: a long robot primitive does not stop frames from streaming, and a new
  instruction cancels the running actions (interruption).
* Errors are values: a policy exception or a failed tool call is recorded on its frame and counted; only
  a source failure ends the run, and even then every sink is closed so files stay valid.
* Turn-based mode (episodes, evaluations): given an :class:`Actor`, the loop hands each decision to it
  and waits until it has acted before the next frame, so a benchmark runs through exactly the same
  policy thread, error handling, metrics and sinks as a live stream (see :mod:`agentkit.episode`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from agentkit.metrics import StreamMetrics
from agentkit.policy import Policy
from agentkit.sinks import Sink
from agentkit.sources import Source
from agentkit.tooling import ToolBox
from agentkit.types import ActionResult, Decision, DecisionKind, Frame, ToolCall

log = logging.getLogger(__name__)


class Gate(Protocol):
    """A cheap filter in front of the policy: ``admit`` False means "nothing new", counted as Silence."""

    def admit(self, frame: Frame) -> bool: ...


class Actor(Protocol):
    """Acts on each decision before the next frame exists (turn-based mode); returns what its calls did."""

    async def act(self, decision: Decision, frame: Frame) -> list[ActionResult]: ...


class LatestSlot:
    """A one-frame mailbox: ``put`` replaces what is there (counting a drop), ``get`` waits for a frame."""

    def __init__(self) -> None:
        self._item: Frame | None = None
        self._has_item = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._closed = False
        self.dropped = 0

    def put(self, frame: Frame) -> None:
        if self._closed:
            raise RuntimeError("put on a closed slot")
        if self._item is not None:
            self.dropped += 1
        self._item = frame
        self._has_item.set()
        self._empty.clear()

    async def wait_empty(self) -> None:
        """Wait until the consumer took the frame (used by lossless sources for back-pressure)."""
        await self._empty.wait()

    async def get(self) -> Frame | None:
        """The newest frame, or ``None`` once the slot is closed and empty."""
        while self._item is None:
            if self._closed:
                return None
            self._has_item.clear()
            await self._has_item.wait()
        item, self._item = self._item, None
        self._empty.set()
        return item

    def close(self) -> None:
        self._closed = True
        self._has_item.set()


@dataclass
class LoopConfig:
    """Limits of one run. ``None`` means no limit (a live stream runs until stopped)."""

    max_frames: int | None = None  # processed frames
    duration_s: float | None = None  # wall clock
    drain_actions_s: float = 30.0  # how long to wait for running actions at the end


@dataclass
class RunSummary:
    metrics: dict[str, Any]
    error: str | None = None  # the source error that ended the run, if any

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor:
    """Runs the tool calls of Response decisions as cancellable tasks, one decision's calls in order."""

    def __init__(self, toolbox: ToolBox, on_result: Any) -> None:
        self.toolbox = toolbox
        self._on_result = on_result
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def submit(self, calls: Sequence[ToolCall], seq: int) -> asyncio.Task[None]:
        task = asyncio.create_task(self._run(list(calls), seq), name=f"actions-{seq}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, calls: list[ToolCall], seq: int) -> None:
        for call in calls:
            result = await self.toolbox.run(call, seq)
            self._on_result(result)
            if not result.ok:
                break  # later calls of a plan assume the earlier ones worked

    async def cancel_all(self) -> int:
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        return len(tasks)

    async def drain(self, timeout_s: float) -> None:
        tasks = [t for t in self._tasks if not t.done()]
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for t in pending:
            t.cancel()
        for t in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await t


class StreamLoop:
    """Connects a source, a policy, an optional gate, an executor and sinks for one stream."""

    def __init__(
        self,
        source: Source,
        policy: Policy,
        *,
        toolbox: ToolBox | None = None,
        sinks: Iterable[Sink] = (),
        gate: Gate | None = None,
        recorder: Sink | None = None,
        config: LoopConfig | None = None,
        actor: Actor | None = None,
    ) -> None:
        self.source = source
        self.policy = policy
        self.toolbox = toolbox
        self.sinks: list[Sink] = list(sinks) + ([recorder] if recorder is not None else [])
        self.gate = gate
        self.config = config or LoopConfig()
        if actor is not None and (toolbox is not None or not source.lossless):
            raise ValueError("turn-based mode: the actor runs the calls (no toolbox) and the source must be lossless")
        self.actor = actor
        self.metrics = StreamMetrics()
        self.decisions: list[Decision] = []  # kept small: only the last ``keep`` are retained
        self.keep = 256
        self._slot: LatestSlot | None = None
        self._stop = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")
        self._executor = Executor(toolbox, self._on_action) if toolbox is not None else None
        self._pending_instructions: list[tuple[str, float | None]] = []
        self._background: set[asyncio.Task[int]] = set()

    # ----------------------------------------------------------------- control
    def stop(self) -> None:
        """Ask the run to end after the frame in progress."""
        self._stop.set()
        if self._slot is not None:
            self._slot.close()

    def instruct(self, text: str, pts: float | None = None) -> None:
        """New user text: cancels running actions; the policy receives it before its next frame."""
        self._pending_instructions.append((text, pts))
        if self._executor is not None:
            task = asyncio.get_running_loop().create_task(self._executor.cancel_all())
            self._background.add(task)  # keep a reference until done, or the task may be collected
            task.add_done_callback(self._background.discard)

    # ----------------------------------------------------------------- internals
    def _on_action(self, result: ActionResult) -> None:
        self.metrics.actions += 1
        if not result.ok:
            self.metrics.action_errors += 1
        self.metrics.action_ms.append(result.duration_ms)
        for sink in self.sinks:
            sink.on_action(result)

    async def _produce(self, slot: LatestSlot) -> None:
        try:
            async for frame in self.source.frames():
                if self._stop.is_set():
                    break
                self.metrics.frames_in += 1
                if self.source.lossless:
                    await slot.wait_empty()
                    if self._stop.is_set():
                        break
                slot.put(frame)
        finally:
            slot.close()

    def _step(self, frame: Frame) -> Decision:
        """Runs in the policy thread."""
        while self._pending_instructions:
            text, pts = self._pending_instructions.pop(0)
            self.policy.instruct(text, pts if pts is not None else frame.pts)
        t0 = time.perf_counter()
        try:
            decision = self.policy.step(frame)
        except Exception as e:  # a policy bug is recorded on its frame; the stream goes on
            log.exception("policy %s failed on frame %d", type(self.policy).__name__, frame.seq)
            decision = Decision.silence(errors=[f"policy error: {type(e).__name__}: {e}"])
        if decision.model_ms is None:
            decision.model_ms = (time.perf_counter() - t0) * 1e3
        return decision

    async def _consume(self, slot: LatestSlot) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        while True:
            frame = await slot.get()
            if frame is None:
                return
            if self.gate is not None and not self.gate.admit(frame):
                decision = Decision.silence(gated=True)
                self.metrics.gated += 1
            else:
                decision = await loop.run_in_executor(self._thread, self._step, frame)
                if decision.model_ms is not None:
                    self.metrics.model_ms.append(decision.model_ms)
            self._finish(decision, frame)
            if self.actor is not None:
                for result in await self.actor.act(decision, frame):
                    self._on_action(result)
            if cfg.max_frames is not None and self.metrics.processed >= cfg.max_frames:
                self.stop()
                return

    def _finish(self, decision: Decision, frame: Frame) -> None:
        decision.seq, decision.pts = frame.seq, frame.pts
        decision.latency_ms = (time.monotonic() - frame.t) * 1e3
        m = self.metrics
        m.processed += 1
        m.add_latency(decision.latency_ms, frame.pts)
        if m.first_pts is None:
            m.first_pts = frame.pts
        m.last_pts = frame.pts
        if decision.kind is DecisionKind.RESPONSE:
            m.responses += 1
        elif decision.kind is DecisionKind.STANDBY:
            m.standbys += 1
        self.decisions.append(decision)
        if len(self.decisions) > self.keep:
            del self.decisions[: len(self.decisions) - self.keep]
        for sink in self.sinks:
            sink.on_decision(decision, frame)
        if decision.kind is DecisionKind.RESPONSE and decision.tool_calls and self.actor is None:
            if self._executor is None:
                for call in decision.tool_calls:
                    self._on_action(ActionResult(call, False, frame.seq, error="no executor: tool calls are not run"))
            else:
                self._executor.submit(decision.tool_calls, frame.seq)

    async def run(self) -> RunSummary:
        """Run until the source ends, a limit is hit, or :meth:`stop` is called."""
        self._slot = slot = LatestSlot()
        self.policy.reset()
        error: str | None = None
        producer = asyncio.create_task(self._produce(slot), name="source")
        consumer = asyncio.create_task(self._consume(slot), name="policy")
        timer = None
        if self.config.duration_s is not None:
            timer = asyncio.get_running_loop().call_later(self.config.duration_s, self.stop)
        try:
            await consumer
            if not producer.done():
                producer.cancel()
            try:
                await producer
            except asyncio.CancelledError:
                pass
            except Exception as e:
                error = str(e)
            if self._executor is not None:
                await self._executor.drain(self.config.drain_actions_s)
        except BaseException:
            producer.cancel()
            consumer.cancel()
            if self._executor is not None:
                await self._executor.cancel_all()
            raise
        finally:
            if timer is not None:
                timer.cancel()
            self.metrics.dropped = slot.dropped
            self.metrics.finish()
            self._thread.shutdown(wait=True)
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception:  # one broken sink must not keep the others' files open
                    log.exception("closing sink %s failed", type(sink).__name__)
        return RunSummary(self.metrics.summary(), error)
