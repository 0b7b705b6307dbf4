"""The ASGI app of ``agentkit serve`` (FastAPI on Starlette; run by uvicorn).

Endpoints (all behind the bearer token when one is set):

* ``GET  /v1/models`` -- the served model (OpenAI shape);
* ``POST /v1/chat/completions`` -- OpenAI chat completions, non-streaming or ``stream=true`` (SSE), on a
  stream named by ``agentkit.stream`` (:mod:`.chat`);
* ``WS   /v1/streams/{name}/ws`` -- push frames, receive a decision per frame (:mod:`.ws`);
* ``GET  /v1/streams``, ``GET /v1/streams/{name}``, ``DELETE /v1/streams/{name}`` -- the stream table;
* ``GET  /v1/metrics`` -- streams, cache bytes, evictions, batches; ``GET /health``.

Every refusal is a 4xx with OpenAI's error JSON (:mod:`.errors`): malformed JSON 400 ``invalid_json``, a bad
field 400 ``invalid_request``, an unknown stream 404 ``stream_not_found``, too many streams 429
``too_many_streams``, an oversized image 413 ``image_too_large``, an oversized body 413
``request_too_large``, a missing or wrong key 401 ``invalid_api_key``. An unexpected failure is a 500 with
the same shape; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentkit.apps.serve.chat import extension, final_decision, run_chat, usage
from agentkit.apps.serve.errors import ServeError, error_body
from agentkit.apps.serve.schemas import (
    ChatRequest,
    chunk,
    completion,
    content_of,
    finish_reason,
    new_id,
    openai_tool_calls,
)
from agentkit.apps.serve.service import StreamService, check_stream_name
from agentkit.apps.serve.ws import serve_websocket

log = logging.getLogger(__name__)


class _TooLarge(Exception):
    pass


class Guard:
    """ASGI middleware in front of everything: the bearer token (constant-time compare) and the body limit.

    HTTP: ``Authorization: Bearer KEY``; a missing or wrong key is 401 before the app sees the request. A
    body over ``max_body`` bytes is 413 (from ``Content-Length`` at once, or while it is read). WebSocket: the
    same header, or ``?api_key=KEY`` (browsers cannot set headers); refused handshakes get HTTP 403.
    """

    def __init__(self, app: ASGIApp, api_key: str | None, max_body: int) -> None:
        self.app = app
        self.key = api_key.encode() if api_key else None
        self.max_body = max_body

    def _authorized(self, scope: Scope) -> bool:
        if self.key is None:
            return True
        given = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
        if not given and scope["type"] == "websocket":
            q = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (q.get("api_key") or [""])[0].encode()
        return hmac.compare_digest(given, self.key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _send_json(
                send, 401, error_body(401, "invalid_api_key", "missing or wrong API key (Authorization: Bearer KEY)")
            )
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _send_json(send, 413, _too_large(int(length), self.max_body))
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge()
            return msg

        async def tracking(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted, tracking)
        except _TooLarge:
            if not started:
                await _send_json(send, 413, _too_large(seen, self.max_body))


def _too_large(n: int, limit: int) -> dict[str, Any]:
    return error_body(413, "request_too_large", f"request body of {n}+ bytes, more than the limit of {limit}")


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def _validation_message(e: ValidationError) -> tuple[str, str, str | None]:
    """``(code, message, param)`` of the first validation error."""
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err.get("loc", ()))
    code = "invalid_stream_id" if loc == "agentkit.stream" else "invalid_request"
    return code, f"{loc or 'body'}: {err.get('msg', 'invalid')}", loc or None


async def parse_chat(request: Request) -> ChatRequest:
    """The request body as a :class:`ChatRequest` (400 ``invalid_json`` / ``invalid_request`` otherwise)."""
    raw = await request.body()
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        msg = f"{e.msg} at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)
        raise ServeError(400, "invalid_json", f"the request body is not valid JSON: {msg}") from None
    if not isinstance(obj, dict):
        raise ServeError(400, "invalid_json", "the request body must be a JSON object")
    try:
        return ChatRequest.model_validate(obj)
    except ValidationError as e:
        code, message, param = _validation_message(e)
        raise ServeError(400, code, message, param) from None


def create_app(service: StreamService) -> FastAPI:
    """The server's ASGI app around a :class:`StreamService` (the caller owns the model and the service)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await service.close()

    app = FastAPI(title="agentkit serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    app.add_middleware(Guard, api_key=service.config.api_key, max_body=service.config.max_request_bytes)

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, e: ServeError) -> JSONResponse:
        service.counters[f"http_{e.status}"] += 1
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        service.counters[f"http_{e.status_code}"] += 1
        return JSONResponse(error_body(e.status_code, code, str(e.detail)), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path)
        service.counters["http_500"] += 1
        return JSONResponse(error_body(500, "internal_error", f"{type(e).__name__}: {e}"), status_code=500)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": service.model_name, "streams": len(service.table)}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": service.model_name, "object": "model", "created": int(service.started), "owned_by": "agentkit"}
            ],
        }

    @app.get("/v1/metrics")
    async def metrics() -> dict[str, Any]:
        return service.metrics()

    @app.get("/v1/streams")
    async def list_streams() -> dict[str, Any]:
        return {"object": "list", "data": [s.info() for s in list(service.table.streams.values()) if not s.ephemeral]}

    @app.get("/v1/streams/{name}")
    async def get_stream(name: str) -> dict[str, Any]:
        return service.table.get(check_stream_name(name)).info()

    @app.delete("/v1/streams/{name}")
    async def delete_stream(name: str) -> dict[str, Any]:
        await service.delete(check_stream_name(name))
        return {"deleted": name}

    @app.websocket("/v1/streams/{name}/ws")
    async def stream_ws(websocket: WebSocket, name: str, create: bool = True, tokens: bool = False) -> None:
        try:
            check_stream_name(name)
        except ServeError as e:
            await websocket.accept()
            await websocket.send_text(json.dumps({"type": "error", "code": e.code, "message": e.message}))
            await websocket.close(code=4400)
            return
        await serve_websocket(websocket, service, name, create, tokens)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        req = await parse_chat(request)
        service.counters["chat_requests"] += 1
        rid = new_id()
        if not req.stream:
            outcome = await run_chat(service, req)
            d = final_decision(outcome)
            return JSONResponse(completion(rid, service.model_name, d, usage(outcome), extension(service, outcome)))
        return await _stream_chat(service, req, rid)

    return app


