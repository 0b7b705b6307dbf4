"""A policy served by an OpenAI-compatible chat API (vLLM, SGLang, Ollama, llama.cpp server).

This is the path to models too large for the local engine: the server owns the GPU and its own cache,
agentkit sends sampled frames as JPEG data URLs and reads one of SILENCE / STANDBY / RESPONSE from the
reply. A server cannot append to a cache across HTTP calls, so every call re-sends a short window of
recent frames; ``min_interval_s`` bounds the request rate, and frames in between are answered with
Silence marked ``meta.skipped`` (the loop's latest-wins slot already drops frames while a call is out).

Model output is data: the state word is matched with a regular expression and the rest goes through
:func:`agentkit.parsing.parse_response`; nothing is evaluated.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import re
import time
import urllib.error
import urllib.request
from typing import Any

import cv2
import numpy as np
from pydantic import Field

from agentkit.errors import PolicyError
from agentkit.policy import Policy, PolicyConfig
from agentkit.types import Decision, DecisionKind, Frame

DEFAULT_PROMPT = (
    "You watch a live video stream, a few frames at a time, with their stream times. For the newest frame, "
    "answer with exactly one word first: SILENCE if nothing relevant is happening, STANDBY if something "
    "relevant has started but is not complete, RESPONSE if you should speak now. After RESPONSE, add one short "
    "sentence for the user."
)

_STATE = re.compile(
    r"^\W*(?:</?)?(silence|standby|response)\b(?:>)?[\s:.,\-]*",
    re.IGNORECASE,
)


class HTTPPolicyConfig(PolicyConfig):
    """Settings of :class:`HTTPPolicy`; every field can be given as a keyword argument."""

    model: str = "default"  # the model name the server knows
    base_url: str = "http://127.0.0.1:8000/v1"  # the API root, up to and including /v1
    api_key: str | None = None  # default: $OPENAI_API_KEY, else none
    prompt: str = DEFAULT_PROMPT
    instruction: str | None = None  # the task or question, sent with every call
    min_interval_s: float = Field(1.0, ge=0)  # at most one call per this many stream seconds
    history_frames: int = Field(4, ge=1, le=32)  # frames sent per call (the newest last)
    max_side: int = Field(512, ge=32)  # frames are downscaled so the longer side is at most this
    jpeg_quality: int = Field(80, ge=10, le=100)
    max_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.0, ge=0)
    timeout_s: float = Field(30.0, gt=0)
    coord_format: str = "auto"  # how the model writes coordinates (see agentkit.parsing)
    check_server: bool = True  # GET /models at start, for a clear error when nothing listens


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
    """Decides through an OpenAI-compatible ``/chat/completions`` endpoint."""

    name = "http"
    Config = HTTPPolicyConfig

    def __init__(self, config: HTTPPolicyConfig | None = None, **options: Any) -> None:
        self.config = self.configure(config, options, HTTPPolicyConfig)
        self.api_key = self.config.api_key or os.environ.get("OPENAI_API_KEY")
        self._frames: collections.deque[tuple[float, str]] = collections.deque(maxlen=self.config.history_frames)
        self._questions: list[tuple[float | None, str]] = []
        self._last_call_pts: float | None = None
        self._sent_size: tuple[int, int] | None = None
        if self.config.check_server:
            self._get("/models")

    # ------------------------------------------------------------------ HTTP
    def _request(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = self.config.base_url.rstrip("/") + path
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=self.config.timeout_s) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:200].replace("\n", " ")
            raise PolicyError(f"{url}: HTTP {e.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise PolicyError(f"cannot reach the OpenAI-compatible server at {url}: {reason}") from None
        except json.JSONDecodeError:
            raise PolicyError(f"{url}: the reply is not JSON") from None

    def _get(self, path: str) -> dict[str, Any]:
        return self._request(path)

    # ------------------------------------------------------------------ policy
    def reset(self) -> None:
        self._frames.clear()
        self._questions.clear()
        self._last_call_pts = None

    def instruct(self, text: str, pts: float | None = None) -> None:
        self._questions.append((pts, text))

    def _messages(self) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for pts, url in self._frames:
            content.append({"type": "text", "text": f"t={pts:.1f}s"})
            content.append({"type": "image_url", "image_url": {"url": url}})
        asks = ([self.config.instruction] if self.config.instruction else []) + [
            (f"(at t={pts:.1f}s) " if pts is not None else "") + q for pts, q in self._questions
        ]
        if asks:
            content.append({"type": "text", "text": "User: " + " ".join(asks)})
        return [{"role": "system", "content": self.config.prompt}, {"role": "user", "content": content}]

    def step(self, frame: Frame) -> Decision:
        cfg = self.config
        url, self._sent_size = encode_jpeg(frame.image, cfg.max_side, cfg.jpeg_quality)
        self._frames.append((frame.pts, url))
        if self._last_call_pts is not None and frame.pts - self._last_call_pts < cfg.min_interval_s:
            return Decision.silence(meta={"skipped": True})
        self._last_call_pts = frame.pts
        body = {
            "model": cfg.model,
            "messages": self._messages(),
            "max_tokens": cfg.max_tokens,
            "temperature": cfg.temperature,
        }
        t0 = time.perf_counter()
        try:
            reply = self._request("/chat/completions", body)
            text = reply["choices"][0]["message"]["content"] or ""
        except PolicyError as e:  # a flaky server costs this frame, not the stream
            return Decision.silence(errors=[str(e)], model_ms=(time.perf_counter() - t0) * 1e3)
        except (KeyError, IndexError, TypeError):
            return Decision.silence(errors=["http: reply has no choices[0].message.content"])
        ms = (time.perf_counter() - t0) * 1e3
        kind, rest = split_state(text)
        if kind is None:
            return Decision.silence(errors=[f"no SILENCE/STANDBY/RESPONSE in reply: {text[:80]!r}"], model_ms=ms)
        if kind is not DecisionKind.RESPONSE:
            return Decision(kind, model_ms=ms)
        self._questions.clear()  # answered
        return self._parse(rest, ms)

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
