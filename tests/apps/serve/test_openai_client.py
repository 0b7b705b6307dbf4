"""The official ``openai`` client against a real ``agentkit serve`` (uvicorn subprocess, tiny checkpoint):
image messages answered, ``stream=True``, per-stream cache reuse, WebSocket push streaming, bad input."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json

import httpx
import pytest

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.vlm

SYSTEM = {"role": "system", "content": "You watch a kitchen camera."}


@pytest.fixture(scope="module")
def client(serve_process):
    c = openai.OpenAI(base_url=serve_process.url, api_key="unused", max_retries=0, timeout=60)
    yield c
    c.close()


def test_models_and_an_image_message(client, serve_process, media) -> None:
    assert [m.id for m in client.models.list()] == ["ckpt"]
    r = client.chat.completions.create(
        model="anything",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is on the table?"},
            {"type": "image_url", "image_url": {"url": media.url(1)}},
        ]}],
    )  # fmt: skip
    msg = r.choices[0].message
    ak = r.model_extra["agentkit"]
    assert msg.role == "assistant" and msg.content.startswith("RESPONSE")
    assert ak["decision"] == "response" and ak["stream"] is None  # unnamed: a one-request stream
    assert ak["questions"] == ["What is on the table?"] and ak["turns"] == 1
    assert r.usage.prompt_tokens == ak["prefilled_tokens"] > 0 and r.usage.completion_tokens == ak["generated_tokens"]
    assert r.model == "ckpt" and r.choices[0].finish_reason in ("stop", "length")


def test_stream_true_sends_chunks_then_the_decision(client, media) -> None:
    chunks = list(
        client.chat.completions.create(
            model="ckpt",
            messages=[SYSTEM, media.message(2, 0.0, "Anything new?")],
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"agentkit": {"stream": "sse-1"}},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text.startswith("RESPONSE: ") and len(text) > len("RESPONSE: ")
    assert len(chunks) >= 4  # role, at least one piece, the finish chunk, usage
    ak = final[-1].model_extra["agentkit"]
    assert ak["stream"] == "sse-1" and ak["decision"] == "response"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == ak["prefilled_tokens"]


def test_a_stream_reuses_its_cache_across_requests(client, serve_process, media) -> None:
    """The client re-sends the whole conversation each time (as OpenAI clients do); the server appends only
    the new frame: tokens prefilled per request stay flat while the stream's cache grows."""
    messages = [SYSTEM]
    prefilled, cache = [], []
    for i in range(6):
        messages.append(media.message(10 + i, float(i)))
        r = client.chat.completions.create(
            model="ckpt", messages=messages, extra_body={"agentkit": {"stream": "reuse"}}
        )
        ak = r.model_extra["agentkit"]
        assert ak["reset"] is False and ak["new_messages"] == (2 if i == 0 else 1)
        assert r.usage.prompt_tokens == ak["prefilled_tokens"]
        prefilled.append(ak["prefilled_tokens"])
        cache.append(ak["cache_tokens"])
        messages.append({"role": "assistant", "content": r.choices[0].message.content})
    assert prefilled[0] > prefilled[1]  # the first request prefilled the system prompt too
    assert max(prefilled[1:]) - min(prefilled[1:]) <= 4  # flat (only the "<Xs-Ys>" digits vary)
    assert all(b > a for a, b in itertools.pairwise(cache))  # ...while the cache grows
    assert cache[-1] > 2 * prefilled[-1] * 2  # far more in the cache than one request prefills
    info = httpx.get(f"{serve_process.url}/streams/reuse").json()
    assert info["requests"] == 6 and info["turns"] == 6 and info["cache_tokens"] >= cache[-1]

    # a compacted transcript (system + the last two turns + a new one) still appends only the new turn
    tail = messages[-4:]
    r = client.chat.completions.create(
        model="ckpt", messages=[SYSTEM, *tail, media.message(99, 6.0)], extra_body={"agentkit": {"stream": "reuse"}}
    )
    ak = r.model_extra["agentkit"]
    assert ak["reset"] is False and ak["new_messages"] == 1 and ak["prefilled_tokens"] <= max(prefilled[1:]) + 4
    # a different conversation on the same stream restarts it (everything is prefilled again)
    other = {"role": "system", "content": "You watch the door."}
    r = client.chat.completions.create(
        model="ckpt", messages=[other, media.message(5, 0.0)], extra_body={"agentkit": {"stream": "reuse"}}
    )
    ak = r.model_extra["agentkit"]
    assert ak["reset"] is True and ak["cache_tokens"] < cache[1]