async def _stream_chat(service: StreamService, req: ChatRequest, rid: str) -> StreamingResponse:
    """``stream=true``: validation and image errors are still a 4xx JSON reply (checked before the first
    byte); then ``data: {chunk}`` lines: the role, the content as decoded, a final chunk with
    ``finish_reason`` and ``agentkit``, ``usage`` when asked (``stream_options.include_usage``), ``[DONE]``."""
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    started = asyncio.Event()

    def on_piece(piece: str) -> None:
        queue.put_nowait(("piece", piece))

    async def run() -> Any:
        outcome = await run_chat(service, req, on_piece, started)
        queue.put_nowait(("done", outcome))
        return outcome

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]  # a ServeError before anything ran: a JSON 4xx
    model = service.model_name
    include_usage = bool(req.stream_options and req.stream_options.include_usage)

    async def events() -> AsyncIterator[str]:
        yield _sse(chunk(rid, model, {"role": "assistant", "content": ""}))
        prefix_sent = False
        while True:
            if task.done() and task.exception() is not None and queue.empty():
                e = task.exception()
                body = e.body() if isinstance(e, ServeError) else error_body(500, "internal_error", str(e))
                yield _sse(body)
                break
            try:
                kind, value = await asyncio.wait_for(queue.get(), timeout=1.0)
            except asyncio.TimeoutError:
                continue
            if kind == "piece":
                text = value if prefix_sent else "RESPONSE: " + value.lstrip()
                prefix_sent = True
                yield _sse(chunk(rid, model, {"content": text}))
                continue
            outcome = value
            d = final_decision(outcome)
            if not prefix_sent:
                yield _sse(chunk(rid, model, {"content": content_of(d)}))
            calls = openai_tool_calls(d, rid[-8:])
            if calls:
                yield _sse(chunk(rid, model, {"tool_calls": [{"index": i, **c} for i, c in enumerate(calls)]}))
            yield _sse(chunk(rid, model, {}, finish_reason(d), agentkit=extension(service, outcome)))
            if include_usage:
                body = chunk(rid, model, {}, None, usage=usage(outcome))
                body["choices"] = []
                yield _sse(body)
            break
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _sse(obj: dict[str, Any]) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def model_name_for(source: str) -> str:
    """The id to serve a checkpoint under: its folder name (``random-ARCH-SIZE`` for built models)."""
    from pathlib import Path

    if source.startswith("random:"):
        return "random-" + "-".join(source.split(":")[1:])
    return Path(source).name or source


__all__ = ["Guard", "create_app", "model_name_for", "parse_chat"]
