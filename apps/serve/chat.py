"""``POST /v1/chat/completions`` on a stream: only what is new is appended to its cache.

How a request maps onto the engine (documented in docs/serve.md):

* The stream is named by ``agentkit.stream`` (``extra_body={"agentkit": {"stream": "cam1"}}`` with the
  openai client). Without a name the request runs on a fresh stream dropped afterwards.
* The first system message is the stream's system prompt (used when the stream is created or restarted;
  otherwise the server's default). Assistant and tool messages are never re-fed: the stream's cache already
  holds its own decisions and answers.
* Which messages are new: see :meth:`~agentkit.apps.serve.sessions.Stream.new_messages` (a re-sent
  conversation whose seen prefix, or compacted tail, matches is skipped up to there).
* Every image of a new user message is one frame turn. A text part ``t=12.5s`` right before an image sets
  that frame's stream time (else: seconds since the stream was created). The message's other text is a
  question, inserted into the user turn of its last frame (Streamo's question-at-the-second-it-is-asked); a
  user message without images is one turn of that text alone, which the model answers or not like a frame.
* The reply is the decision of the request's last turn: ``content`` is ``SILENCE``, ``STANDBY`` or
  ``RESPONSE: text``; tool calls also as OpenAI ``tool_calls``; everything structured in ``agentkit``.
  ``usage.prompt_tokens`` counts the tokens this request actually prefilled into the cache (flat while the
  stream grows); ``completion_tokens`` the Response tokens decoded.

All images of the new messages are decoded and checked against the limits before anything runs, so a bad
request (4xx) leaves the stream untouched.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentkit.apps.serve.errors import ServeError
from agentkit.apps.serve.images import load_image
from agentkit.apps.serve.schemas import ChatRequest, Message, agentkit_result, new_id
from agentkit.apps.serve.service import StreamService
from agentkit.apps.serve.sessions import Stream, digest
from agentkit.types import Decision

_TIME = re.compile(r"^\s*t\s*=\s*(\d+(?:\.\d+)?)\s*s\s*$")


@dataclass
class TurnPlan:
    """One turn to run: an image (or none) at a stream time, with the question asked in it."""

    image_url: str | None
    pts: float | None
    question: str | None
    where: str
    image: np.ndarray | None = None


@dataclass
class ChatOutcome:
    """What a chat request did, for the reply."""

    stream: Stream
    decisions: list[Decision]
    new_messages: int
    restarted: bool
    prefilled: int = 0
    generated: int = 0
    cache_tokens: int = 0  # after the request (read before an unnamed stream is dropped)
    cache_bytes: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


def split_messages(req: ChatRequest) -> tuple[list[Message], list[str], str | None]:
    """The messages that feed the stream (system/developer/user), their digests, and the system prompt."""
    fed = [m for m in req.messages if m.role in ("system", "developer", "user")]
    prompt = None
    if fed and fed[0].role in ("system", "developer"):
        prompt = "\n".join(p.text or "" for p in fed[0].parts() if p.text).strip() or None
    return fed, [digest(m) for m in fed], prompt


def plan_turns(messages: list[Message], offset: int, skip_first_system: bool, max_images: int) -> list[TurnPlan]:
    """The turns of the new messages (images not decoded yet).

    Raises:
        ServeError: 413 ``too_many_images``; 400 ``invalid_request`` for an image part without a URL.
    """
    turns: list[TurnPlan] = []
    for k, m in enumerate(messages):
        where = f"messages[{offset + k}]"
        if m.role in ("system", "developer") and k == 0 and skip_first_system:
            continue  # the stream's system prompt, not a turn
        frames: list[TurnPlan] = []
        texts: list[str] = []
        pts: float | None = None
        for j, part in enumerate(m.parts()):
            if part.type in ("image_url", "input_image"):
                url = part.url()
                if not url:
                    raise ServeError(400, "invalid_request", f"{where}.content[{j}]: image part without a URL")
                frames.append(TurnPlan(url, pts, None, f"{where}.content[{j}]"))
                pts = None
            elif part.text:
                t = _TIME.match(part.text)
                if t:
                    pts = float(t.group(1))
                else:
                    texts.append(part.text.strip())
        question = "\n".join(t for t in texts if t) or None
        if frames:
            frames[-1].question = question
            turns.extend(frames)
        elif question:
            turns.append(TurnPlan(None, pts, question, where))
    n_images = sum(1 for t in turns if t.image_url)
    if n_images > max_images:
        raise ServeError(
            413, "too_many_images", f"{n_images} new images in one request, the limit is {max_images}", param="messages"
        )
    return turns


async def decode_turns(service: StreamService, turns: list[TurnPlan]) -> None:
    """Decode every image of ``turns`` (4xx on the first bad one)."""
    for t in turns:
        if t.image_url is not None:
            t.image = await load_image(t.image_url, service.limits, t.where)


def _decoding(stream: Stream, req: ChatRequest) -> None:
    """This request's decoding settings on the stream's policy (its own defaults otherwise)."""
    base = stream.decode_base
    update: dict[str, Any] = {}
    cap = req.max_completion_tokens or req.max_tokens
    if cap is not None:
        update["max_new_tokens"] = cap
    if req.temperature is not None:
        update["temperature"] = req.temperature
    if req.top_p is not None:
        update["top_p"] = req.top_p
    stream.policy.decode_cfg = base.model_copy(update=update) if update else base


async def run_chat(
    service: StreamService,
    req: ChatRequest,
    on_piece: Callable[[str], None] | None = None,
    started: asyncio.Event | None = None,
) -> ChatOutcome:
    """Run a chat request on its stream (created when needed) and return what happened.

    Args:
        service: the server's streams and scheduler.
        req: the validated request.
        on_piece: called (in the event loop) with each piece of Response text of the last turn as decoded.
        started: set once the request is checked and its turns start running (nothing 4xx after that).

    Raises:
        ServeError: 404 (unknown stream with ``create=false``), 413/400 (images, limits), 429 (streams).
    """
    opts = req.agentkit
    fed, digests, prompt = split_messages(req)
    has_system = bool(fed and fed[0].role in ("system", "developer"))
    max_images = service.config.max_images_per_request
    stream = service.find(opts.stream) if opts.stream else None
    if stream is None and opts.stream and not opts.create:
        raise ServeError(404, "stream_not_found", f"no stream named {opts.stream!r} (create=false)", "agentkit.stream")
    turns: list[TurnPlan] | None = None
    created = stream is None
    if stream is None:  # everything is new: check it all before a stream exists
        turns = plan_turns(fed, 0, has_system, max_images)
        await decode_turns(service, turns)
        stream = await service.create(opts.stream, prompt, opts.instruction)
    try:
        async with stream.lock:
            if service.table.streams.get(stream.id) is not stream:
                raise ServeError(404, "stream_not_found", f"stream {stream.id!r} was deleted", "agentkit.stream")
            restarted = False
            if opts.reset and not created:
                await service.restart(stream, prompt, opts.instruction)
                restarted = True
            start, restart = stream.new_messages(digests, has_system, opts.mode)
            if turns is None or stream.seen:  # an existing stream (or one another request created meanwhile)
                turns = plan_turns(fed[start:], start, start == 0 and has_system, max_images)
                await decode_turns(service, turns)
            if restart:
                await service.restart(stream, prompt, opts.instruction)
                restarted = True
            if started is not None:
                started.set()
            outcome = await _run_turns(service, stream, req, turns, on_piece)
            stream.remember(digests[start:] if not restart else digests)
            stream.requests += 1
            outcome.new_messages = len(fed) - start
            outcome.restarted = restarted
            outcome.cache_tokens = len(stream.policy.session)
            outcome.cache_bytes = service.cache_bytes(stream)
            return outcome
    finally:
        await service.release(stream)


async def _run_turns(
    service: StreamService,
    stream: Stream,
    req: ChatRequest,
    turns: list[TurnPlan],
    on_piece: Callable[[str], None] | None,
) -> ChatOutcome:
    _decoding(stream, req)
    loop = asyncio.get_running_loop()
    decisions: list[Decision] = []
    try:
        for i, t in enumerate(turns):
            if on_piece is not None and i == len(turns) - 1:

                def push(piece: str) -> None:  # called in the model thread
                    loop.call_soon_threadsafe(on_piece, piece)

                stream.policy.on_token = push
            decisions.append(await service.turn(stream, t.image, t.pts, t.question))
    finally:
        stream.policy.on_token = None
        stream.policy.decode_cfg = stream.decode_base
    out = ChatOutcome(stream, decisions, 0, False)
    out.prefilled = sum(int(d.meta.get("prefilled_tokens", 0)) for d in decisions)
    out.generated = sum(int(d.meta.get("tokens", 0)) for d in decisions)
    return out


def final_decision(outcome: ChatOutcome) -> Decision:
    """The decision the reply carries: the last turn's (or, with no new turn, the stream's last one)."""
    if outcome.decisions:
        return outcome.decisions[-1]
    last = outcome.stream.last
    if last is not None:
        return last
    return Decision.silence(errors=["no new user message to answer"])


def extension(service: StreamService, outcome: ChatOutcome) -> dict[str, Any]:
    """The ``agentkit`` object of a chat reply."""
    d = final_decision(outcome)
    s = outcome.stream
    ext = agentkit_result(None if s.ephemeral else s.id, d, outcome.cache_bytes)
    ext.update(
        cache_tokens=outcome.cache_tokens,
        prefilled_tokens=outcome.prefilled,
        generated_tokens=outcome.generated,
        turns=len(outcome.decisions),
        new_messages=outcome.new_messages,
        reset=outcome.restarted,
    )
    if len(outcome.decisions) > 1:
        ext["decisions"] = [
            {"seq": x.seq, "pts": round(x.pts, 4), "decision": x.kind.value, "text": x.text, "errors": x.errors}
            for x in outcome.decisions
        ]
    return ext


def usage(outcome: ChatOutcome) -> dict[str, int]:
    return {
        "prompt_tokens": outcome.prefilled,
        "completion_tokens": outcome.generated,
        "total_tokens": outcome.prefilled + outcome.generated,
    }


__all__ = ["ChatOutcome", "TurnPlan", "extension", "final_decision", "new_id", "plan_turns", "run_chat", "usage"]
