"""A real ``agentkit serve`` subprocess (uvicorn on a free loopback port, a tiny checkpoint) for the tests."""

from __future__ import annotations

import base64
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")
pytest.importorskip("httpx")
pytest.importorskip("torch")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``agentkit serve`` in a subprocess; ``url`` is its ``/v1`` root."""

    def __init__(self, checkpoint: Path, *args: str, api_key: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.api_key = api_key
        cmd = [sys.executable, "-m", "agentkit.apps.cli", "serve", "--model", str(checkpoint), "--port", str(self.port)]
        cmd += ["--threads", "1", *args]
        if api_key:
            cmd += ["--api-key", api_key]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        self.log = io.StringIO()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self._wait_ready(90.0)

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read() if self.proc.stdout else ""
                raise RuntimeError(f"agentkit serve exited with {self.proc.returncode}: {out[-2000:]}")
            try:
                if httpx.get(self.url.removesuffix("/v1") + "/health", headers=headers, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.close()
        raise RuntimeError("agentkit serve did not become ready")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def serve_process(tiny_checkpoint) -> Iterator[ServerProcess]:
    """The functional server: no key, every frame answered with a short Response (so replies have text)."""
    srv = ServerProcess(tiny_checkpoint("qwen2_vl"), "-a", "response_threshold=0.0", "-a", "max_new_tokens=6")
    yield srv
    srv.close()


def jpeg_url(seed: int, size: tuple[int, int] = (48, 64)) -> str:
    """A random JPEG frame as a data URL."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def frame_message(seed: int, t: float, text: str | None = None) -> dict:
    content: list[dict] = [
        {"type": "text", "text": f"t={t:.1f}s"},
        {"type": "image_url", "image_url": {"url": jpeg_url(seed)}},
    ]
    if text:
        content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


class Media:
    """Frames for requests (the tests get it as the ``media`` fixture)."""

    url = staticmethod(jpeg_url)
    message = staticmethod(frame_message)


@pytest.fixture(scope="session")
def media() -> type[Media]:
    return Media


@pytest.fixture(scope="session")
def server_process() -> type[ServerProcess]:
    """The class that starts ``agentkit serve`` (for modules that need a server with other options)."""
    return ServerProcess
