"""A policy served by an OpenAI-compatible chat API (``agentkit serve``, vLLM, SGLang, Ollama, llama.cpp).

This is the path to models too large for the local engine: the server owns the GPU and its cache. The
policy talks to it with the official ``openai`` client and keeps **one append-only transcript per stream**:
every call sends the whole conversation so far (system prompt, then one user turn per call holding the
newest frame as a JPEG data URL with its stream time, then the model's reply as an assistant turn), with
the new turn appended at the end. The beginning of each request is therefore exactly the previous request,
which is what keeps the stream's KV cache on the server:

* vLLM (``--enable-prefix-caching``, on by default in V1) and SGLang (RadixAttention) reuse the cached
  prefix automatically: only the new turn is prefilled. A sliding window of re-sent frames (what this
  policy did before) shifts the prefix on every call and defeats both.
* ``agentkit serve`` is told the stream's name (``extra_body={"agentkit": {"stream": ...}}``, ignored by
  the others), recognises the prefix it has seen and appends only the new turn to that stream's
  device-resident cache; its reply carries the structured decision, which is used as is.

The transcript cannot grow forever: when it holds more than ``max_turns`` user turns it is **compacted** to
the system prompt and the last ``keep_turns`` turns. On vLLM/SGLang each compaction costs one re-prefill
of what is kept (the prefix changed); ``agentkit serve`` recognises a compacted transcript (same first
message, then the tail of what it has seen) and still appends only the new turn.

``min_interval_s`` bounds the request rate: frames in between are answered with Silence marked
``meta.skipped`` (the loop's latest-wins slot already drops frames while a call is out). A failed call is a
Silence with the error recorded, never an exception. Model output is data: the state word is matched with a
regular expression and the rest goes through :func:`agentkit.parsing.parse_response`; nothing is evaluated.
"""

from __future__ import annotations

import base64
import os
import re
import time
import uuid
from typing import Any

import cv2
import numpy as np
from pydantic import Field, model_validator

from agentkit.errors import PolicyError
from agentkit.policy import Policy, PolicyConfig
from agentkit.types import Box, Decision, DecisionKind, Frame, Point, ToolCall

DEFAULT_PROMPT = (
    "You watch a live video stream, one frame per user turn, each with its stream time. For the newest frame, "
    "answer with exactly one word first: SILENCE if nothing relevant is happening, STANDBY if something "
    "relevant has started but is not complete, RESPONSE if you should speak now. After RESPONSE, add one short "
    "sentence for the user."
)

_STATE = re.compile(
    r"^\W*(?:</?)?(silence|standby|response)\b(?:>)?[\s:.,\-]*",
    re.IGNORECASE,
)


class HTTPPolicyConfig(PolicyConfig):
    """Settings of :class:`HTTPPolicy`; every field can be given as a keyword argument.

    Attributes:
        model: the model name the server knows.
        base_url: the API root, up to and including ``/v1``.
        api_key: default ``$OPENAI_API_KEY``, else none.
        stream: the stream's name on ``agentkit serve`` (default: a fresh ``agentkit-<hex>`` per policy).
        prompt / instruction: the system message (the instruction, if any, is appended to it).
        min_interval_s: at most one call per this many stream seconds.
        frames_per_turn: newest frames sent in one user turn (frames since the last call, at most this many).
        max_turns: compact the transcript when it holds more user turns than this.
        keep_turns: user turns (with their replies) kept by a compaction.
        max_side / jpeg_quality: frames are downscaled so the longer side is at most ``max_side``, then JPEG.
        max_tokens / temperature / timeout_s: per call.
        coord_format: how the model writes coordinates (see :mod:`agentkit.parsing`).
        check_server: ``GET /models`` at start, for a clear error when nothing listens.
    """

    model: str = "default"
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key: str | None = None
    stream: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
    prompt: str = DEFAULT_PROMPT
    instruction: str | None = None
    min_interval_s: float = Field(1.0, ge=0)
    frames_per_turn: int = Field(1, ge=1, le=16)
    max_turns: int = Field(64, ge=2)
    keep_turns: int = Field(16, ge=1)
    max_side: int = Field(512, ge=32)
    jpeg_quality: int = Field(80, ge=10, le=100)
    max_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.0, ge=0)
    timeout_s: float = Field(30.0, gt=0)
    coord_format: str = "auto"
    check_server: bool = True

    @model_validator(mode="after")
    def _keep_below_max(self) -> HTTPPolicyConfig:
        if self.keep_turns >= self.max_turns:
            raise ValueError(f"keep_turns={self.keep_turns} must be smaller than max_turns={self.max_turns}")
        return self


