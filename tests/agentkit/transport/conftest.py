"""Helpers for the MQTT tests: a node and an agent on a real broker, raw clients that send what they like."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest


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
