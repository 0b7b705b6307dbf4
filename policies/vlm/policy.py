"""``VLMPolicy``: the streaming VLM engine behind the :class:`~agentkit.policy.Policy` contract.

Per frame: one forward call appends the frame's user turn (plus the previous turn's state token, and any
question asked since) to the stream's cache; the next-token logits decide Silence / Standby / Response;
on Response the answer is decoded on the same cache, streamed out token by token, and parsed into
normalized points, boxes and tool calls. The transcript follows Streamo: a user turn per frame headed
``<Xs-Ys>``, an assistant turn holding one state token (Response followed by the text).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentkit.errors import ConfigError, PolicyError
from agentkit.policies.vlm.config import VLMConfig, split_model_argument
from agentkit.policies.vlm.decide import (
    STATE_TOKEN_SETS,
    candidate_ids,
    choose,
    detect_state_tokens,
    resolve_state_ids,
)
from agentkit.policies.vlm.decode import decode
from agentkit.policies.vlm.engine import PendingAppend, StreamSession
from agentkit.policies.vlm.loading import Loaded, load
from agentkit.policy import Policy
from agentkit.types import Decision, DecisionKind, Frame

log = logging.getLogger(__name__)


@dataclass
class StepPlan:
    """A step prepared by :meth:`VLMPolicy.plan_step`: the one chunk to forward and what finishing needs."""

    pending: PendingAppend  # the chunk, its positions and per-token segments
    segment: int  # the turn's own segment (the state token and a Response are appended to it)
    meta: dict[str, Any]
    zero_shot: bool  # the state is read after a probe, not from the chunk's last logits
    appended_before: int  # session.stats.tokens_appended before the step (its prefill included)


class VLMPolicy(Policy):
    """A streaming policy over a Hugging Face VLM with a device-resident KV cache.

    Args:
        config: a :class:`~agentkit.policies.vlm.config.VLMConfig` or a dict of its fields; for callers
            that pass the checkpoint first, also a checkpoint path or a loaded model.
        loaded: an already loaded (or in-memory built) model, used instead of loading ``config.model``
            (benchmarks, checks).
        on_token: called with each piece of response text as it is decoded.
        **options: :class:`~agentkit.policies.vlm.config.VLMConfig` fields, over ``config``.

    Raises:
        ConfigError: a bad option, naming the field and the value; no model given.
        PolicyError: the checkpoint cannot be loaded, or lacks the state tokens ``decision="tokens"`` needs.

    Example:
        >>> policy = VLMPolicy(model="/path/to/checkpoint", max_new_tokens=32, window_s=16)  # doctest: +SKIP
    """

    name = "vlm"
    Config = VLMConfig

    def __init__(
        self,
        config: VLMConfig | dict[str, Any] | str | os.PathLike[str] | Loaded | None = None,
        *,
        loaded: Loaded | None = None,
        on_token: Callable[[str], None] | None = None,
        **options: Any,
    ) -> None:
        config, options, loaded = split_model_argument(config, options, loaded)
        self.config = cfg = self.configure(config, options, VLMConfig)
        self.window = cfg.window()
        self.decode_cfg = cfg.decoding()
        if loaded is None:
            if cfg.model is None:
                raise ConfigError(f"policy {self.name!r}: give model=PATH (a checkpoint folder or hub id)")
            loaded = load(cfg.model, device=cfg.device, dtype=cfg.dtype, max_pixels=cfg.max_pixels)
        elif cfg.model is not None:
            raise ConfigError(f"policy {self.name!r}: give model={cfg.model!r} or a loaded model, not both")
        self.loaded = loaded
        self.adapter = self.loaded.adapter
        self.prompt, self.instruction = cfg.prompt, cfg.instruction
        self.coord_format = cfg.coord_format
        self.on_token = on_token
        self.state_names = self._resolve_state_names(cfg.state_tokens)
        mode = cfg.decision
        if mode == "auto":
            mode = "tokens" if self.state_names is not None else "zero_shot"
        self.decision_cfg = cfg.decision_config(mode)
        if mode == "tokens":
            ids = resolve_state_ids(self.adapter, self.state_names) if self.state_names else None
            if ids is None:
                raise PolicyError(
                    "decision='tokens' but the tokenizer lacks the state tokens "
                    f"{self.state_names or STATE_TOKEN_SETS['agentkit']}; "
                    "use decision='zero_shot'"
                )
            self.state_ids = ids
        else:
            try:
                self.state_ids = candidate_ids(self.adapter, self.decision_cfg)
            except ValueError as e:
                raise PolicyError(str(e)) from e
        t = self.adapter.template
        self._close_ids = self.adapter.text_ids(t.turn_close)
        self._text_cache: dict[str, list[int]] = {}
        self._eos = self.adapter.eos_ids
        self.session = StreamSession(self.adapter, window=self.window, record=cfg.record)
        self._lock = threading.Lock()  # instruct() comes from the event-loop thread, step() from a worker
        self._questions: list[tuple[str, float | None]] = []
        self.reset()

    def _resolve_state_names(self, state_tokens: str | tuple[str, str, str] | None) -> tuple[str, str, str] | None:
        """The three state-token strings (the config has checked a name is known and a tuple has three)."""
        if state_tokens is None:
            return detect_state_tokens(self.adapter)
        if isinstance(state_tokens, str):
            return STATE_TOKEN_SETS[state_tokens]
        return state_tokens

    # -- Policy contract ------------------------------------------------------------------------------
    def reset(self) -> None:
        import torch

        self.session.reset()
        self._started = False
        self._pending: list[int] = []  # tokens that close the previous assistant turn (appended lazily)
        with self._lock:
            self._questions = []
        self._generator = torch.Generator().manual_seed(self.decode_cfg.seed)
        self._resized: tuple[int, int] | None = None
        self._last_pts = 0.0  # stream time of the last turn (eviction's clock)

    def instruct(self, text: str, pts: float | None = None) -> None:
        """Queue a question/task for the user turn of the next frame; it stays pinned against eviction
        while it is among the ``window_questions`` most recent ones."""
        if text and text.strip():
            with self._lock:
                self._questions.append((text.strip(), pts))

    def close(self) -> None:
        self.session.reset()

    def step(self, frame: Frame) -> Decision:
        t0 = time.perf_counter()
        try:
            d = self._step(frame, t0)
        except Exception as e:
            d = self.failed(e, frame)
        d.seq, d.pts = frame.seq, frame.pts
        d.model_ms = (time.perf_counter() - t0) * 1000.0
        return d

    # -- internals ------------------------------------------------------------------------------------
    def _prefill(self) -> None:
        t = self.adapter.template
        seg = self.session.new_segment(0.0, pinned=True)
        self.session.append([t.system.format(system=self.prompt, instruction=self.instruction)], segment=seg)
        self._started = True

    def _step(self, frame: Frame, t0: float) -> Decision:
        plan = self.plan_step(frame)
        if isinstance(plan, Decision):
            return plan
        logits = self.session.append_prepared(plan.pending)
        if plan.zero_shot:
            logits = self.session.probe(self.probe_parts())
        return self.finish_step(plan, logits, t0)

    # -- the three phases of a step (the batched step runs the middle one for many streams at once) ----
    def plan_step(self, frame: Frame | None, pts: float | None = None, vision: Any = None) -> StepPlan | Decision:
        """Phase 1 of a step: prefill the prompt on a new stream, then prepare this turn's ONE chunk (the
        previous turn's closing tokens, any question asked since, the frame's user turn, the assistant
        header) without forwarding it.

        Args:
            frame: the frame; ``None`` for a turn of questions without a frame (needs :meth:`instruct` first).
            pts: stream time of a turn without a frame (default: the last frame's).
            vision: the frame's chunk if already made with ``adapter.frame_chunk(frame.image)`` (a server does
                that while the model is busy with another batch); made here otherwise.

        Returns:
            The plan, or a Decision when there is nothing to forward (a frame the processor rejects, a turn
            with neither a frame nor a question).
        """
        s = self.session
        t = self.adapter.template
        if frame is not None:
            try:  # a frame the processor rejects is skipped; the stream and its cache stay as they are
                vision = self.adapter.frame_chunk(frame.image) if vision is None else vision
            except (ValueError, RuntimeError) as e:
                return Decision.silence(errors=[f"frame rejected by the image processor: {str(e).splitlines()[0]}"])
            pts = frame.pts
        else:
            vision = None
            with self._lock:
                if not self._questions:
                    return Decision.silence(errors=["a turn without a frame needs a question (instruct) first"])
            pts = self._last_pts if pts is None else pts
        self._last_pts = pts
        before = s.stats.tokens_appended
        if not self._started:
            self._prefill()
        meta: dict[str, Any] = {}
        # the previous turn's closing tokens join this frame's chunk: one forward per frame
        pieces: list[tuple[Any, int]] = []
        if self._pending:
            pieces.append((self.adapter.encode([self._pending]), s.current_segment))
        header: list[Any] = [self._ids(t.user_open)]
        with self._lock:
            asked, self._questions = self._questions, []
        if asked:  # a question goes into this frame's user turn, in its own pinned segment
            questions = [q for q, _ in asked]
            meta["questions"] = questions
            q_seg = s.new_segment(pts, question=True)
            pieces.append((self.adapter.encode([self._ids(t.user_open)] + [q + "\n" for q in questions]), q_seg))
            header = []
        seg = s.new_segment(pts, pinned=False)
        seen: list[Any] = [self._ids(t.frame_header.format(t0=pts, t1=pts + 1)), vision] if vision is not None else []
        frame_chunk = self.adapter.encode([*header, *seen, self._close_ids])
        if vision is not None:
            self._resized = self._resized_size(frame_chunk)
        zero_shot = self.decision_cfg.mode == "zero_shot"
        if not zero_shot:
            frame_chunk.extend(self.adapter.encode([self._ids(t.assistant_open)]))
        merged, segs = self._merge([*pieces, (frame_chunk, seg)])
        return StepPlan(s.prepare(merged, segments=segs), seg, meta, zero_shot, before)

    def probe_parts(self) -> list[Any]:
        """The zero-shot probe: a user turn asking the probe question, then the assistant header."""
        t = self.adapter.template
        return [t.user_open, self.decision_cfg.probe, t.turn_close, t.assistant_open]

    def finish_step(self, plan: StepPlan, logits: Any, t0: float) -> Decision:
        """Phase 3 of a step: choose the state from the next-token ``logits`` (after the probe in zero-shot
        mode), decode a Response on this stream's cache, evict. ``t0`` is when the step started."""
        s = self.session
        seg, meta, zero_shot = plan.segment, plan.meta, plan.zero_shot
        kind, probs = choose(logits, self.state_ids, self.decision_cfg)
        meta["probs"] = {k: round(v, 4) for k, v in probs.items()}
        self._pending = []
        if kind is DecisionKind.RESPONSE:
            if zero_shot:
                first = s.append([self.adapter.template.assistant_open], segment=seg)
            else:
                first = s.append([[self.state_ids[kind]]], segment=seg)
            res = decode(s, first, self.decode_cfg, self._eos, self._generator, self.on_token, t0)
            self._pending = ([] if res.stopped_by == "eos" else [res.last_id]) + self._close_ids
            meta.update(ttft_ms=round(res.ttft_ms, 3), tokens=len(res.ids), stopped_by=res.stopped_by)
            if res.ms_per_token is not None:
                meta["ms_per_token"] = round(res.ms_per_token, 3)
            d = self._response(res.text)
        else:
            if not zero_shot:
                self._pending = [self.state_ids[kind], *self._close_ids]
            d = Decision(kind)
        evicted = s.evict(self._last_pts)
        meta.update(cache_tokens=len(s), position=s.next_pos)
        if evicted:
            meta["evicted"] = evicted
        d.meta.update(meta)
        return d

    def teacher_force(self, frame: Frame, kind: DecisionKind, text: str | None = None) -> bool:
        """Append ``frame`` and a GIVEN decision to the stream, as :meth:`step` would have (no decoding).

        Rebuilds a stream's cache from a record of what was decided (a worker taking over a stream, a
        replay): Silence/Standby become their state token, exactly as the original cache held them; a
        Response becomes its state token and ``text`` re-tokenized. Returns False for a frame the image
        processor rejects (nothing appended).
        """
        plan = self.plan_step(frame)
        if isinstance(plan, Decision):
            return False
        s = self.session
        s.append_prepared(plan.pending)
        self._pending = []
        if kind is DecisionKind.RESPONSE:
            t = self.adapter.template
            head: list[Any] = [t.assistant_open] if plan.zero_shot else [[self.state_ids[kind]]]
            s.append([*head, *([text] if text else [])], segment=plan.segment)
            self._pending = list(self._close_ids)  # as after a Response that ended with end-of-sequence
        elif not plan.zero_shot:
            self._pending = [self.state_ids[kind], *self._close_ids]
        s.evict(self._last_pts)
        return True

    def failed(self, error: Exception, frame: Frame | None = None) -> Decision:
        """The Decision of a step that raised: the error recorded, the stream reset (it restarts cleanly)."""
        log.warning("vlm step failed on frame %s: %s", None if frame is None else frame.seq, error)
        log.debug("vlm step failure", exc_info=error)
        self.reset()
        first = str(error).splitlines()[0] if str(error) else ""
        return Decision.silence(errors=[f"vlm step failed ({type(error).__name__}): {first}; stream reset"])

    def evict_to_sink(self) -> int:
        """Free this stream's cache down to its sink (prompt, instruction, pinned questions); returns the
        tokens evicted. The stream goes on: the next frame is appended after the sink."""
        evicted = self.session.evict_to_sink()
        if evicted:
            self._pending = []  # the closing tokens of a turn that is no longer in the cache
        return evicted

    def _ids(self, text: str) -> list[int]:
        """Token ids of a template string (turn markers, frame headers), tokenized once: each part of a chunk
        is tokenized on its own anyway, so this is the same as passing the string."""
        ids = self._text_cache.get(text)
        if ids is None:
            if len(self._text_cache) > 4096:  # frame headers differ per second: keep the cache bounded
                self._text_cache.clear()
            ids = self._text_cache[text] = self.adapter.text_ids(text)
        return ids

    def _merge(self, pieces: list[tuple[Any, int]]) -> tuple[Any, list[int]]:
        """Several encoded chunks as ONE chunk, with the segment of each token."""
        from agentkit.policies.vlm.adapters.base import Chunk

        merged = Chunk()
        segs: list[int] = []
        for chunk, seg in pieces:
            if chunk is None or not chunk.ids:
                continue
            merged.extend(chunk)
            segs += [seg] * len(chunk.ids)
        return merged, segs

    def _resized_size(self, chunk: Any) -> tuple[int, int] | None:
        for img in chunk.images:
            grid = img.get("image_grid_thw")
            if grid is not None:
                patch = int(getattr(self.adapter.image_processor, "patch_size", 14))
                return int(grid[0, 2]) * patch, int(grid[0, 1]) * patch  # (width, height)
        return None

    def _response(self, text: str) -> Decision:
        try:
            from agentkit.parsing import parse_response
        except ImportError:
            return Decision.response(text, errors=["response parsing unavailable (agentkit.parsing missing)"])
        try:
            r = parse_response(text, self.coord_format, resized_size=self._resized)
        except ValueError as e:
            return Decision.response(text, errors=[f"cannot parse response: {e}"])
        return Decision.response(
            r.text, points=list(r.points), boxes=list(r.boxes), tool_calls=list(r.tool_calls), errors=list(r.errors)
        )
