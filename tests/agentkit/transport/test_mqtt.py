"""The MQTT bridge against a real Mosquitto on loopback: wire format, round trips, bad input, restarts."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agentkit.types import ToolCall

pytestmark = [pytest.mark.mqtt]
REPO = Path(__file__).resolve().parents[3]


# -- wire format (no broker) ------------------------------------------------------------------------------
def test_wire_rejects_malformed_payloads():
    from agentkit.transport.mqtt.wire import loads, pack, unpack

    header, body = unpack(pack({"seq": 1}, b"abc"))
    assert header == {"seq": 1} and body == b"abc"
    for bad in (b"", b"\x00\x00", b"\xff\xff\xff\xff{}", b"\x00\x00\x00\x02[]", b"\x00\x00\x00\x03{x}"):
        with pytest.raises(ValueError):
            unpack(bad)
    for bad in (b"\x80\x04K\x01.", b"[1,2]", b"nan?"):  # a pickle is just malformed data here
        with pytest.raises(ValueError):
            loads(bad)


def test_depth_png_keeps_millimetres_and_marks_missing():
    from agentkit.transport.mqtt.wire import decode_depth, encode_depth

    d = np.array([[0.5, 1.2345], [np.inf, 70.0]], np.float32)
    back = decode_depth(encode_depth(d))
    assert abs(back[0, 0] - 0.5) < 1e-3 and abs(back[0, 1] - 1.2345) < 1e-3
    assert np.isnan(back[1, 0]) and np.isnan(back[1, 1])


def test_freshness_drops_stale_and_out_of_order():
    from agentkit.transport.mqtt.wire import Freshness

    f = Freshness(max_age_s=1.0)
    now = 1000.0
    assert f.admit({"session": "a", "seq": 5, "t": now}, now)
    assert not f.admit({"session": "a", "seq": 4, "t": now}, now)  # out of order
    assert not f.admit({"session": "a", "seq": 5, "t": now}, now)  # duplicate
    assert not f.admit({"session": "a", "seq": 9, "t": now - 5}, now)  # stale
    assert f.admit({"session": "b", "seq": 1, "t": now}, now)  # the node restarted: new session
    assert (f.dropped_old, f.dropped_stale) == (2, 1)


def test_spec_parsing():
    from agentkit.transport.mqtt.wire import parse_spec

    s = parse_spec("mqtt://127.0.0.1:1999/r1")
    assert (s.host, s.port, s.name, s.topic("frame")) == ("127.0.0.1", 1999, "r1", "agentkit/r1/frame")
    assert parse_spec("mqtt://broker", name="r2").port == 1883
    for bad in ("http://x/r1", "mqtt://h:port/r1", "mqtt://h:1/a/b"):
        with pytest.raises(ValueError):
            parse_spec(bad)
    with pytest.raises(ValueError, match="names no robot"):
        parse_spec("mqtt://h:1")


# -- with a broker --------------------------------------------------------------------------------------------
async def _node_and_agent(broker, robot, **node_kw):
    from agentkit.tools.robot import remote_robot_toolbox, robot_toolbox
    from agentkit.transport.mqtt.node import RobotNode
    from agentkit.transport.mqtt.source import MqttSource
    from agentkit.transport.mqtt.wire import parse_spec

    node = RobotNode(parse_spec(broker.url + "/r1"), robot, robot_toolbox(robot), **node_kw)
    task = asyncio.create_task(node.run())
    source = MqttSource(broker.url + "/r1", max_age_s=5.0)
    await source.open()
    return node, task, source, remote_robot_toolbox(source.link, timeout_s=20)


async def _close(node, task, source):
    node.stop()
    await task
    await source.close()


@pytest.mark.robot
def test_frame_and_action_round_trip(broker, robot):
    async def go():
        node, task, source, box = await _node_and_agent(broker, robot, fps=20)
        try:
            frames = source.frames().__aiter__()
            frame = await asyncio.wait_for(frames.__anext__(), 10)
            assert frame.image.shape == (240, 320, 3) and frame.status.episode == robot.sim.episode
            ok = await box.run(ToolCall("home", {}), seq=frame.seq)
            assert ok.ok, ok.error
            assert 0 < ok.output["frame_to_action_ms"] < 2000
            bad = await box.run(ToolCall("pick", {"point": [0.5, 0.99]}), seq=frame.seq)  # node-side error
            assert not bad.ok and "no depth" in bad.error
            local = await box.run(ToolCall("pick", {"point": [2, 0]}))  # rejected before it leaves
            assert not local.ok and "invalid arguments" in local.error
            unknown = await box.run(ToolCall("teleport", {}))
            assert not unknown.ok and "unknown tool" in unknown.error
            state = await source.link.control("state")
            assert state["steps"] == robot.sim.steps and not state["success"]
        finally:
            await _close(node, task, source)

    asyncio.run(go())


@pytest.mark.robot
def test_node_answers_stale_and_survives_malformed_messages(broker, robot):
    import aiomqtt

    async def go():
        node, task, source, box = await _node_and_agent(broker, robot, fps=10, action_ttl_s=2.0)
        try:
            async with aiomqtt.Client("127.0.0.1", broker.port) as c:
                await c.subscribe("agentkit/r1/result", qos=1)
                for junk in (b"\x80\x04K\x01.", b"{not json", b"[]", json.dumps({"call": {"name": "home"}}).encode()):
                    await c.publish("agentkit/r1/action", junk, qos=1)
                old = {"id": "old-1", "t": time.time() - 60, "call": {"name": "home", "arguments": {}}}
                await c.publish("agentkit/r1/action", json.dumps(old).encode(), qos=1)
                async with asyncio.timeout(10):
                    async for m in c.messages:
                        reply = json.loads(m.payload)
                        if reply.get("id") == "old-1":
                            break
                assert not reply["ok"] and "stale" in reply["error"]
            assert robot.sim.steps == 0  # nothing ran
            ok = await box.run(ToolCall("home", {}))
            assert ok.ok, ok.error  # and the node still works
        finally:
            await _close(node, task, source)

    asyncio.run(go())


@pytest.mark.robot
def test_broker_restart_mid_action_reconnects_and_the_episode_resumes(broker, robot):
    robot.realtime = 1.0  # the pick takes ~1.5 s of wall time: the broker dies in the middle of it

    async def go():
        node, task, source, box = await _node_and_agent(broker, robot, fps=20)
        try:
            frames = source.frames().__aiter__()
            before = await asyncio.wait_for(frames.__anext__(), 10)
            episode = before.status.episode
            top = robot.sim.object_pos + np.array([0, 0, 0.025])
            pick = asyncio.create_task(box.run(ToolCall("pick", {"xyz": top.tolist()}), seq=before.seq))
            await asyncio.sleep(0.4)
            assert robot.busy == 1
            await asyncio.to_thread(broker.restart, 0.5)
            result = await asyncio.wait_for(pick, 30)
            assert result.ok, result.error  # the primitive finished during the outage; its result arrived
            assert node.connects >= 2 and source.link.connects >= 2
            after = await asyncio.wait_for(frames.__anext__(), 10)
            assert after.status.episode == episode and after.status.steps > before.status.steps
            place = await box.run(ToolCall("place", {"xyz": robot.sim.target_pos.tolist()}))
            assert place.ok, place.error
            assert (await source.link.control("state"))["success"]
        finally:
            await _close(node, task, source)

    asyncio.run(go())


@pytest.mark.robot
@pytest.mark.parametrize("world", ["fetch", "fetch-multi"])
def test_pixels_episode_against_a_robot_node_in_another_process(broker, tmp_path, world):
    from agentkit.benchmarks.robot import EvalConfig, evaluate

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cli = "import agentkit.apps.cli.robot; from agentkit.apps.cli.groups import app; app()"
    args = ["robot-node", "--env", world, "--broker", broker.url, "--name", "r9", "--realtime", "0"]
    node = subprocess.Popen(
        [sys.executable, "-c", cli, *args], env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "node.log", "w")
    )
    try:
        cfg = EvalConfig(policy="pixels", episodes=1, seed=11, node=broker.url + "/r9", timeout_s=30)
        report = asyncio.run(asyncio.wait_for(evaluate(cfg), 90))
        assert report.overall["success_rate"] == 1.0, report.episodes
        assert report.overall["frame_to_action_ms"]["n"] >= 2
        # a world that names its task per episode hands the instruction to the policy over MQTT too
        assert bool(report.episodes[0]["instruction"]) == (world == "fetch-multi")
    finally:
        node.terminate()
        node.wait(10)
    assert node.returncode == 0, (tmp_path / "node.log").read_text()[-2000:]  # SIGTERM: a clean stop
    assert asyncio.run(_retained_status(broker, "r9"))["online"] is False


async def _retained_status(broker, name):
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", broker.port) as c:
        await c.subscribe(f"agentkit/{name}/status", qos=1)
        async with asyncio.timeout(5):
            async for m in c.messages:
                return json.loads(m.payload)


@pytest.mark.robot
def test_a_killed_node_is_reported_offline_by_the_broker_last_will(broker, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cli = "import agentkit.apps.cli.robot; from agentkit.apps.cli.groups import app; app()"
    node = subprocess.Popen(
        [sys.executable, "-c", cli, "robot-node", "--broker", broker.url, "--name", "r8", "--fps", "5"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if asyncio.run(_retained_status_or_none(broker, "r8")):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the node never came online")
    finally:
        node.kill()  # no goodbye: only the broker's last will can tell
        node.wait(10)
    deadline = time.monotonic() + 20  # keepalive 5 s: the broker notices within 1.5x that
    while time.monotonic() < deadline:
        status = asyncio.run(_retained_status_or_none(broker, "r8"))
        if status is not None and status["online"] is False:
            return
        time.sleep(0.5)
    pytest.fail("the broker never published the node's last will")


async def _retained_status_or_none(broker, name):
    try:
        status = await asyncio.wait_for(_retained_status(broker, name), 1.0)
    except TimeoutError:
        return None
    return status if status and status.get("online") is not None else None


def test_unreachable_broker_is_one_clear_error():
    pytest.importorskip("aiomqtt")
    from agentkit.errors import SourceError
    from agentkit.transport.mqtt.broker import free_port
    from agentkit.transport.mqtt.source import MqttSource

    source = MqttSource(f"mqtt://127.0.0.1:{free_port()}/r1", connect_timeout_s=1.0)
    with pytest.raises(SourceError, match="cannot reach the MQTT broker"):
        asyncio.run(source.open())


@pytest.mark.robot
def test_broker_gone_for_good_gives_a_recorded_error_not_a_crash(broker, robot):
    async def go():
        node, task, source, box = await _node_and_agent(broker, robot, fps=10)
        try:
            assert (await box.run(ToolCall("home", {}))).ok
            await asyncio.to_thread(broker.stop)
            box.timeout_s = 1.0
            lost = await box.run(ToolCall("home", {}))
            assert not lost.ok and "robot r1: no" in lost.error
            assert not task.done()  # the node keeps running, waiting for its broker
        finally:
            await _close(node, task, source)

    asyncio.run(go())


@pytest.mark.robot
def test_cancelling_a_remote_call_stops_the_robot(broker, robot):
    robot.realtime = 1.0

    async def go():
        node, task, source, box = await _node_and_agent(broker, robot, fps=10)
        try:
            top = robot.sim.object_pos + np.array([0, 0, 0.025])
            call = asyncio.create_task(box.run(ToolCall("pick", {"xyz": top.tolist()})))
            for _ in range(300):  # wait (up to 15 s on a loaded machine) until the node runs the pick
                if robot.busy == 1 or call.done():
                    break
                await asyncio.sleep(0.05)
            assert robot.busy == 1, call.result() if call.done() else "the node never started the pick"
            await asyncio.sleep(0.2)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            for _ in range(50):  # the node hears the cancel and stops the primitive
                if robot.busy == 0:
                    break
                await asyncio.sleep(0.05)
            assert robot.busy == 0
            steps = robot.sim.steps
            await asyncio.sleep(0.3)
            assert robot.sim.steps == steps and 0 < steps < 40  # stopped mid-pick, holding still
        finally:
            await _close(node, task, source)

    asyncio.run(go())


@pytest.mark.robot
def test_node_action_queue_is_bounded(broker, robot):
    import aiomqtt

    robot.realtime = 1.0  # each home takes a while: the queue fills

    async def go():
        node, task, source, _ = await _node_and_agent(broker, robot, fps=5, max_pending=2)
        try:
            replies = {}
            async with aiomqtt.Client("127.0.0.1", broker.port) as c:
                await c.subscribe("agentkit/r1/result", qos=1)
                for i in range(6):
                    msg = {
                        "id": f"a{i}",
                        "t": time.time(),
                        "call": {"name": "go_to", "arguments": {"xyz": [1.3, 0.6 + 0.05 * i, 0.6]}},
                    }
                    await c.publish("agentkit/r1/action", json.dumps(msg).encode(), qos=1)
                async with asyncio.timeout(20):
                    async for m in c.messages:
                        r = json.loads(m.payload)
                        replies[r["id"]] = r
                        if len(replies) == 6:
                            break
            busy = [k for k, r in replies.items() if not r["ok"] and "robot busy" in r["error"]]
            done = [k for k, r in replies.items() if r["ok"]]
            assert busy and len(done) >= 2 and len(busy) + len(done) == 6, replies
        finally:
            await _close(node, task, source)

    asyncio.run(go())
