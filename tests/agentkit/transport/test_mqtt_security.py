"""Issue 12, MQTT item 4: login, ACL and TLS, run by a real Mosquitto from the shipped config and ACL.

Users: ``r1`` (the robot node; the ACL's ``pattern`` lines give a robot user its own topics),
``operator`` (owner of r1 in the shipped ACL), ``mallory`` (a valid login with no grants), and anonymous
clients. Before the fix the broker let anyone in and anyone publish anything: an anonymous client drove
the robot and forged its results, status and frames.
"""

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
USERS = {"r1": "robot-pw", "operator": "operator-pw", "mallory": "mallory-pw"}


def _auth(user: str, password: str | None = None, **kw):
    from agentkit.transport.mqtt.auth import MqttAuth

    return MqttAuth(username=user, password=password if password is not None else USERS[user], **kw)


@pytest.fixture()
def secure_broker():
    pytest.importorskip("aiomqtt")
    from agentkit.errors import ConfigError
    from agentkit.transport.mqtt.broker import MosquittoBroker, shipped_config_dir

    conf = shipped_config_dir()
    try:
        broker = MosquittoBroker(config=conf / "mosquitto.conf", users=USERS, acl=conf / "acl")
    except ConfigError as e:  # no mosquitto / mosquitto_passwd here
        pytest.skip(str(e))
    with broker as b:
        yield b


def _header(session: str, seq: int) -> dict:
    h = {"session": session, "seq": seq, "t": time.time(), "w": 320, "h": 240}
    return {**h, "episode": 99, "busy": False, "actions": 0, "steps": 0}


def test_shipped_config_turns_anonymous_access_off():
    from agentkit.transport.mqtt.broker import shipped_config_dir

    conf = (shipped_config_dir() / "mosquitto.conf").read_text()
    settings = [line.split() for line in conf.splitlines() if line.strip() and not line.startswith("#")]
    assert ["allow_anonymous", "false"] in settings
    assert any(s[0] == "password_file" for s in settings) and any(s[0] == "acl_file" for s in settings)
    acl = (shipped_config_dir() / "acl").read_text()
    assert "pattern write agentkit/%u/status" in acl and "topic write agentkit/r1/action" in acl


def test_anonymous_and_wrong_password_clients_are_refused(secure_broker, robot, mqtt):
    import aiomqtt

    from agentkit.errors import SourceError
    from agentkit.tools.robot import robot_toolbox
    from agentkit.transport.mqtt.link import RobotLink
    from agentkit.transport.mqtt.node import NodeFailed, RobotNode
    from agentkit.transport.mqtt.wire import parse_spec

    spec = parse_spec(secure_broker.url + "/r1")

    async def go():
        for kw in ({}, {"username": "operator", "password": "wrong"}, {"username": "nobody", "password": "x"}):
            with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
                async with mqtt.client(secure_broker, **kw):
                    pass
        link = RobotLink(spec, auth=_auth("operator", "wrong"))
        with pytest.raises(SourceError, match=r"cannot reach the MQTT broker .*Not authorized"):
            await link.start(timeout_s=2)
        node = RobotNode(spec, robot, robot_toolbox(robot), auth=_auth("r1", "wrong"))
        with pytest.raises(NodeFailed, match="refused the login"):
            await asyncio.wait_for(node.run(), 10)  # fails fast, no endless retry behind an online-looking name

    asyncio.run(go())


