"""Fuzz: a few thousand random and malformed MQTT messages at a node and an agent (real Mosquitto, loopback).

The messages are seeded, so a failure replays: random bytes, truncated and bit-flipped JSON, valid
messages with one field replaced by a hostile value (wrong types, NaN, huge numbers, long strings,
wildcards, missing or unknown fields), deep nesting, oversized payloads, frame headers that lie about
their image, decompression-bomb JPEG headers, forged statuses (offline, other sessions, future stamps)
and results. Afterwards both sides must still serve: the node answers and runs a tool call, the agent
receives fresh frames of the live session, no task died and no handler met an unexpected exception.
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
import time

import numpy as np
import pytest

from agentkit.types import ToolCall

pytestmark = [pytest.mark.mqtt, pytest.mark.robot]
N_MESSAGES = 3000
HOSTILE = [
    None, True, False, 0, -1, 1, 2**31, 2**63, 2**64, -(2**63), 1.5, -0.0, 1e308, "", "x", "1", "a" * 300,
    "a/#", "+", "../", "\x00", [], [1, 2], {}, {"a": {"b": [None]}}, "NaN",
]  # fmt: skip
TOOLS = ["home", "pick", "place", "go_to", "open_gripper", "teleport", "", "__import__"]


class Fuzzer:
    def __init__(self, seed: int, session: str, jpeg: bytes) -> None:
        self.rng = random.Random(seed)
        self.session = session
        self.jpeg = jpeg

    def _id(self) -> str:
        return self.rng.choice([f"fz-{self.rng.randrange(10**9)}", "", "a/#", "x" * 80, "dup-1"])

    def _t(self) -> float:
        now = time.time()
        return self.rng.choice([now, now, now - 60, now + 60, now + 4, 1e12, 0.0])

    def base(self, kind: str) -> dict:
        r = self.rng
        if kind == "action":
            args = r.choice([{}, {"point": [r.random(), r.random()]}, {"xyz": [1.3, 0.75, 0.6]}, {"point": "x"}])
            msg = {"id": self._id(), "t": self._t(), "call": {"name": r.choice(TOOLS), "arguments": args}}
            if r.random() < 0.5:
                msg.update(frame_seq=r.randrange(100), frame_t=time.time())
            return msg
        if kind == "control":
            msg = {"id": self._id(), "t": self._t(), "cmd": r.choice(["reset", "cancel", "state", "fly"])}
            if r.random() < 0.3:
                msg["seed"] = r.choice([0, 7, -1, 2**40])
            if r.random() < 0.2:
                msg["ref"] = self._id()
            return msg
        if kind == "status":
            session = r.choice([self.session, "evil", "", "a/#"])
            return {"online": r.random() < 0.5, "session": session, "t": self._t(), "fps": 10.0}
        if kind == "result":
            return {"id": self._id(), "ok": r.random() < 0.5, "t": self._t(), "output": {"a": 1}, "error": None}
        if kind == "state":
            return {"session": self.session, "seq": r.randrange(10**6), "t": self._t(), "object_pos": [1, 2, 3]}
        header = {"session": r.choice([self.session, "evil"]), "seq": r.randrange(10**12), "t": self._t()}
        return {**header, "w": 320, "h": 240, "episode": 0, "busy": False, "actions": 0, "steps": 0}

    def mutate(self, msg: dict) -> dict:
        r = self.rng
        for _ in range(r.choice([0, 1, 1, 2, 3])):
            op = r.random()
            keys = list(msg)
            if op < 0.3 and keys:
                msg.pop(r.choice(keys))
            elif op < 0.8 and keys:
                msg[r.choice(keys)] = r.choice(HOSTILE)
            elif op < 0.9:
                msg[r.choice(["extra", "id2", "__class__", "call"])] = r.choice(HOSTILE)
            elif "call" in msg and isinstance(msg["call"], dict):
                msg["call"]["arguments"] = r.choice(HOSTILE)
        return msg

    def json_payload(self, kind: str) -> bytes:
        r = self.rng
        p = r.random()
        if p < 0.05:
            return bytes(r.randrange(256) for _ in range(r.randrange(64)))
        if p < 0.08:
            return r.choice([b"[" * 5000, b'{"a":' * 3000, b'{"t": NaN}', b'{"t": 1e999}', b"9" * 5000, b"null"])
        if p < 0.09:
            return json.dumps({**self.base(kind), "pad": "x" * 70_000}).encode()  # over 64 KB
        payload = json.dumps(self.mutate(self.base(kind))).encode()  # NaN/Infinity allowed here on purpose
        if r.random() < 0.1:
            payload = payload[: r.randrange(len(payload) + 1)]
        if r.random() < 0.1 and payload:
            b = bytearray(payload)
            b[r.randrange(len(b))] = r.randrange(256)
            payload = bytes(b)
        return payload

    def frame_payload(self) -> bytes:
        r = self.rng
        header = self.mutate(self.base("frame")) if r.random() < 0.6 else self.base("frame")
        h = json.dumps(header).encode()
        p = r.random()
        if p < 0.1:
            return bytes(r.randrange(256) for _ in range(r.randrange(16)))
        if p < 0.2:  # a header length that lies
            return struct.pack(">I", r.choice([0, len(h) + 10, 2**31, 70_000])) + h + self.jpeg
        if p < 0.3:  # a JPEG header claiming 60000 x 60000 pixels
            sof = self.jpeg.index(b"\xff\xc0")
            body = self.jpeg[: sof + 5] + struct.pack(">HH", 60000, 60000) + self.jpeg[sof + 9 :]
        elif p < 0.4:
            body = bytes(r.randrange(256) for _ in range(200))
        elif p < 0.405:
            body = b"\x00" * 4_500_000  # over the 4 MB cap
        else:
            body = self.jpeg
        return struct.pack(">I", len(h)) + h + body


def test_fuzzed_messages_leave_node_and_agent_serving(broker, robot, mqtt):
    from agentkit.transport.mqtt.wire import encode_jpeg

    async def go():
        node, task, source, box = await mqtt.node_and_agent(broker, robot, fps=8, depth=False, max_pending=4)
        link = source.link
        try:
            await link.wait_online(10)
            fuzz = Fuzzer(12, node.session, encode_jpeg(np.full((240, 320, 3), 128, np.uint8)))
            kinds = ["action"] * 5 + ["control"] * 3 + ["frame"] * 5 + ["status"] * 2 + ["result"] * 2 + ["state"]
            started = time.monotonic()
            async with mqtt.client(broker) as c:
                for i in range(N_MESSAGES):
                    kind = fuzz.rng.choice(kinds)
                    payload = fuzz.frame_payload() if kind == "frame" else fuzz.json_payload(kind)
                    retain = kind == "status" and fuzz.rng.random() < 0.3
                    await c.publish(f"agentkit/r1/{kind}", payload, qos=fuzz.rng.choice([0, 1]), retain=retain)
                    if i % 50 == 0:
                        await asyncio.sleep(0.01)  # let the node and the agent run between bursts
            sent_s = time.monotonic() - started
            await asyncio.sleep(1.5)  # the last ones are handled

            # both sides still serve: fresh frames of the live session, a tool call, a control, the status
            frame = await mqtt.fresh_frame(source, node.session)
            await link.wait_online(10)
            await box.run(ToolCall("home", {}))  # may meet a fuzzed action still queued: run it twice
            ok = await box.run(ToolCall("home", {}), seq=frame.seq)
            assert ok.ok, ok.error
            state = await link.control("state")
            assert state["steps"] == robot.sim.steps
            status = await mqtt.retained_status(broker)
            assert status["online"] is True and status["session"] == node.session
            # no task died, no handler met an unexpected exception
            assert not task.done() and node.failure is None and sum(node.restarts.values()) == 0
            assert link._task is not None and not link._task.done() and link.loop_errors == 0
            assert node.rejected.counts["internal"] == 0 and link.rejected.counts["internal"] == 0
            # and they said no, many times, and counted it
            assert node.rejected.total > 500 and link.rejected.total > 500, (node.rejected.counts, link.rejected.counts)
            print(
                f"\n{N_MESSAGES} messages in {sent_s:.1f} s; node rejected {dict(node.rejected.counts)}, "
                f"agent rejected {dict(link.rejected.counts)}, freshness drops "
                f"{link.freshness.dropped_old}/{link.freshness.dropped_stale}/{link.freshness.dropped_future} "
                f"(old/stale/future), status restored {node.status_restored}x, robot actions {robot.actions}"
            )
        finally:
            await mqtt.close(node, task, source)

    asyncio.run(asyncio.wait_for(go(), 60))
