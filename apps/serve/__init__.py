"""``agentkit serve``: the streaming VLM engine as an OpenAI-compatible server with per-stream KV caches.

Why: a served model usually re-reads the whole conversation on every request. Here each named stream keeps
its cache on the device between requests, so a request prefills only its new frame(s) and text; frames of
different streams that arrive together run as one batched forward.

Modules: :mod:`.config` (settings), :mod:`.schemas` (request/response shapes), :mod:`.errors` (the 4xx JSON),
:mod:`.images` (data URLs and URLs -> frames, with limits), :mod:`.sessions` (the stream table, memory budget),
:mod:`.service` (streams + batch scheduler), :mod:`.chat` (chat completions on a stream), :mod:`.ws` (push
streaming over WebSocket), :mod:`.app` (the FastAPI app and the auth/size guard), :mod:`.server` (loading the
model and running uvicorn). Protocol and figures: docs/serve.md.
"""

from __future__ import annotations
