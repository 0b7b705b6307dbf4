"""Issue 12 (MQTT items 1-3) against a real Mosquitto: one bad message never kills a node or an agent.

Each test sends what the issue found, then checks the answer and that both sides still serve. Before the
fix: the node's connection (bad ``t``, ``seed: -1``) or action worker (bad ``frame_seq``) died while its
retained status said online; a header without ``seq`` ended the agent's link; a forged retained
"offline" blocked every new agent; ``t = 1e12`` and a 20 MB action were executed; ``a/#`` was a name.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from agentkit.types import ToolCall

pytestmark = [pytest.mark.mqtt, pytest.mark.robot]


def _msg(kind: str, msg_id: str, **fields) -> bytes:
    base = {"call": {"name": "home", "arguments": {}}} if kind == "action" else {"cmd": "state"}
    return json.dumps({"id": msg_id, "t": time.time(), **base, **fields}).encode()


# -- 1. one malformed command must not kill the node -------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "fields", "expect"),
    [
        ("action", {"t": "abc"}, "t: Input should be a valid number"),
        ("control", {"cmd": "reset", "seed": -1}, "seed: Input should be greater than or equal to 0"),
        ("action", {"frame_seq": "abc"}, "frame_seq: Input should be a valid integer"),
        ("action", {"frame_seq": 2.5}, "frame_seq: Input should be a valid integer"),
    ],
    ids=["t-not-a-number", "reset-seed-minus-1", "frame_seq-a-string", "frame_seq-a-float"],
)
def test_a_malformed_command_is_answered_and_the_node_keeps_serving(broker, robot, mqtt, kind, fields, expect):
    async def go():
        node, task, source, box = await mqtt.node_and_agent(broker, robot, fps=10)
        try:
            episode = robot.sim.episode
            reply = await mqtt.ask(broker, f"agentkit/r1/{kind}", _msg(kind, "bad-1", **fields), "bad-1")
            assert reply is not None, "no answer: the node died on one message"
            assert not reply["ok"] and expect in reply["error"], reply
            assert robot.actions == 0 and robot.sim.episode == episode  # nothing ran, no reset
            assert node.rejected.counts["invalid"] == 1
            ok = await box.run(ToolCall("home", {}), seq=1)  # the connection and the action worker still serve
            assert ok.ok, ok.error
            assert not task.done()
            status = await mqtt.retained_status(broker)
            assert status["online"] is True and status["session"] == node.session
        finally:
            await mqtt.close(node, task, source)

    asyncio.run(go())


class _BrokenCamera:
    """``robot`` whose camera raises after ``after`` good frames, ``failures`` times (``None``: for good)."""

    def __init__(self, robot, after: int = 3, failures: int | None = None) -> None:
        self.robot, self.after, self.failures = robot, after, failures
        self.calls = self.failed = 0

    def __getattr__(self, name):
        return getattr(self.robot, name)

    def render(self, depth: bool = True):
        self.calls += 1
        if self.calls > self.after and (self.failures is None or self.failed < self.failures):
            self.failed += 1
            raise RuntimeError("camera unplugged")
        return self.robot.render(depth=depth)


def test_a_node_task_that_dies_once_is_restarted(broker, robot, mqtt):
    async def go():
        camera = _BrokenCamera(robot, after=3, failures=1)
        node, task, source, box = await mqtt.node_and_agent(broker, camera, fps=20)
        try:
            await mqtt.wait_for(lambda: camera.failed == 1, what="the camera to fail")
            frame = await mqtt.fresh_frame(source, node.session)
            while frame.seq <= 3:  # frame 3 (the last before the failure) may still be on its way
                frame = await mqtt.fresh_frame(source, node.session)
            assert not task.done() and node.failure is None  # the stream is back
            assert node.restarts["camera"] == 1
            assert (await box.run(ToolCall("home", {}))).ok
        finally:
            await mqtt.close(node, task, source)

    asyncio.run(go())


def test_a_node_task_that_keeps_dying_stops_the_node_with_an_error_and_an_offline_status(broker, robot, mqtt):
    from agentkit.transport.mqtt.node import NodeFailed

    async def go():
        camera = _BrokenCamera(robot, after=3, failures=None)
        node, task, source, _ = await mqtt.node_and_agent(broker, camera, fps=20)
        try:
            with pytest.raises(NodeFailed, match="the camera task failed 4 times within a minute; last: RuntimeError"):
                await asyncio.wait_for(asyncio.shield(task), 15)
            assert node.restarts["camera"] == 3
            status = await mqtt.retained_status(broker)
            assert status["online"] is False and status["session"] == node.session  # not a live-looking zombie
            await mqtt.wait_for(lambda: source.link.online is False, what="the agent to see the node offline")
        finally:
            await source.close()

    asyncio.run(go())


def test_a_stopping_node_answers_every_accepted_action(broker, robot, mqtt):
    robot.realtime = 1.0  # the pick takes ~1.5 s: it is running, and a home waits behind it, when the node stops

    async def go():
        node, task, source, box = await mqtt.node_and_agent(broker, robot, fps=5)
        try:
            top = robot.sim.object_pos + np.array([0, 0, 0.025])
            pick = asyncio.create_task(box.run(ToolCall("pick", {"xyz": top.tolist()})))
            await mqtt.wait_for(lambda: robot.busy == 1, what="the pick to start")
            home = asyncio.create_task(box.run(ToolCall("home", {})))
            await mqtt.wait_for(lambda: node._queue.qsize() == 1, what="the home to be queued")
            node.stop()
            await task
            picked, homed = await asyncio.wait_for(asyncio.gather(pick, home), 10)  # answers, not timeouts
            assert not picked.ok and picked.error == "stopped mid-action: the robot node is stopping"
            assert not homed.ok and homed.error == "not run: the robot node is stopping"
        finally:
            await mqtt.close(node, task, source)

    asyncio.run(go())


# -- 2. one forged message must not end the agent's link ---------------------------------------------------
def _header(session: str, **over) -> dict:
    h = {"session": session, "seq": 1, "t": time.time(), "w": 320, "h": 240}
    return {**h, "episode": 0, "busy": False, "actions": 0, "steps": 0, **over}


def test_a_forged_frame_header_without_seq_is_dropped_and_the_link_goes_on(broker, robot, mqtt):
    from agentkit.transport.mqtt.wire import encode_jpeg, pack

    async def go():
        node, task, source, _ = await mqtt.node_and_agent(broker, robot, fps=10)
        try:
            link = source.link
            before = await mqtt.fresh_frame(source, node.session)
            forged = _header("forged1")
            del forged["seq"]
            async with mqtt.client(broker) as c:
                await c.publish("agentkit/r1/frame", pack(forged, encode_jpeg(np.zeros((240, 320, 3), np.uint8))))
            await asyncio.sleep(0.5)  # the forged frame has reached the link by now
            after = await mqtt.fresh_frame(source, node.session)
            assert after.seq > before.seq
            await mqtt.wait_for(lambda: link.rejected.counts["invalid"] == 1, what="the forged frame to be counted")
            assert link._task is not None and not link._task.done() and link.loop_errors == 0
            assert (await link.control("state"))["steps"] == robot.sim.steps
        finally:
            await mqtt.close(node, task, source)

    asyncio.run(go())


def test_an_unexpected_error_inside_the_agent_link_reconnects_instead_of_ending_it(broker, robot, mqtt):
    async def go():
        node, task, source, _ = await mqtt.node_and_agent(broker, robot, fps=10)
        try:
            link = source.link
            handle, calls = link._on_message, [0]

            def buggy(topic: str, payload: bytes) -> None:  # a bug outside the per-message guard
                calls[0] += 1
                if calls[0] == 3:
                    raise RuntimeError("a bug")
                handle(topic, payload)

            link._on_message = buggy
            await mqtt.wait_for(lambda: calls[0] >= 3, what="the bug to happen")
            assert (await mqtt.fresh_frame(source, node.session)).meta["session"] == node.session
            assert link.loop_errors == 1 and link.connects == 2
        finally:
            await mqtt.close(node, task, source)

    asyncio.run(go())


def test_a_forged_retained_offline_status_blocks_no_agent(broker, robot, mqtt):
    from agentkit.transport.mqtt.source import MqttSource

    async def go():
        node, task, source, _ = await mqtt.node_and_agent(broker, robot, fps=10)
        late = MqttSource(broker.url + "/r1")
        try:
            await source.link.wait_online(5)
            async with mqtt.client(broker) as c:
                for forged in ({"online": False}, {"online": False, "session": node.session, "t": time.time()}):
                    await c.publish("agentkit/r1/status", json.dumps(forged).encode(), qos=1, retain=True)
            await late.open()
            await late.link.wait_online(5)  # before the fix: blocked for good
            await source.link.wait_online(5)
            for _ in range(20):  # the node publishes its own status again, at most once a second
                status = await mqtt.retained_status(broker)
                if status["online"] is True and status["session"] == node.session:
                    break
                await asyncio.sleep(0.25)
            assert status["online"] is True and status["session"] == node.session, status
            assert node.status_restored >= 1
        finally:
            await late.close()
            await mqtt.close(node, task, source)

    asyncio.run(go())


def test_the_link_believes_frames_of_a_live_session_over_an_offline_status():
    """The trust rule, message by message (no broker: the link's handler is fed directly)."""
    from agentkit.transport.mqtt.link import RobotLink
    from agentkit.transport.mqtt.wire import dumps, encode_jpeg, pack, parse_spec

    link = RobotLink(parse_spec("mqtt://127.0.0.1:1/r1"))
    jpeg = encode_jpeg(np.zeros((240, 320, 3), np.uint8))
    now = time.time()

    def frame(session: str, seq: int, t: float) -> None:
        link._on_message("agentkit/r1/frame", pack(_header(session, seq=seq, t=t), jpeg))

    def status(online: bool, session: str, t: float) -> None:
        link._on_message("agentkit/r1/status", dumps({"online": online, "session": session, "t": t}))

    status(False, "old", now - 100)  # the last will of an earlier run
    assert link.online is False
    frame("s1", 1, now)  # a live run streams: online
    assert link.online is True and link.session == "s1"
    status(False, "s1", now + 0.5)  # it says goodbye (or someone forges that it did)
    assert link.online is False
    frame("s1", 2, now + 0.2)  # a frame sent before the goodbye changes nothing
    assert link.online is False
    frame("s1", 3, now + 1.0)  # a frame sent after it: the run is alive whatever the status said
    assert link.online is True and link.status_contradicted == 1
    status(False, "old", now)  # another run's offline status says nothing about this one
    assert link.online is True
    link._on_message("agentkit/r1/status", b'{"online": false}')  # no session: rejected, no effect
    status(False, "s1", now + 60)  # stamped a minute ahead: rejected as from the future
    assert link.online is True
    assert link.rejected.counts["invalid"] == 1 and link.rejected.counts["future"] == 1


# -- 3. time window, size cap, names ---------------------------------------------------------------------
def test_an_action_stamped_far_in_the_future_is_answered_not_executed(broker, robot, mqtt):
    async def go():
        node, task, source, _ = await mqtt.node_and_agent(broker, robot, fps=5)
        try:
            reply = await mqtt.ask(broker, "agentkit/r1/action", _msg("action", "future-1", t=1e12), "future-1")
            assert reply is not None and not reply["ok"] and "from the future" in reply["error"], reply
            reply = await mqtt.ask(broker, "agentkit/r1/action", _msg("action", "near", t=time.time() + 2), "near")
            assert reply is not None and reply["ok"], reply  # within the clock-skew tolerance (5 s)
            assert robot.actions == 1 and node.rejected.counts["future"] == 1
        finally:
            await mqtt.close(node, task, source)

    asyncio.run(go())


def test_oversized_messages_are_refused_before_they_are_parsed(broker, robot, mqtt):
    from agentkit.transport.mqtt.wire import pack

    async def go():
        node, task, source, _ = await mqtt.node_and_agent(broker, robot, fps=5)
        try:
            big = _msg("action", "big-1", pad="x" * 20_000_000)
            reply = await mqtt.ask(broker, "agentkit/r1/action", big, "big-1", timeout_s=20)
            assert reply is not None and not reply["ok"], reply
            assert "too large: 20000" in reply["error"] and "(max 65536)" in reply["error"]
            assert robot.actions == 0 and node.rejected.counts["too_large"] == 1
            async with mqtt.client(broker) as c:  # and a 5 MB frame to the agent
                await c.publish("agentkit/r1/frame", pack(_header(node.session, seq=10**6), b"\xff" * 5_000_000))
            await mqtt.wait_for(lambda: source.link.rejected.counts["too_large"] == 1, what="the frame to be refused")
            assert (await mqtt.fresh_frame(source, node.session)).seq < 10**6
        finally:
            await mqtt.close(node, task, source)

    asyncio.run(go())


@pytest.mark.parametrize("bad", ["a/#", "+", "#", "a/b", "x" * 65, "r 1", "r\u00e9", "r1\n"])
def test_a_robot_name_that_is_not_one_plain_topic_level_is_refused(bad):
    from typer.testing import CliRunner

    import agentkit.apps.cli.robot  # noqa: F401 - registers the commands
    from agentkit.apps.cli.groups import app
    from agentkit.errors import ConfigError, SourceError
    from agentkit.transport.mqtt.source import MqttSource
    from agentkit.transport.mqtt.wire import BrokerSpec, parse_spec

    with pytest.raises(ValueError, match="bad robot name"):
        parse_spec("mqtt://127.0.0.1:1883", name=bad)
    with pytest.raises(ValueError, match="bad robot name"):
        BrokerSpec("127.0.0.1", 1883, bad)
    if bad.strip() == bad:  # an address is stripped of surrounding whitespace first
        with pytest.raises(ValueError):
            parse_spec(f"mqtt://127.0.0.1:1883/{bad}")
        with pytest.raises(SourceError):
            MqttSource(f"mqtt://127.0.0.1:1883/{bad}")
    from agentkit.apps.robot import serve_node

    with pytest.raises(ConfigError, match="bad robot name"):
        asyncio.run(serve_node("mqtt://127.0.0.1:1", bad))
    r = CliRunner().invoke(app, ["robot-node", "--broker", "mqtt://127.0.0.1:1", "--name", bad])
    assert r.exit_code == 1 and "bad robot name" in r.output, r.output
