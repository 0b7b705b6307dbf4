"""Fixtures for the robot tests: one real MuJoCo simulation per module and a private Mosquitto broker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="module")
def sim():
    pytest.importorskip("gymnasium_robotics")
    pytest.importorskip("mujoco")
    from agentkit.envs.fetch import FetchSim

    s = FetchSim(320, 240)
    yield s
    s.close()


@pytest.fixture()
def robot(sim):
    from agentkit.envs.fetch_robot import FetchRobot

    r = FetchRobot(sim)
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
    from agentkit.envs.mqtt_broker import MosquittoBroker

    with MosquittoBroker() as b:
        yield b
