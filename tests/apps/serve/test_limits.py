"""``agentkit serve``'s limits and security on a real server: API key, too many streams, oversized images
and bodies, the KV-cache budget evicting the idle oldest stream, refusing a public bind without a key."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import sys

import httpx
import numpy as np
import pytest

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.vlm

KEY = "test-secret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def limited(tiny_checkpoint, server_process):
    srv = server_process(
        tiny_checkpoint("qwen2_vl"),
        "--max-streams", "2", "--max-cache-mb", "0.15", "--max-image-mb", "0.01", "--max-image-pixels", "100000",
        "--max-request-mb", "0.2", "-a", "response_threshold=1.0",
        api_key=KEY,
    )  # fmt: skip
    yield srv
    srv.close()


@pytest.fixture()
def client(limited):
    c = openai.OpenAI(base_url=limited.url, api_key=KEY, max_retries=0, timeout=60)
    yield c
    for s in httpx.get(f"{limited.url}/streams", headers=AUTH).json()["data"]:  # every test starts empty
        httpx.delete(f"{limited.url}/streams/{s['stream']}", headers=AUTH)
    c.close()


def _png(w: int, h: int) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (w, h), (40, 90, 160)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_api_key_is_required_on_every_endpoint(limited, client, media) -> None:
    for path in ("/models", "/streams", "/metrics"):
        r = httpx.get(limited.url + path)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(limited.url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(limited.url + path, headers=AUTH).status_code == 200
    wrong = openai.OpenAI(base_url=limited.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="m", messages=[media.message(1, 0.0)])
    websockets = pytest.importorskip("websockets")

    async def ws(uri: str) -> str:
        async with websockets.connect(uri) as conn:
            return await conn.recv()

    uri = limited.url.replace("http://", "ws://") + "/streams/w/ws"
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus):
        asyncio.run(ws(uri))
    assert '"ready"' in asyncio.run(ws(uri + f"?api_key={KEY}"))
    r = client.chat.completions.create(model="m", messages=[media.message(1, 0.0)])
    assert r.model_extra["agentkit"]["decision"] in ("silence", "standby")


def test_too_many_streams_is_429_until_one_is_deleted(limited, client, media) -> None:
    for name in ("a", "b"):
        client.chat.completions.create(
            model="m", messages=[media.message(1, 0.0)], extra_body={"agentkit": {"stream": name}}
        )
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(
            model="m", messages=[media.message(2, 0.0)], extra_body={"agentkit": {"stream": "c"}}
        )
    assert e.value.status_code == 429 and e.value.body["code"] == "too_many_streams"
    assert httpx.delete(f"{limited.url}/streams/a", headers=AUTH).json() == {"deleted": "a"}
    r = client.chat.completions.create(
        model="m", messages=[media.message(2, 0.0)], extra_body={"agentkit": {"stream": "c"}}
    )
    assert r.model_extra["agentkit"]["stream"] == "c"


def test_oversized_images_and_bodies_are_413(limited, client, media) -> None:
    rng = np.random.default_rng(0)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=95)
    big = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()  # > 10 KB
    for url, what in ((big, "bytes"), (_png(400, 300), "pixels")):
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
            )
        assert e.value.status_code == 413 and e.value.body["code"] == "image_too_large", what
    r = httpx.post(
        f"{limited.url}/chat/completions", headers=AUTH, json={"messages": [{"role": "user", "content": "x" * 250_000}]}
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert httpx.get(f"{limited.url}/streams", headers=AUTH).json()["data"] == []  # nothing was created
    r = client.chat.completions.create(model="m", messages=[media.message(3, 0.0)])  # still serving
    assert r.model_extra["agentkit"]["cache_tokens"] > 0


def test_cache_budget_evicts_the_idle_oldest_stream_to_its_sink(limited, client, media) -> None:
    def feed(name: str, n: int) -> list[dict]:
        msgs: list[dict] = [{"role": "system", "content": f"camera {name}"}]
        out = []
        for i in range(n):
            msgs.append(media.message(i, float(i)))
            r = client.chat.completions.create(model="m", messages=msgs, extra_body={"agentkit": {"stream": name}})
            msgs.append({"role": "assistant", "content": r.choices[0].message.content})
            out.append(r.model_extra["agentkit"])
        return out

    first = feed("old", 4)
    sink = first[0]["prefilled_tokens"] - first[1]["prefilled_tokens"]  # the prompt (a turn is ~ the same)
    assert first[-1]["cache_bytes"] < 0.15 * 2**20  # one stream alone fits the budget
    feed("new", 4)  # together they do not: "old" (idle, least recently used) goes back to its sink
    old = httpx.get(f"{limited.url}/streams/old", headers=AUTH).json()
    new = httpx.get(f"{limited.url}/streams/new", headers=AUTH).json()
    assert old["budget_evictions"] >= 1 and old["cache_tokens"] < first[-1]["cache_tokens"] // 2
    assert new["budget_evictions"] == 0 and new["cache_bytes"] + old["cache_bytes"] <= 0.15 * 2**20
    assert 0 < old["cache_tokens"] <= sink + 8  # the system prompt + instruction remain
    assert httpx.get(f"{limited.url}/metrics", headers=AUTH).json()["budget_evictions"] >= 1
    # the evicted stream goes on: its next frame is appended after the sink
    r = client.chat.completions.create(
        model="m", messages=[{"role": "system", "content": "camera old"}, media.message(9, 9.0)],
        extra_body={"agentkit": {"stream": "old", "mode": "append"}},
    )  # fmt: skip
    assert not r.model_extra["agentkit"]["errors"]


def test_public_bind_without_a_key_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AGENTKIT_API_KEY"}
    r = subprocess.run(
        [sys.executable, "-m", "agentkit.apps.cli", "serve", "--arch", "qwen2_vl", "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "error: refusing to listen on 0.0.0.0 without an API key: give --api-key (or AGENTKIT_API_KEY), "
        "or bind to 127.0.0.1"
    ]
