"""The HTTP policy against a loopback OpenAI-compatible endpoint (a unit test of the client side)."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

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
                self._send(200, {"data": [{"id": "tiny"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.headers.get("Authorization"), body))
                reply = outer.replies.pop(0) if outer.replies else "SILENCE"
                if reply == 500:
                    self._send(500, {"error": "boom"})
                else:
                    self._send(200, {"choices": [{"message": {"role": "assistant", "content": reply}}]})

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
def test_http_policy_sends_frames_and_parses_states(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    p = HTTPPolicy(model="tiny", base_url=server.url, min_interval_s=1.0, history_frames=2, coord_format="ui_tars_v1")
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
    auth, body = server.requests[1]
    assert auth == "Bearer sk-test" and body["model"] == "tiny"
    content = body["messages"][1]["content"]
    images = [c["image_url"]["url"] for c in content if c["type"] == "image_url"]
    assert len(images) == 2  # history_frames: frame 1 (skipped, still kept) and frame 2
    jpeg = base64.b64decode(images[-1].split(",", 1)[1])
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (240, 320, 3)
    assert any("Where is the cat?" in c.get("text", "") for c in content)


def test_http_policy_unreachable_server_and_bad_config():
    with pytest.raises(PolicyError, match="cannot reach"):
        HTTPPolicy(base_url="http://127.0.0.1:9/v1", timeout_s=2)
    with pytest.raises(ConfigError, match="history_frames=0"):
        HTTPPolicy(history_frames=0, check_server=False)


@pytest.mark.parametrize("server", [["RESPONSE: Bars and a white square."] * 3], indirect=True)
def test_narrate_cli_with_http_policy(server, tmp_path):
    import subprocess
    import sys

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
