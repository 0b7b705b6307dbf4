"""The dashboard's ASGI app: FastAPI routes, the WebSocket feed, and the host/origin guard.

Imported only when a dashboard is served (FastAPI is an optional dependency, the ``dashboard`` extra). The
protocol and the threading are described in :mod:`agentkit.apps.dashboard.server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

from fastapi import FastAPI, HTTPException, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from agentkit.apps.dashboard.runtime import (
    LOOPBACK_NAMES,
    SEND_TIMEOUT_S,
    STATIC,
    LiveRuntime,
    _Client,
    pack_frame,
)
from agentkit.apps.dashboard.state import Cursor, StreamView

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- host and origin checks
def _host_of(value: str) -> str:
    """``host`` of a ``Host`` header value (``host``, ``host:port``, ``[v6]:port``), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class _HostGuard:
    """ASGI middleware: only loopback ``Host`` names (when bound to loopback) and same-origin WebSockets."""

    def __init__(self, app: Any, *, loopback_only: bool) -> None:
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            host = headers.get("host", "")
            bad = self.loopback_only and host and not _loopback_name(_host_of(host))
            origin = headers.get("origin")
            if scope["type"] == "websocket" and origin and urlparse(origin).netloc.lower() != host.lower():
                bad = True
            if bad:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                else:
                    body = b"dashboard: host or origin refused\n"
                    await send(
                        {"type": "http.response.start", "status": 403, "headers": [(b"content-type", b"text/plain")]}
                    )
                    await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _loopback_name(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- the app
def create_app(hub: Any, *, loopback_only: bool = True) -> Any:
    """The ASGI app for a :class:`LiveHub` (live) or a ``ReplayHub`` (a recording)."""
    live = hub.mode == "live"
    runtime_box: dict[str, LiveRuntime] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if live:
            rt = LiveRuntime(hub)
            runtime_box["rt"] = rt
            app.state.runtime = rt
            rt.start()
        try:
            yield
        finally:
            if live:
                await runtime_box["rt"].finish()
                runtime_box["rt"].close()

    app = FastAPI(title="agentkit dashboard", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    no_cache = {"Cache-Control": "no-store"}

    @app.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=no_cache)

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        if live:
            rt = runtime_box["rt"]
            names = [s.name for s in hub.states()]
            return {"mode": "live", "title": hub.title, "streams": names, **rt.info()}
        return {"mode": "replay", "title": hub.title, "streams": list(hub.streams)}

    if live:

        def view(name: str) -> StreamView:
            rt = runtime_box["rt"]
            rt.poll()
            v = rt.views.get(name)
            if v is None:
                raise HTTPException(404, f"no stream {name!r}")
            return v

        @app.get("/api/streams/{name}/state")
        async def state(name: str) -> JSONResponse:
            return JSONResponse(view(name).snapshot(), headers=no_cache)

        @app.get("/api/streams/{name}/frame.jpg")
        async def frame(name: str) -> Response:
            f = view(name).frame
            if f is None:
                raise HTTPException(404, "no frame yet")
            return Response(f.jpeg, media_type="image/jpeg", headers={**no_cache, "X-Frame": json.dumps(f.header)})

        @app.websocket("/ws")
        async def ws_endpoint(ws: WebSocket) -> None:
            rt = runtime_box["rt"]
            await ws.accept()
            client = _Client()
            rt.clients.add(client)
            rt.clients_total += 1

            async def drain() -> None:  # notices the client leaving; what it says is ignored
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    while True:
                        msg = await ws.receive()
                        if msg["type"] == "websocket.disconnect":
                            return

            async def send(data: str | bytes) -> None:
                coro = ws.send_bytes(data) if isinstance(data, bytes) else ws.send_text(data)
                await asyncio.wait_for(coro, SEND_TIMEOUT_S)

            async def feed() -> None:
                names = [s.name for s in hub.states()]
                await send(json.dumps({"type": "hello", "mode": "live", "title": hub.title, "streams": names}))
                while True:
                    closing = rt.closing
                    for v in list(rt.views.values()):
                        cur = client.cursors.setdefault(v.name, Cursor())
                        msg = v.delta(cur)
                        if msg is not None:
                            await send(json.dumps(msg, separators=(",", ":")))
                        f = v.frame
                        if f is not None and f.id > cur.frame_id:
                            if cur.frame_id and f.id > cur.frame_id + 1:
                                missed = f.id - cur.frame_id - 1
                                cur.frames_skipped += missed
                                v.clients_frames_skipped += missed
                            cur.frame_id = f.id
                            await send(pack_frame(f.header, f.jpeg))
                    if closing:
                        await send(json.dumps({"type": "bye"}))
                        await ws.close(code=1001)
                        return
                    await rt.wait_change(1.0)

            tasks = [asyncio.create_task(drain()), asyncio.create_task(feed())]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    exc = t.exception()
                    if isinstance(exc, TimeoutError):
                        rt.clients_dropped += 1
                        log.warning("dashboard: a client was too slow to take a message; disconnected")
                        with contextlib.suppress(Exception):
                            await ws.close(code=1013)
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(BaseException):
                        await t
                rt.clients.discard(client)

    else:

        def stream(name: str) -> Any:
            s = hub.streams.get(name)
            if s is None:
                raise HTTPException(404, f"no recording {name!r}")
            return s

        @app.get("/api/streams/{name}/timeline")
        async def timeline(name: str) -> JSONResponse:
            return JSONResponse(stream(name).timeline())

        @app.get("/api/streams/{name}/frames/{i}.jpg")
        async def replay_frame(name: str, i: int, annotated: bool = True) -> Response:
            s = stream(name)
            try:
                jpeg, header = await asyncio.to_thread(s.frame, i, annotated)
            except IndexError as e:
                raise HTTPException(404, str(e)) from None
            return Response(jpeg, media_type="image/jpeg", headers={"X-Frame": json.dumps(header)})

    return _HostGuard(app, loopback_only=loopback_only)
