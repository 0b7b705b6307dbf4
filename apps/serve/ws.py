"""``/v1/streams/{name}/ws``: push frames in, get a decision per frame back, on one WebSocket.

Client -> server:

* a **binary** message: one encoded image (JPEG, PNG, WebP); its stream time is the server's stream clock;
* ``{"type": "frame", "image": "data:image/jpeg;base64,...", "pts": 12.0, "text": "optional question"}``;
* ``{"type": "instruct", "text": "...", "pts": 12.0}``: a question for the next frame's user turn.

Server -> client:

* ``{"type": "ready", "stream", "model", "created"}`` once connected;
* ``{"type": "decision", ...}`` per processed frame: the decision shape of :mod:`.schemas` plus ``dropped``
  (frames replaced before the model took them, so far);
* ``{"type": "token", "seq", "text"}`` per piece of Response text as decoded (with ``?tokens=true``);
* ``{"type": "error", "code", "message"}`` for a bad message (bad JSON, undecodable or oversized image):
  the connection stays open.

Frames are **latest-wins** (the project's rule for live streams): while the model is busy with this stream's
frame, a newer frame replaces an older waiting one, which is counted as dropped, so latency cannot grow with
the stream. Questions are never dropped. A handshake with a wrong or missing API key is refused (HTTP 403);
``?create=false`` on an unknown stream closes with code 4404 after an ``error`` message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from agentkit.apps.serve.errors import ServeError
from agentkit.apps.serve.images import decode_bytes, decode_data_url
from agentkit.apps.serve.schemas import agentkit_result
from agentkit.apps.serve.service import StreamService
from agentkit.apps.serve.sessions import Stream


class _Slot:
    """A one-frame mailbox: ``put`` replaces a waiting frame (counted), ``get`` waits for one."""

    def __init__(self) -> None:
        self.item: tuple[Any, float | None, str | None] | None = None
        self.event = asyncio.Event()
        self.dropped = 0

    def put(self, item: tuple[Any, float | None, str | None]) -> None:
        if self.item is not None:
            self.dropped += 1
            old_q = self.item[2]
            if old_q and item[2] is None:  # a question travels on with the newer frame
                item = (item[0], item[1], old_q)
        self.item = item
        self.event.set()

    async def get(self) -> tuple[Any, float | None, str | None]:
        while self.item is None:
            self.event.clear()
            await self.event.wait()
        item, self.item = self.item, None
        return item


async def serve_websocket(ws: WebSocket, service: StreamService, name: str, create: bool, tokens: bool) -> None:
    """Run one WebSocket connection on stream ``name`` until the client disconnects."""
    await ws.accept()
    send_lock = asyncio.Lock()

    async def send(obj: dict[str, Any]) -> None:
        async with send_lock:
            await ws.send_text(json.dumps(obj))

    stream = service.find(name)
    created = False
    if stream is None:
        if not create:
            await send({"type": "error", "code": "stream_not_found", "message": f"no stream named {name!r}"})
            await ws.close(code=4404)
            return
        try:
            stream = await service.create(name)
        except ServeError as e:
            await send({"type": "error", "code": e.code, "message": e.message})
            await ws.close(code=4429 if e.status == 429 else 4400)
            return
        created = True
    await send({"type": "ready", "stream": name, "model": service.model_name, "created": created})
    slot = _Slot()
    worker = asyncio.create_task(_process(service, stream, slot, send, tokens))
    try:
        await _receive(ws, service, stream, slot, send)
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker
        await service.release(stream)


async def _receive(ws: WebSocket, service: StreamService, stream: Stream, slot: _Slot, send: Any) -> None:
    limits = service.limits
    while True:
        try:
            msg = await ws.receive()
        except WebSocketDisconnect:
            return
        if msg["type"] == "websocket.disconnect":
            return
        try:
            if msg.get("bytes") is not None:
                image = await asyncio.to_thread(decode_bytes, msg["bytes"], limits, "frame")
                slot.put((image, None, None))
                continue
            try:
                obj = json.loads(msg.get("text") or "")
            except json.JSONDecodeError as e:
                raise ServeError(400, "invalid_json", f"message is not JSON: {e.msg} at {e.pos}") from None
            if not isinstance(obj, dict):
                raise ServeError(400, "invalid_request", "a message must be a JSON object")
            kind = obj.get("type")
            pts = obj.get("pts")
            if pts is not None and not isinstance(pts, (int, float)):
                raise ServeError(400, "invalid_request", "pts must be a number (seconds)")
            text = obj.get("text")
            if text is not None and not isinstance(text, str):
                raise ServeError(400, "invalid_request", "text must be a string")
            if kind == "frame":
                url = obj.get("image")
                if not isinstance(url, str) or not url:
                    raise ServeError(400, "invalid_request", "a frame message needs image: a data URL")
                image = await asyncio.to_thread(decode_data_url, url, limits, "frame")
                slot.put((image, None if pts is None else float(pts), text or None))
            elif kind == "instruct":
                if not text:
                    raise ServeError(400, "invalid_request", "an instruct message needs text")
                stream.policy.instruct(text, None if pts is None else float(pts))
            else:
                raise ServeError(400, "invalid_request", f"unknown message type {kind!r} (frame, instruct)")
        except ServeError as e:
            await send({"type": "error", "code": e.code, "message": e.message})


async def _process(service: StreamService, stream: Stream, slot: _Slot, send: Any, tokens: bool) -> None:
    loop = asyncio.get_running_loop()
    while True:
        image, pts, question = await slot.get()
        async with stream.lock:
            if tokens:
                seq = stream.turns

                def push(piece: str, seq: int = seq) -> None:  # in the model thread
                    loop.call_soon_threadsafe(
                        lambda: loop.create_task(send({"type": "token", "seq": seq, "text": piece}))
                    )

                stream.policy.on_token = push
            try:
                d = await service.turn(stream, image, pts, question)
            finally:
                stream.policy.on_token = None
        msg = {
            "type": "decision",
            **agentkit_result(stream.id, d, service.cache_bytes(stream)),
            "dropped": slot.dropped,
        }
        await send(msg)


__all__ = ["serve_websocket"]
