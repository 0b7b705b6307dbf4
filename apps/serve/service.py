"""The server's core, independent of HTTP: streams, the batch scheduler, and one turn at a time per stream.

:class:`StreamService` owns the loaded model, the :class:`~agentkit.policies.vlm.scheduler.BatchScheduler`
(one model thread; frames of different streams batched) and the :class:`~agentkit.apps.serve.sessions.StreamTable`.
The chat endpoint (:mod:`.chat`) and the WebSocket endpoint (:mod:`.ws`) both go through it, so a stream
can be fed by either.
"""

from __future__ import annotations

import collections
import time
import uuid
from typing import Any

from agentkit.apps.serve.config import ServeConfig
from agentkit.apps.serve.errors import ServeError
from agentkit.apps.serve.images import ImageLimits
from agentkit.apps.serve.sessions import Stream, StreamTable
from agentkit.config import validate
from agentkit.policies.vlm.config import VLMConfig
from agentkit.policies.vlm.loading import Loaded
from agentkit.policies.vlm.policy import VLMPolicy
from agentkit.policies.vlm.scheduler import BatchScheduler
from agentkit.types import Decision, Frame


class StreamService:
    """Streams served by one model.

    Args:
        config: the server's settings (limits, batching, the streams' default policy options).
        loaded: the model (shared by every stream; each stream has its own cache).
        model_name: the id replies carry.
    """

    def __init__(self, config: ServeConfig, loaded: Loaded, model_name: str) -> None:
        self.config = config
        self.loaded = loaded
        self.model_name = model_name
        self.policy_config = validate(VLMConfig, dict(config.policy), where="serve policy")
        self.scheduler = BatchScheduler(
            max_batch=config.max_batch,
            window_ms=config.batch_window_ms,
            after_batch=self._after_batch,
            prepare_workers=config.prepare_workers,
        )
        self.table = StreamTable(None, config.max_streams, config.max_cache_bytes, config.stream_idle_s)
        self.limits = ImageLimits(
            config.max_image_bytes, config.max_image_pixels, config.allow_image_urls, config.url_timeout_s
        )
        self.started = time.time()
        self.counters: collections.Counter[str] = collections.Counter()

    # -- streams ----------------------------------------------------------------------------------------
    def _make_policy(self, prompt: str | None, instruction: str | None) -> VLMPolicy:
        options: dict[str, Any] = {}
        if prompt:
            options["prompt"] = prompt
        if instruction is not None:
            options["instruction"] = instruction
        return VLMPolicy(self.policy_config, loaded=self.loaded, **options)

    def _after_batch(self, policies: Any) -> None:
        self.table.enforce_budget(policies)

    async def _close(self, streams: list[Stream]) -> None:
        for s in streams:
            await self.scheduler.call(s.policy.close)

    async def create(self, name: str | None, prompt: str | None = None, instruction: str | None = None) -> Stream:
        """A new stream (``name=None``: an unnamed one for a single request, dropped by :meth:`release`).

        Raises:
            ServeError: 429 ``too_many_streams``.
        """
        await self._close(self.table.expire())
        if name is not None and name in self.table.streams:
            return self.table.streams[name]
        self.table.reserve(name)
        policy = await self.scheduler.call(self._make_policy, prompt, instruction)
        if name is not None and name in self.table.streams:  # created meanwhile by another request
            await self.scheduler.call(policy.close)
            return self.table.streams[name]
        self.table.reserve(name)
        stream = Stream(name or f"unnamed-{uuid.uuid4().hex[:12]}", policy, ephemeral=name is None)
        stream.decode_base = policy.decode_cfg
        self.counters["streams_created"] += 1
        return self.table.add(stream)

    def find(self, name: str) -> Stream | None:
        return self.table.streams.get(name)

    async def restart(self, stream: Stream, prompt: str | None = None, instruction: str | None = None) -> None:
        """Start ``stream`` afresh (empty cache, nothing seen), optionally with a new prompt and instruction."""
        if prompt:
            stream.policy.prompt = prompt
        if instruction is not None:
            stream.policy.instruction = instruction
        await self.scheduler.call(stream.policy.reset)
        stream.seen.clear()
        self.counters["stream_restarts"] += 1

    async def delete(self, name: str) -> None:
        """Delete a stream (waits for its request in progress). Raises 404 ``stream_not_found``."""
        stream = self.table.get(name)
        async with stream.lock:
            if self.table.streams.get(name) is stream:
                self.table.remove(name)
                await self.scheduler.call(stream.policy.close)

    async def release(self, stream: Stream) -> None:
        """End of a request: an unnamed stream is dropped."""
        stream.last_used = time.monotonic()
        if stream.ephemeral and self.table.streams.get(stream.id) is stream:
            self.table.remove(stream.id)
            await self.scheduler.call(stream.policy.close)

    # -- turns ------------------------------------------------------------------------------------------
    async def turn(self, stream: Stream, image: Any | None, pts: float | None, question: str | None = None) -> Decision:
        """One turn of ``stream``: an optional question, then a frame (``image``) or, without one, the
        question alone; batched with other streams' turns. Model errors come back as the decision's errors."""
        if pts is None:
            pts = stream.clock()
        if question:
            stream.policy.instruct(question, pts)
        frame = None if image is None else Frame(image, t=time.monotonic(), pts=pts, seq=stream.turns)
        stream.turns += 1
        stream.busy += 1
        try:
            d = await self.scheduler.submit(stream.policy, frame, pts)
        finally:
            stream.busy -= 1
            stream.last_used = time.monotonic()
        if d.seq < 0:  # a turn without a frame: numbered like the frames
            d.seq = stream.turns - 1
        stream.last = d
        self.counters["turns"] += 1
        if d.errors:
            self.counters["turn_errors"] += 1
        return d

    def cache_bytes(self, stream: Stream) -> int:
        return int(stream.policy.session.cache_bytes())

    # -- status -----------------------------------------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        total = self.table.total_bytes()
        return {
            "model": self.model_name,
            "uptime_s": round(time.time() - self.started, 3),
            "streams": len(self.table),
            "max_streams": self.config.max_streams,
            "cache_bytes": total,
            "max_cache_bytes": self.config.max_cache_bytes,
            "budget_evictions": self.table.budget_evictions,
            "expired_streams": self.table.expired,
            "scheduler": self.scheduler.stats.summary(),
            "counters": dict(self.counters),
        }

    async def close(self) -> None:
        await self.scheduler.close()


def check_stream_name(name: str) -> str:
    """A stream name from a URL path, checked like the request field (400 ``invalid_stream_id``)."""
    import re

    from agentkit.apps.serve.schemas import STREAM_ID_PATTERN

    if not re.match(STREAM_ID_PATTERN, name):
        raise ServeError(
            400, "invalid_stream_id", f"stream name {name[:64]!r} must match {STREAM_ID_PATTERN}", param="stream"
        )
    return name


__all__ = ["StreamService", "check_stream_name"]
