"""The live server, for real (uvicorn, WebSocket clients in other processes): a slow or vanishing client never
slows or stops the run; frames it could not take are dropped and counted; several streams side by side."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agentkit.apps.dashboard import LiveViews
from agentkit.loop import LoopConfig, StreamLoop
from agentkit.sources import Source
from agentkit.tooling import ToolBox
from agentkit.types import Frame

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
websockets = pytest.importorskip("websockets")


class NoiseSource(Source):
    """Live frames of noise at ``fps`` (JPEGs of noise are big: the clients' sockets fill up fast)."""

    lossless = False

    def __init__(self, seconds: float, fps: float = 10.0, size: tuple[int, int] = (640, 480)) -> None:
        self.n, self.fps, self.size = int(seconds * fps), fps, size
        self._rng = np.random.default_rng(0)
        self._images = [self._rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8) for _ in range(4)]

    async def frames(self):  # type: ignore[override]
        t0 = time.monotonic()
        for seq in range(self.n):
            await asyncio.sleep(max(0.0, t0 + seq / self.fps - time.monotonic()))
            yield Frame(self._images[seq % 4], time.monotonic(), seq / self.fps, seq, "noise")


def start_client(url: str, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    ws = url.replace("http://", "ws://") + "ws"
    cmd = [sys.executable, "-m", "agentkit.apps.dashboard.client", ws, "--json", str(out), *extra]
    return subprocess.Popen(cmd, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def wait_clients(views: LiveViews, n: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rt = views.server.runtime if views.server else None
        if rt is not None and len(rt.clients) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{n} dashboard clients did not connect")


def finish(proc: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    proc.wait(timeout=30)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def run_loops(streams: dict[str, tuple[Source, list[Any]]], policy_factory: Any, tool: Any) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        loops = {
            name: StreamLoop(src, policy_factory(), toolbox=ToolBox([tool()]), sinks=sinks, config=LoopConfig())
            for name, (src, sinks) in streams.items()
        }
        summaries = await asyncio.gather(*(loop.run() for loop in loops.values()))
        return {name: s.metrics for name, s in zip(loops, summaries, strict=True)}

    return asyncio.run(go())


def test_a_slow_client_and_a_dropped_socket_never_slow_or_stop_the_run(tmp_path, scripted_policy, note_tool):
    seconds = 6.0
    with LiveViews(":0", max_fps=15, announce=lambda _t: None) as views:
        assert views.url is not None
        sinks = views.sinks("noise")
        fast = start_client(views.url, tmp_path / "fast.json")
        # slow: sleeps 300 ms per message with a 4 KiB receive buffer, so the server's writes back up at once
        slow = start_client(views.url, tmp_path / "slow.json", "--delay-ms", "300", "--rcvbuf", "4096")
        wait_clients(views, 2)

        # a third client that vanishes mid-run without a close frame (TCP reset)
        ws_url = views.url.replace("http://", "ws://") + "ws"
        vanished = {}

        def vanish() -> None:
            from websockets.sync.client import connect

            with connect(ws_url, compression=None) as conn:
                conn.recv(timeout=10)
                time.sleep(2.0)
                conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.socket.close()
                vanished["at"] = time.monotonic()

        t = threading.Thread(target=vanish)
        t.start()
        metrics = run_loops({"noise": (NoiseSource(seconds), sinks)}, scripted_policy, note_tool)["noise"]
        t.join()
        rt = views.server.runtime
        assert urllib.request.urlopen(views.url + "healthz", timeout=5).status == 200  # still serving
    fast_stats, slow_stats = finish(fast, tmp_path / "fast.json"), finish(slow, tmp_path / "slow.json")

    n = int(seconds * 10)
    # the run: every frame processed, none dropped, latency of a trivial policy (no waiting on the dashboard)
    assert metrics["processed"] == n and metrics["dropped"] == 0, metrics
    assert metrics["latency_ms"]["p95"] < 100, metrics["latency_ms"]
    assert "at" in vanished
    counters = rt.views["noise"].counters
    dash = counters["dashboard"]
    # the fast client got every decision and action and the end of the run
    assert fast_stats["decisions"] == n and fast_stats["actions"] == counters["actions"] > 0 and fast_stats["bye"]
    # the slow one got far fewer frames: the ones made while it was busy were skipped and counted
    assert slow_stats["frames"] < dash["frames_encoded"], (slow_stats, dash)
    assert slow_stats["frame_id_gaps"] > 0 and dash["client_frames_skipped"] >= slow_stats["frame_id_gaps"]
    # decisions still arrive, batched (the last ones may miss it: the server closes 2 s after the run ends)
    assert 0 < slow_stats["decisions"] <= n and slow_stats["updates"] < fast_stats["updates"]
    assert rt.clients_total >= 3


def test_several_streams_side_by_side(tmp_path, scripted_policy, note_tool):
    with LiveViews(":0", announce=lambda _t: None) as views:
        assert views.url is not None
        left, right = views.sinks("left"), views.sinks("right")
        client = start_client(views.url, tmp_path / "c.json")
        wait_clients(views, 1)
        metrics = run_loops(
            {"left": (NoiseSource(2.0, size=(160, 120)), left), "right": (NoiseSource(3.0, size=(160, 120)), right)},
            scripted_policy,
            note_tool,
        )
        info = json.load(urllib.request.urlopen(views.url + "api/info", timeout=5))
        state = json.load(urllib.request.urlopen(views.url + "api/streams/right/state", timeout=5))
        frame = urllib.request.urlopen(views.url + "api/streams/left/frame.jpg", timeout=5)
        assert frame.headers["Content-Type"] == "image/jpeg"
        assert json.loads(frame.headers["X-Frame"])["stream"] == "left"
    stats = finish(client, tmp_path / "c.json")
    assert info["streams"] == ["left", "right"]
    assert sorted(stats["streams"]) == ["left", "right"]
    assert stats["decisions"] == metrics["left"]["processed"] + metrics["right"]["processed"] == 50
    assert state["counters"]["processed"] == 30 and state["status"] == "ended"


def test_other_hosts_and_cross_site_pages_are_refused():
    with LiveViews(":0", announce=lambda _t: None) as views:
        assert views.url is not None
        port = views.url.rsplit(":", 1)[1].strip("/")
        req = urllib.request.Request(views.url + "api/info", headers={"Host": f"attacker.example:{port}"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == 403  # DNS rebinding: a page on another name reaching 127.0.0.1
        from websockets.sync.client import connect

        ws_url = views.url.replace("http://", "ws://") + "ws"
        with pytest.raises(websockets.exceptions.InvalidStatus):
            connect(ws_url, origin="http://attacker.example")  # type: ignore[arg-type]
        with connect(ws_url, origin=views.url.rstrip("/")) as ws:  # type: ignore[arg-type]
            assert json.loads(ws.recv(timeout=5))["type"] == "hello"


def test_a_busy_port_is_one_clear_error():
    from agentkit.errors import ConfigError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ConfigError, match=r"cannot serve the dashboard.*:0 for any free port"):
            LiveViews(f"127.0.0.1:{port}").__enter__()
