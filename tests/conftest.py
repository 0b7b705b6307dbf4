"""Fixtures shared by every test area: sample videos and cut copies, a MuJoCo world, a private Mosquitto broker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