def encode_jpeg(image: np.ndarray, max_side: int, quality: int) -> tuple[str, tuple[int, int]]:
    """RGB image -> (``data:image/jpeg;base64,...``, (width, height) as sent)."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii"), (image.shape[1], image.shape[0])


def split_state(text: str) -> tuple[DecisionKind | None, str]:
    """``"RESPONSE: A cat."`` -> (RESPONSE, ``"A cat."``); no recognisable state -> (None, text)."""
    m = _STATE.match(text)
    if not m:
        return None, text.strip()
    return DecisionKind(m.group(1).lower()), text[m.end() :].strip()


class HTTPPolicy(Policy):
    """Decides through an OpenAI-compatible ``/chat/completions`` endpoint, one append-only transcript per
    stream (see the module docstring)."""

    name = "http"
    Config = HTTPPolicyConfig

    def __init__(self, config: HTTPPolicyConfig | None = None, **options: Any) -> None:
        import openai

        self.config = cfg = self.configure(config, options, HTTPPolicyConfig)
        self.api_key = cfg.api_key or os.environ.get("OPENAI_API_KEY")
        self.stream_name = cfg.stream or f"agentkit-{uuid.uuid4().hex[:12]}"
        self._client = openai.OpenAI(
            base_url=cfg.base_url, api_key=self.api_key or "EMPTY", timeout=cfg.timeout_s, max_retries=0
        )
        self.compactions = 0
        self.reset()
        if cfg.check_server:
            try:
                self._client.models.list()
            except Exception as e:
                raise PolicyError(self._explain(e)) from None

    # ------------------------------------------------------------------ transcript
    def reset(self) -> None:
        """A new stream: an empty transcript (the server's stream is restarted by the next call)."""
        self.transcript: list[dict[str, Any]] = [{"role": "system", "content": self._system()}]
        self._frames: list[tuple[float, str]] = []  # frames since the last call (newest last)
        self._questions: list[tuple[float | None, str]] = []
        self._last_call_pts: float | None = None
        self._sent_size: tuple[int, int] | None = None
        self._restart = True

    def _system(self) -> str:
        cfg = self.config
        return cfg.prompt + (f"\n\nTask: {cfg.instruction}" if cfg.instruction else "")

    def instruct(self, text: str, pts: float | None = None) -> None:
        if text and text.strip():
            self._questions.append((pts, text.strip()))

    @property
    def user_turns(self) -> int:
        return sum(1 for m in self.transcript if m["role"] == "user")

    def _turn(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for pts, url in self._frames[-self.config.frames_per_turn :]:
            content.append({"type": "text", "text": f"t={pts:.1f}s"})
            content.append({"type": "image_url", "image_url": {"url": url}})
        asks = [(f"(at t={pts:.1f}s) " if pts is not None else "") + q for pts, q in self._questions]
        if asks:
            content.append({"type": "text", "text": "User: " + " ".join(asks)})
        return {"role": "user", "content": content}

    def compact(self) -> bool:
        """Keep the system prompt and the last ``keep_turns`` user turns (with their replies) once the
        transcript holds more than ``max_turns``; returns whether it compacted."""
        if self.user_turns <= self.config.max_turns:
            return False
        starts = [i for i, m in enumerate(self.transcript) if m["role"] == "user"]
        cut = starts[-self.config.keep_turns]
        self.transcript = [self.transcript[0], *self.transcript[cut:]]
        self.compactions += 1
        return True

    # ------------------------------------------------------------------ calls
    def _explain(self, e: Exception) -> str:
        import openai

        url = self.config.base_url
        if isinstance(e, openai.APITimeoutError):
            return f"{url}: no reply within {self.config.timeout_s:g} s"
        if isinstance(e, openai.APIConnectionError):
            return f"cannot reach the OpenAI-compatible server at {url}: {e.__cause__ or e}"
        if isinstance(e, openai.APIStatusError):
            body = e.body if isinstance(e.body, dict) else {}
            err = body.get("error", body) if isinstance(body, dict) else {}
            detail = err.get("message") if isinstance(err, dict) else None
            return f"{url}: HTTP {e.status_code}: {str(detail or e.message)[:200]}"
        return f"{url}: {type(e).__name__}: {str(e)[:200]}"

    def step(self, frame: Frame) -> Decision:
        import openai

        cfg = self.config
        url, self._sent_size = encode_jpeg(frame.image, cfg.max_side, cfg.jpeg_quality)
        self._frames.append((frame.pts, url))
        del self._frames[: -cfg.frames_per_turn]
        if self._last_call_pts is not None and frame.pts - self._last_call_pts < cfg.min_interval_s:
            return Decision.silence(meta={"skipped": True})
        self._last_call_pts = frame.pts
        compacted = self.compact()
        self.transcript.append(self._turn())
        sent_turn = self.transcript[-1]
        asked = list(self._questions)
        self._frames, self._questions = [], []
        extra: dict[str, Any] = {"stream": self.stream_name, "instruction": ""}
        if self._restart:
            extra["reset"] = True
        t0 = time.perf_counter()
        try:
            reply = self._client.chat.completions.create(
                model=cfg.model,
                messages=self.transcript,  # type: ignore[arg-type]
                max_tokens=cfg.max_tokens,
                temperature=cfg.temperature,
                extra_body={"agentkit": extra},
            )
        except openai.APIStatusError as e:
            ms = (time.perf_counter() - t0) * 1e3
            if 400 <= e.status_code < 500 and self.transcript and self.transcript[-1] is sent_turn:
                self.transcript.pop()  # the server refused this turn: do not re-send it forever
                self._questions = asked + self._questions
            return Decision.silence(errors=[self._explain(e)], model_ms=ms)
        except openai.OpenAIError as e:  # a flaky server costs this frame, not the stream
            return Decision.silence(errors=[self._explain(e)], model_ms=(time.perf_counter() - t0) * 1e3)
        ms = (time.perf_counter() - t0) * 1e3
        self._restart = False
        try:
            text = reply.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError):
            return Decision.silence(errors=["http: reply has no choices[0].message.content"], model_ms=ms)
        self.transcript.append({"role": "assistant", "content": text})
        meta: dict[str, Any] = {"transcript_turns": self.user_turns}
        if compacted:
            meta["compacted"] = True
        usage = getattr(reply, "usage", None)
        if usage is not None and getattr(usage, "prompt_tokens", None) is not None:
            meta["prompt_tokens"] = usage.prompt_tokens
        structured = (reply.model_extra or {}).get("agentkit")
        if isinstance(structured, dict) and structured.get("decision") in ("silence", "standby", "response"):
            return self._from_server(structured, ms, meta)
        kind, rest = split_state(text)
        if kind is None:
            return Decision.silence(
                errors=[f"no SILENCE/STANDBY/RESPONSE in reply: {text[:80]!r}"], model_ms=ms, meta=meta
            )
        if kind is not DecisionKind.RESPONSE:
            return Decision(kind, model_ms=ms, meta=meta)
        d = self._parse(rest, ms)
        d.meta.update(meta)
        return d

    def _from_server(self, s: dict[str, Any], ms: float, meta: dict[str, Any]) -> Decision:
        """The structured decision ``agentkit serve`` returns (coordinates already normalized)."""
        errors = [str(e) for e in s.get("errors") or []]
        try:
            points = [Point(float(p["x"]), float(p["y"])) for p in s.get("points") or []]
            boxes = [Box(float(b["x1"]), float(b["y1"]), float(b["x2"]), float(b["y2"])) for b in s.get("boxes") or []]
            calls = [ToolCall(str(c["name"]), dict(c.get("arguments") or {})) for c in s.get("tool_calls") or []]
        except (KeyError, TypeError, ValueError) as e:
            points, boxes, calls = [], [], []
            errors.append(f"http: bad structured decision from the server: {e}")
        meta = {**meta, "server": {k: s.get(k) for k in ("cache_tokens", "prefilled_tokens", "model_ms", "batch")}}
        kind = DecisionKind(s["decision"])
        return Decision(
            kind,
            text=s.get("text") if kind is DecisionKind.RESPONSE else None,
            points=points,
            boxes=boxes,
            tool_calls=calls,
            errors=errors,
            model_ms=ms,
            meta=meta,
        )

    def _parse(self, text: str, ms: float) -> Decision:
        from agentkit.parsing import parse_response

        try:
            r = parse_response(text, self.config.coord_format, resized_size=self._sent_size)
        except ValueError as e:
            return Decision.response(text, errors=[f"cannot parse response: {e}"], model_ms=ms)
        return Decision.response(
            r.text or None,
            points=list(r.points),
            boxes=list(r.boxes),
            tool_calls=list(r.tool_calls),
            errors=list(r.errors),
            model_ms=ms,
        )

    def close(self) -> None:
        self._client.close()