def test_websocket_push_streaming(serve_process, media) -> None:
    websockets = pytest.importorskip("websockets")

    async def go() -> list[dict]:
        uri = serve_process.url.replace("http://", "ws://") + "/streams/ws-cam/ws?tokens=true"
        got: list[dict] = []
        async with websockets.connect(uri, max_size=2**24) as ws:
            ready = json.loads(await ws.recv())
            assert ready["type"] == "ready" and ready["stream"] == "ws-cam" and ready["created"] is True
            await ws.send("not json")
            err = json.loads(await ws.recv())
            assert err["type"] == "error" and err["code"] == "invalid_json"  # the connection stays open
            await ws.send(json.dumps({"type": "instruct", "text": "Tell me when the cup moves."}))
            for i in range(3):  # binary JPEG frames, then a JSON frame with its own time
                await ws.send(base64.b64decode(media.url(30 + i).split(",", 1)[1]))
            await ws.send(json.dumps({"type": "frame", "image": media.url(40), "pts": 7.0}))
            decisions = 0
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
                got.append(msg)
                if msg["type"] == "decision":
                    decisions += 1
                    if decisions + msg["dropped"] >= 4:
                        break
        return got

    got = asyncio.run(go())
    decisions = [m for m in got if m["type"] == "decision"]
    assert decisions and all(m["stream"] == "ws-cam" and m["decision"] == "response" for m in decisions)
    assert decisions[-1]["pts"] == 7.0 and decisions[-1]["cache_tokens"] > decisions[0]["prefilled_tokens"]
    assert decisions[0]["questions"] == ["Tell me when the cup moves."]
    assert any(m["type"] == "token" for m in got)  # Response text streamed as decoded
    assert decisions[-1]["dropped"] + len(decisions) == 4  # latest-wins: every frame decided or counted


def test_bad_input_is_a_clear_4xx_and_the_server_keeps_serving(client, serve_process, media) -> None:
    url = serve_process.url
    hi = [{"role": "user", "content": "hi"}]
    bad_png = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]

    def post(body: dict | bytes) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.post(f"{url}/chat/completions", content=body, headers={"content-type": "application/json"})
        return httpx.post(f"{url}/chat/completions", json=body)

    cases = [
        (post(b'{"messages": ['), 400, "invalid_json"),
        (post({"messages": []}), 400, "invalid_request"),
        (post({"messages": hi, "agentkit": {"stream": "nope", "create": False}}), 404, "stream_not_found"),
        (post({"messages": hi, "agentkit": {"stream": "bad name!"}}), 400, "invalid_stream_id"),
        (post({"messages": bad_png}), 400, "invalid_image"),
        (httpx.get(f"{url}/streams/nope"), 404, "stream_not_found"),
        (httpx.delete(f"{url}/streams/nope"), 404, "stream_not_found"),
        (httpx.get(f"{url}/no-such-endpoint"), 404, "not_found"),
    ]
    for resp, status, code in cases:
        assert resp.status_code == status, (code, resp.text)
        err = resp.json()["error"]
        assert err["code"] == code and err["message"] and err["type"], resp.text
    with pytest.raises(openai.BadRequestError) as e:  # what a client sees
        client.chat.completions.create(model="ckpt", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGk="}}]}])  # fmt: skip
    assert e.value.body["code"] == "invalid_image"
    assert serve_process.alive()
    r = client.chat.completions.create(model="ckpt", messages=[media.message(3, 1.0)])
    assert r.model_extra["agentkit"]["decision"] == "response"
    metrics = httpx.get(f"{url}/metrics").json()
    assert metrics["counters"]["http_400"] >= 4 and metrics["counters"]["http_404"] >= 4