def test_only_the_owner_commands_the_robot_and_only_the_robot_publishes_its_topics(secure_broker, robot, mqtt):
    from agentkit.transport.mqtt.wire import encode_jpeg, pack

    async def go():
        node, task, source, box = await mqtt.node_and_agent(
            secure_broker, robot, fps=10, node_auth=_auth("r1"), agent_auth=_auth("operator")
        )
        try:
            await source.link.wait_online(10)
            frame = await mqtt.fresh_frame(source, node.session)
            jpeg = encode_jpeg(np.zeros((240, 320, 3), np.uint8))
            seen: list[tuple[str, bytes]] = []
            async with mqtt.client(secure_broker, username="operator", password=USERS["operator"]) as watch:
                await watch.subscribe("agentkit/r1/#", qos=1)
                now = time.time()
                # mallory: a valid login without grants, tries to drive the robot and to forge what it says
                async with mqtt.client(secure_broker, username="mallory", password=USERS["mallory"]) as m:
                    home = {"id": "m-1", "t": now, "call": {"name": "home", "arguments": {}}}
                    await m.publish("agentkit/r1/action", json.dumps(home).encode(), qos=1)
                    await m.publish("agentkit/r1/control", json.dumps({"id": "m-2", "t": now, "cmd": "reset"}), qos=1)
                    forged = {"online": False, "session": node.session, "t": now}
                    await m.publish("agentkit/r1/status", json.dumps(forged).encode(), qos=1, retain=True)
                    await m.publish("agentkit/r1/frame", pack(_header("mallory", 1), jpeg), qos=1)
                    await m.publish("agentkit/r1/result", json.dumps({"id": "x", "ok": True, "t": now}), qos=1)
                # the owner may command, but not speak for the robot either
                async with mqtt.client(secure_broker, username="operator", password=USERS["operator"]) as o:
                    await o.publish("agentkit/r1/status", json.dumps(forged).encode(), qos=1, retain=True)
                    await o.publish("agentkit/r1/frame", pack(_header("operator", 1), jpeg), qos=1)
                    await o.publish("agentkit/r1/result", json.dumps({"id": "y", "ok": True, "t": now}), qos=1)
                try:
                    async with asyncio.timeout(1.5):
                        async for msg in watch.messages:
                            seen.append((str(msg.topic), bytes(msg.payload)))
                except TimeoutError:
                    pass
            forged_seen = [
                (t, p[:80])
                for t, p in seen
                if b"mallory" in p or b"operator" in p or (t.endswith("/status") and b'"online":false' in p)
            ]
            assert not forged_seen, forged_seen  # the broker dropped every forgery
            assert {"m-1", "m-2"}.isdisjoint(node._seen) and robot.actions == 0  # mallory never reached the node
            assert node.rejected.total == 0 and node.status_restored == 0  # nothing even needed rejecting
            status = await mqtt.retained_status(secure_broker, username="operator", password=USERS["operator"])
            assert status["online"] is True and status["session"] == node.session
            ok = await box.run(ToolCall("home", {}), seq=frame.seq)  # the owner drives the robot
            assert ok.ok, ok.error
            assert robot.actions == 1 and source.link.rejected.total == 0
        finally:
            await mqtt.close(node, task, source)

    asyncio.run(go())


@pytest.mark.robot
def test_tls_with_a_private_ca_and_logins(tls_files, robot, mqtt):
    from agentkit.errors import SourceError
    from agentkit.transport.mqtt.broker import MosquittoBroker, shipped_config_dir
    from agentkit.transport.mqtt.link import RobotLink
    from agentkit.transport.mqtt.wire import parse_spec

    conf = shipped_config_dir()
    with MosquittoBroker(config=conf / "mosquitto.conf", users=USERS, acl=conf / "acl", tls=tls_files) as broker:
        assert broker.url.startswith("mqtts://127.0.0.1:")

        async def go():
            node, task, source, box = await mqtt.node_and_agent(
                broker,
                robot,
                fps=10,
                node_auth=_auth("r1", tls_ca=tls_files.ca),
                agent_auth=_auth("operator", tls_ca=tls_files.ca),
            )
            try:
                frame = await mqtt.fresh_frame(source, node.session)
                assert (await box.run(ToolCall("home", {}), seq=frame.seq)).ok
            finally:
                await mqtt.close(node, task, source)
            spec = parse_spec(broker.url + "/r1")
            # the system CAs do not know the private CA: the broker's certificate is refused
            with pytest.raises(SourceError, match="cannot reach"):
                await RobotLink(spec, auth=_auth("operator")).start(timeout_s=2)
            # plain MQTT to the TLS port gets nowhere
            with pytest.raises(SourceError, match="cannot reach"):
                await RobotLink(spec.__class__(spec.host, spec.port, "r1"), auth=_auth("operator")).start(timeout_s=2)

        asyncio.run(go())


# -- the CLI ------------------------------------------------------------------------------------------------
@pytest.mark.robot
def test_robot_node_cli_logs_in_from_a_password_file_and_exits_non_zero_when_refused(secure_broker, mqtt, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("AGENTKIT_MQTT_PASSWORD", None)
    cli = "import agentkit.apps.cli.robot; from agentkit.apps.cli.groups import app; app()"
    base = [sys.executable, "-c", cli, "robot-node", "--broker", secure_broker.url, "--name", "r1", "--fps", "5"]
    wrong = subprocess.run(
        [*base, "--username", "r1"], env={**env, "AGENTKIT_MQTT_PASSWORD": "wrong"}, capture_output=True, timeout=120
    )
    assert wrong.returncode == 1 and b"refused the login" in wrong.stderr, wrong.stderr[-2000:]
    (tmp_path / "pw").write_text(USERS["r1"] + "\n")
    node = subprocess.Popen(
        [*base, "--username", "r1", "--password-file", str(tmp_path / "pw")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "node.log", "w"),
    )
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            status = asyncio.run(mqtt.retained_status(secure_broker, username="operator", password=USERS["operator"]))
            if status and status["online"]:
                break
            time.sleep(0.3)
        assert status and status["online"], (tmp_path / "node.log").read_text()[-2000:]
    finally:
        node.terminate()
        node.wait(20)
    assert node.returncode == 0, (tmp_path / "node.log").read_text()[-2000:]
    status = asyncio.run(mqtt.retained_status(secure_broker, username="operator", password=USERS["operator"]))
    assert status["online"] is False
