"""The HTTP policy: a fast loopback fake of an OpenAI-compatible server (request shape, the append-only
transcript, compaction, states, errors), and the real thing: ``agentkit serve`` in a subprocess, whose
per-stream cache the policy's transcript keeps (tokens prefilled per call stay flat)."""

from __future__ import annotations

import base64
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

pytest.importorskip("openai")

from agentkit.errors import ConfigError, PolicyError
from agentkit.policies.http import HTTPPolicy, split_state
from agentkit.types import DecisionKind, Frame


class Server:
    """Answers /v1/models and /v1/chat/completions with scripted replies; keeps the requests."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "tiny", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.headers.get("Authorization"), body))
                reply = outer.replies.pop(0) if outer.replies else "SILENCE"
                if isinstance(reply, int):
                    self._send(reply, {"error": {"message": "boom", "code": "x"}})
                else:
                    msg = {"role": "assistant", "content": reply}
                    self._send(200, {"id": "c", "object": "chat.completion", "created": 0, "model": "tiny",
                                     "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]})  # fmt: skip

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(request):
    s = Server(request.param if hasattr(request, "param") else [])
    yield s
    s.close()


def frame(seq, pts):
    img = np.zeros((240, 320, 3), np.uint8)
    img[:, : 10 + seq * 20] = (255, 0, 0)
    return Frame(img, 0.0, pts, seq)


def images(message):
    return [c["image_url"]["url"] for c in message["content"] if c["type"] == "image_url"]


@pytest.mark.parametrize(
    "text,kind,rest",
    [
        ("RESPONSE: A person arrived.", DecisionKind.RESPONSE, "A person arrived."),
        ("</Response> hi", DecisionKind.RESPONSE, "hi"),
        ("  standby.", DecisionKind.STANDBY, ""),
        ("Silence", DecisionKind.SILENCE, ""),
        ("I think so", None, "I think so"),
    ],
)
def test_split_state(text, kind, rest):
    assert split_state(text) == (kind, rest)


@pytest.mark.parametrize(
    "server", [["STANDBY", "RESPONSE: The cat is at <point>500 250</point>.", 500, "maybe?"]], indirect=True
)
def test_http_policy_sends_an_append_only_transcript_and_parses_states(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    p = HTTPPolicy(
        model="tiny", base_url=server.url, min_interval_s=1.0, coord_format="ui_tars_v1", instruction="Cats."
    )
    p.instruct("Where is the cat?", 0.0)
    d0 = p.step(frame(0, 0.0))
    d_skip = p.step(frame(1, 0.5))  # within min_interval_s: no request
    d1 = p.step(frame(2, 1.0))
    d2 = p.step(frame(3, 2.0))
    d3 = p.step(frame(4, 3.0))
    assert d0.kind is DecisionKind.STANDBY
    assert d_skip.kind is DecisionKind.SILENCE and d_skip.meta == {"skipped": True}
    assert d1.kind is DecisionKind.RESPONSE and d1.text.startswith("The cat is at")
    assert d1.tool_calls or d1.points  # grounded output converted to normalized coordinates
    assert d2.kind is DecisionKind.SILENCE and "HTTP 500" in d2.errors[0]
    assert d3.kind is DecisionKind.SILENCE and "no SILENCE/STANDBY/RESPONSE" in d3.errors[0]
    assert len(server.requests) == 4
    auth, first = server.requests[0]
    assert auth == "Bearer sk-test" and first["model"] == "tiny"
    assert first["messages"][0] == {"role": "system", "content": p.config.prompt + "\n\nTask: Cats."}
    assert first["agentkit"] == {"stream": p.stream_name, "instruction": "", "reset": True}
    assert server.requests[1][1]["agentkit"] == {"stream": p.stream_name, "instruction": ""}
    # append-only: each request starts with the previous one (plus its reply); one new turn at the end
    pairs = list(itertools.pairwise(server.requests))
    for ((_, a), (_, b)), reply in zip(pairs, ["STANDBY", "RESPONSE", None], strict=True):
        n = len(a["messages"])
        assert b["messages"][:n] == a["messages"]
        extra = b["messages"][n:]
        if reply is None:  # the 500: its turn stays (the server may have seen it), no reply to add
            assert len(extra) == 1 and extra[0]["role"] == "user"
        else:
            assert extra[0]["role"] == "assistant"
            assert extra[0]["content"].startswith(reply) and extra[1]["role"] == "user" and len(extra) == 2
    new_turn = server.requests[1][1]["messages"][-1]
    assert len(images(new_turn)) == 1 and new_turn["content"][0] == {"type": "text", "text": "t=1.0s"}
    jpeg = base64.b64decode(images(new_turn)[0].split(",", 1)[1])
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
    first_turn = first["messages"][1]
    assert any("Where is the cat?" in c.get("text", "") for c in first_turn["content"])
    assert not any("Where is the cat?" in c.get("text", "") for c in new_turn["content"])  # asked once


@pytest.mark.parametrize("server", [["SILENCE", 400, "SILENCE", "STANDBY", "SILENCE", "SILENCE"]], indirect=True)
def test_http_policy_compacts_and_drops_refused_turns(server):
    p = HTTPPolicy(base_url=server.url, min_interval_s=0, max_turns=3, keep_turns=1)
    ds = [p.step(frame(i, float(i))) for i in range(6)]
    assert "HTTP 400" in ds[1].errors[0]
    msgs = [b["messages"] for _, b in server.requests]
    # the refused turn is dropped; with more than max_turns=3 turns the transcript is cut to keep_turns=1
    assert [sum(m["role"] == "user" for m in ms) for ms in msgs] == [1, 2, 2, 3, 4, 2]
    assert ds[5].meta.get("compacted") is True and p.compactions == 1 and "compacted" not in ds[4].meta
    assert msgs[5][0]["role"] == "system" and msgs[5][1]["content"][0]["text"] == "t=4.0s"  # the last kept turn
    assert msgs[5][1:3] == [*msgs[4][-1:], {"role": "assistant", "content": "SILENCE"}]
    assert p.transcript[: len(msgs[5])] == msgs[5]  # append-only again after it


def test_http_policy_unreachable_server_and_bad_config():
    with pytest.raises(PolicyError, match="cannot reach"):
        HTTPPolicy(base_url="http://127.0.0.1:9/v1", timeout_s=2)
    with pytest.raises(ConfigError, match="frames_per_turn=0"):
        HTTPPolicy(frames_per_turn=0, check_server=False)
    with pytest.raises(ConfigError, match="keep_turns"):
        HTTPPolicy(max_turns=4, keep_turns=4, check_server=False)


@pytest.mark.parametrize("server", [["RESPONSE: Bars and a white square."] * 3], indirect=True)
def test_narrate_cli_with_http_policy(server, tmp_path):
    from agentkit.tools.narration.subtitles import read_cues

    out = tmp_path / "o"
    r = subprocess.run(
        [sys.executable, "-m", "agentkit.apps.cli", "narrate", "test-pattern", "--policy", "http", "--out", str(out),
         "-a", f"base_url={server.url}", "-a", "min_interval_s=4", "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    cues = read_cues(out / "narration.srt")
    assert [c[0] for c in cues] == [0.0, 4.0, 8.0] and cues[0][2] == "Bars and a white square."
    assert len(server.requests) == 3


# -- against the real server ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def agentkit_serve(tiny_checkpoint):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "agentkit.apps.cli", "serve", "--model", str(tiny_checkpoint("qwen2_vl")),
           "--port", str(port), "--threads", "1", "-a", "response_threshold=0.0", "-a", "max_new_tokens=4"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            pytest.fail(f"agentkit serve exited: {proc.stdout.read()[-2000:] if proc.stdout else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("agentkit serve did not start")
        time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=15)


@pytest.mark.vlm
def test_http_policy_against_agentkit_serve_keeps_the_stream_cache(agentkit_serve):
    import httpx

    p = HTTPPolicy(base_url=agentkit_serve, model="ckpt", min_interval_s=0, max_turns=4, keep_turns=2)
    p.instruct("What moves?", 0.0)
    ds = [p.step(frame(i, float(i))) for i in range(7)]
    transport = [e for d in ds for e in d.errors if "HTTP" in e or "reach" in e or "structured" in e]
    assert not transport  # (a random model's text may have markup errors: recorded by the server, passed on)
    assert all(d.kind is DecisionKind.RESPONSE and d.text for d in ds)  # the structured decision, used as is
    server = [d.meta["server"] for d in ds]
    prefilled = [s["prefilled_tokens"] for s in server]
    assert prefilled[0] > max(prefilled[1:])  # the system prompt, once
    assert max(prefilled[1:]) - min(prefilled[1:]) <= 4  # flat, through the compaction at call 5
    assert any(d.meta.get("compacted") for d in ds) and p.compactions >= 1
    assert [s["cache_tokens"] for s in server] == sorted(s["cache_tokens"] for s in server)  # the cache grows
    assert all(d.meta["prompt_tokens"] == s["prefilled_tokens"] for d, s in zip(ds, server, strict=True))
    info = httpx.get(f"{agentkit_serve}/streams/{p.stream_name}").json()
    assert info["requests"] == 7 and info["turns"] == 7
    p.reset()  # a new stream on the same name: the server restarts it
    d = p.step(frame(0, 0.0))
    assert d.meta["server"]["cache_tokens"] < server[1]["cache_tokens"]
