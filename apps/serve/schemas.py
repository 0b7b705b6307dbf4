"""Request and response shapes of ``agentkit serve``: the OpenAI chat-completions subset it implements, plus
the ``agentkit`` extension (which stream a request belongs to; the structured decision in the reply).

Requests are validated here (unknown OpenAI fields such as ``n``, ``tools`` or ``seed`` are accepted and
ignored, as vLLM does); replies are built by :func:`completion`, :func:`chunk` and :func:`agentkit_result`,
so the JSON the server writes is defined in one module.

The decision shape (``agentkit`` in a reply, and each WebSocket ``decision`` message)::

    {"stream": "cam1", "decision": "silence" | "standby" | "response", "text": str | null,
     "points": [{"x", "y"}], "boxes": [{"x1", "y1", "x2", "y2"}], "tool_calls": [{"name", "arguments"}],
     "errors": [str], "seq": int, "pts": float, "cache_tokens": int, "cache_bytes": int,
     "prefilled_tokens": int, "generated_tokens": int, "model_ms": float, "queue_ms": float,
     "batch": int, "probs": {...}}

Coordinates are normalized to [0, 1] of the frame the model saw (origin top-left), as everywhere in agentkit.
A chat reply adds ``turns`` (frames and text-only turns this request ran), ``decisions`` (one short entry per
turn when there were several), ``reset`` (the stream was restarted because the conversation did not continue
what it had seen) and ``new_messages``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agentkit.types import Decision, DecisionKind

STREAM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
"""A stream name: letters, digits and ``._:@-``, at most 128 characters."""


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="allow")

    url: str
    detail: str | None = None


class ContentPart(BaseModel):
    """One part of a message's content: ``{"type": "text", "text"}`` or ``{"type": "image_url", "image_url"}``."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text", "image_url", "input_text", "input_image"]
    text: str | None = None
    image_url: ImageURL | str | None = None

    def url(self) -> str | None:
        if self.image_url is None:
            return None
        return self.image_url if isinstance(self.image_url, str) else self.image_url.url


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def parts(self) -> list[ContentPart]:
        if self.content is None:
            return []
        if isinstance(self.content, str):
            return [ContentPart(type="text", text=self.content)]
        return list(self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class AgentkitOptions(BaseModel):
    """The ``agentkit`` object of a request (``extra_body={"agentkit": {...}}`` with the openai client).

    Attributes:
        stream: the stream this request belongs to; its cache is kept between requests. Without it the
            request runs on a fresh stream that is dropped afterwards (a plain stateless completion).
        create: create the stream when it does not exist (False: 404 ``stream_not_found`` instead).
        reset: start the stream afresh (its cache dropped) before this request.
        instruction: the stream's task (its first user turn, kept in the sink) when this request creates or
            restarts it; default: the server's. ``""``: none (the system message says it all).
        mode: how ``messages`` relate to what the stream has seen: ``conversation`` (the whole conversation
            is re-sent, the seen prefix is skipped), ``append`` (only new messages are sent), ``auto``
            (conversation when the seen messages are a prefix, or a compacted tail, of ``messages``;
            append when ``messages`` has no system message; otherwise the stream restarts).
    """

    model_config = ConfigDict(extra="forbid")

    stream: str | None = Field(None, pattern=STREAM_ID_PATTERN)
    create: bool = True
    reset: bool = False
    instruction: str | None = Field(None, max_length=20000)
    mode: Literal["auto", "conversation", "append"] = "auto"


class ChatRequest(BaseModel):
    """``POST /v1/chat/completions`` (fields other clients send are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = "default"
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=8192)
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    user: str | None = None
    agentkit: AgentkitOptions = Field(default_factory=AgentkitOptions)


# -- replies ------------------------------------------------------------------------------------------------
def content_of(d: Decision) -> str:
    """The reply text: ``SILENCE``, ``STANDBY`` or ``RESPONSE: <text>`` (what ``--policy http`` parses, and what
    a prompted vLLM model is asked to write)."""
    if d.kind is DecisionKind.RESPONSE:
        return f"RESPONSE: {d.text}" if d.text else "RESPONSE"
    return d.kind.value.upper()


def openai_tool_calls(d: Decision, prefix: str) -> list[dict[str, Any]]:
    """The decision's tool calls in OpenAI's ``message.tool_calls`` form."""
    return [
        {
            "id": c.id or f"call_{prefix}_{i}",
            "type": "function",
            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
        }
        for i, c in enumerate(d.tool_calls)
    ]


def finish_reason(d: Decision) -> str:
    if d.tool_calls:
        return "tool_calls"
    return "length" if d.meta.get("stopped_by") == "max_tokens" else "stop"


def agentkit_result(stream: str | None, d: Decision, cache_bytes: int | None = None) -> dict[str, Any]:
    """The structured decision (the module docstring's shape)."""
    m = d.meta
    out: dict[str, Any] = {
        "stream": stream,
        "decision": d.kind.value,
        "text": d.text,
        "points": [p.to_dict() for p in d.points],
        "boxes": [b.to_dict() for b in d.boxes],
        "tool_calls": [c.to_dict() for c in d.tool_calls],
        "errors": list(d.errors),
        "seq": d.seq,
        "pts": round(d.pts, 4),
        "cache_tokens": m.get("cache_tokens"),
        "prefilled_tokens": m.get("prefilled_tokens", 0),
        "generated_tokens": m.get("tokens", 0),
        "model_ms": None if d.model_ms is None else round(d.model_ms, 3),
        "queue_ms": m.get("queue_ms"),
        "batch": m.get("batch"),
        "probs": m.get("probs"),
    }
    if cache_bytes is not None:
        out["cache_bytes"] = cache_bytes
    if m.get("questions"):
        out["questions"] = m["questions"]
    return out


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def completion(rid: str, model: str, d: Decision, usage: dict[str, int], extension: dict[str, Any]) -> dict[str, Any]:
    """A non-streaming ``chat.completion``."""
    message: dict[str, Any] = {"role": "assistant", "content": content_of(d)}
    calls = openai_tool_calls(d, rid[-8:])
    if calls:
        message["tool_calls"] = calls
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(d), "logprobs": None}],
        "usage": usage,
        "agentkit": extension,
    }


def chunk(rid: str, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk`` of a streamed reply (``extra``: ``usage``, ``agentkit``, ``choices=[]``)."""
    body: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
    body.update(extra)
    return body


__all__ = [
    "STREAM_ID_PATTERN",
    "AgentkitOptions",
    "ChatRequest",
    "ContentPart",
    "Message",
    "agentkit_result",
    "chunk",
    "completion",
    "content_of",
    "finish_reason",
    "new_id",
    "openai_tool_calls",
]
