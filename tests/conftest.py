"""Fixtures shared by every test area: sample videos and cut copies, a MuJoCo world, a private Mosquitto broker."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

REPO = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = REPO.parent / "shared" / "data" / "videos"


def find_video(name: str) -> Path | None:
    for folder in (REPO / "samples", SHARED_VIDEOS):
        if (folder / name).exists():
            return folder / name
    return None


@pytest.fixture(scope="session")
def people_video() -> Path:
    path = find_video("one-by-one-person-detection.mp4")
    if path is None:
        pytest.skip("one-by-one-person-detection.mp4 not found in samples/ or ../shared/data/videos")
    return path


def cut_clip(src: Path, dst: Path, start_s: float, end_s: float, max_width: int | None = None) -> Path:
    """Re-encode ``[start_s, end_s]`` of ``src`` into ``dst`` with real decoding and encoding."""
    import asyncio

    from agentkit.envs.media.video import VideoSource
    from agentkit.video_io import Mp4Writer

    async def go() -> None:
        src_v = VideoSource(str(src), start_s=start_s, end_s=end_s, max_width=max_width)
        await src_v.open()
        w = Mp4Writer(dst, fps=src_v.fps or 10)
        async for f in src_v.frames():
            w.write(f.image, f.pts - start_s)
        w.close()
        await src_v.close()

    asyncio.run(go())
    return dst


@pytest.fixture(scope="session")
def short_clip(people_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seconds 0-20 of the people video (the first arrival happens in it)."""
    return cut_clip(people_video, tmp_path_factory.mktemp("clips") / "short.mp4", 0.0, 20.0)


@pytest.fixture(scope="session")
def tiny_clip(people_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seconds, downscaled: for source and sink tests that only need real frames."""
    return cut_clip(people_video, tmp_path_factory.mktemp("clips") / "tiny.mp4", 0.0, 3.0, max_width=192)


@pytest.fixture(scope="module")
def sim():
    pytest.importorskip("gymnasium_robotics")
    pytest.importorskip("mujoco")
    from agentkit.envs.robot.fetch import FetchSim

    s = FetchSim(320, 240)
    yield s
    s.close()


@pytest.fixture()
def robot(sim):
    from agentkit.envs.robot.arm import RobotArm

    r = RobotArm(sim)
    r.reset(seed=0)
    return r


def _mosquitto() -> str | None:
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if cand and Path(cand).exists():
            return cand
    return None


@pytest.fixture()
def broker():
    if _mosquitto() is None:
        pytest.skip("mosquitto binary not installed (apt-get install mosquitto)")
    pytest.importorskip("aiomqtt")
    from agentkit.transport.mqtt.broker import MosquittoBroker

    with MosquittoBroker() as b:
        yield b


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory):
    """``tiny_checkpoint(arch)``: a random-weight checkpoint with an offline tokenizer, built once per session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from agentkit.policies.vlm.build import build_tiny

    cache: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in cache:
            cache[arch] = build_tiny(arch, tmp_path_factory.mktemp(arch) / "ckpt")
        return cache[arch]

    return get


@pytest.fixture(scope="session")
def tiny_qwen(tiny_checkpoint) -> Path:
    """A tiny Qwen2-VL checkpoint (the architecture the GUI and robot VLM tests drive)."""
    return tiny_checkpoint("qwen2_vl")


# -- MQTT: helpers for a node and an agent on a real broker, raw clients, a private TLS CA ------------------
class MqttKit:
    """Async helpers shared by the MQTT test files (a fixture, since test modules are not a package)."""

    async def node_and_agent(
        self, broker: Any, robot: Any, *, name: str = "r1", node_auth=None, agent_auth=None, **node_kw: Any
    ):
        """A :class:`RobotNode` serving ``robot`` and a connected :class:`MqttSource` + remote toolbox."""
        from agentkit.tools.robot import remote_robot_toolbox, robot_toolbox
        from agentkit.transport.mqtt.node import RobotNode
        from agentkit.transport.mqtt.source import MqttSource
        from agentkit.transport.mqtt.wire import parse_spec

        node = RobotNode(parse_spec(f"{broker.url}/{name}"), robot, robot_toolbox(robot), auth=node_auth, **node_kw)
        task = asyncio.create_task(node.run())
        source = MqttSource(f"{broker.url}/{name}", max_age_s=5.0, auth=agent_auth)
        await source.open()
        await source.link.wait_online(15)  # the node has subscribed: nothing sent from now on is lost
        return node, task, source, remote_robot_toolbox(source.link, timeout_s=20)

    async def close(self, node: Any, task: asyncio.Task, source: Any) -> None:
        node.stop()
        try:
            await task
        finally:
            await source.close()

    def client(self, broker: Any, **kw: Any):
        """A raw client (anonymous unless ``username``/``password``), Nagle off like agentkit's own clients."""
        import aiomqtt

        from agentkit.transport.mqtt.auth import NODELAY

        return aiomqtt.Client("127.0.0.1", broker.port, timeout=5, socket_options=NODELAY, **kw)

    async def ask(
        self, broker: Any, topic: str, payload: bytes, msg_id: str, *, timeout_s: float = 10.0, **kw: Any
    ) -> dict | None:
        """Publish ``payload`` on ``topic`` and return the node's result for ``msg_id`` (``None``: no answer)."""
        name = topic.split("/")[1]
        async with self.client(broker, **kw) as c:
            await c.subscribe(f"agentkit/{name}/result", qos=1)
            await c.publish(topic, payload, qos=1)
            try:
                async with asyncio.timeout(timeout_s):
                    async for m in c.messages:
                        reply = json.loads(m.payload)
                        if reply.get("id") == msg_id:
                            return reply
            except TimeoutError:
                return None
        return None

    async def retained_status(self, broker: Any, name: str = "r1", **kw: Any) -> dict | None:
        async with self.client(broker, **kw) as c:
            await c.subscribe(f"agentkit/{name}/status", qos=1)
            try:
                async with asyncio.timeout(2):
                    async for m in c.messages:
                        return json.loads(m.payload)
            except TimeoutError:
                return None
        return None

    async def wait_for(self, predicate, timeout_s: float = 10.0, what: str = "condition") -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            await asyncio.sleep(0.05)

    async def fresh_frame(self, source: Any, session: str, timeout_s: float = 10.0):
        """The next frame of ``session`` that arrives from now on."""
        asked = time.monotonic()
        async with asyncio.timeout(timeout_s):
            while True:
                frame = await source.link.next_frame()
                if frame.t >= asked and frame.meta.get("session") == session:
                    return frame


@pytest.fixture()
def mqtt() -> MqttKit:
    return MqttKit()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A private CA and a server certificate for 127.0.0.1, made with the openssl binary."""
    from shutil import which

    if which("openssl") is None:
        pytest.skip("openssl binary not installed")
    from agentkit.transport.mqtt.broker import TlsFiles

    d = tmp_path_factory.mktemp("tls")
    d.chmod(0o755)  # mosquitto started as root reads the key as user mosquitto
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "2", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=test CA", cwd=d)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d,
    )  # fmt: skip
    for f in d.iterdir():
        f.chmod(0o644)
    return TlsFiles(ca=d / "ca.pem", cert=d / "server.pem", key=d / "server.key")
