"""The loop side of the dashboard (reference copies, bounded, exact counters) and the server's view of it."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from agentkit.apps.cli.dashboard import expand_optional_values
from agentkit.apps.dashboard.server import Address, check_public, parse_address
from agentkit.apps.dashboard.state import RING, Cursor, LiveHub, StreamView
from agentkit.errors import ConfigError
from agentkit.types import ActionResult, Decision, Frame, ToolCall

IMAGE = np.zeros((240, 320, 3), np.uint8)


def frame(seq: int) -> Frame:
    return Frame(IMAGE, time.monotonic(), seq / 10, seq, "test")


def decision(seq: int, kind: str = "silence", latency: float = 5.0) -> Decision:
    d = {"silence": Decision.silence, "standby": Decision.standby, "response": Decision.response}[kind]()
    if kind == "response":
        d.text = f"said at {seq}"
    d.seq, d.pts, d.latency_ms = seq, seq / 10, latency
    return d


def test_sink_copies_references_only_and_stays_bounded():
    hub = LiveHub()
    sink = hub.sink("camera")
    frames = [frame(s) for s in range(10)]
    t0 = time.perf_counter()
    for s in range(20_000):
        kind = "response" if s % 100 == 0 else "silence"
        seq = s + s // 1000  # one frame dropped by the loop every 1000: the sink counts the gaps
        sink.on_decision(decision(seq, kind), frames[s % 10])
    per_call_us = (time.perf_counter() - t0) / 20_000 * 1e6
    st = sink.state
    assert len(st.decisions) == RING and st.n_decisions == 20_000  # bounded ring, exact count
    c = st.counters
    assert (c.processed, c.responses, c.dropped) == (20_000, 200, 19)
    assert st.latest is not None and st.latest[2] is frames[19_999 % 10]  # the frame itself, not a copy
    # Building the Decision objects dominates this loop; the sink's share is a few microseconds a call.
    assert per_call_us < 200, per_call_us


def test_view_turns_decisions_into_records_frames_and_client_deltas():
    hub = LiveHub()
    sink = hub.sink("camera")
    view = StreamView(sink.state, jpeg_width=320)
    for s in range(30):
        sink.on_decision(decision(s, "response" if s == 12 else "silence", latency=float(s)), frame(s))
    sink.on_action(ActionResult(ToolCall("note", {"text": "x"}), True, 12, output={"ok": 1}))
    assert view.poll()
    assert [r["seq"] for r in view.records] == list(range(30))
    assert view.counters["responses"] == 1 and view.counters["actions"] == 1
    item = view.pending_frame()
    assert item is not None and item[0] == 30
    encoded = view.render(item)
    view.rendered(item[0], encoded)
    image = cv2.imdecode(np.frombuffer(encoded.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[1] == encoded.header["width"] >= 320
    assert encoded.header["seq"] == 29 and view.frames_skipped == 29  # only the newest frame is drawn
    assert view.pending_frame() is None

    fresh, late = Cursor(), Cursor()
    msg = view.delta(fresh)
    assert msg is not None and len(msg["decisions"]) == 30 and msg["actions"][0]["call"]["name"] == "note"
    assert msg["status"] == "live" and view.delta(fresh) is None  # nothing new: nothing sent
    sink.on_decision(decision(30), frame(30))
    view.poll()
    assert [r["seq"] for r in view.delta(fresh)["decisions"]] == [30]
    # a client far behind (records left the ring) is told how many it missed
    view.records.clear()
    view.records.append({"n": 100, "seq": 99})
    late.decisions = 10
    assert view.delta(late)["missed"] == 89


def test_streams_are_keyed_by_unique_url_safe_names():
    hub = LiveHub()
    names = [hub.sink(n).state.name for n in ("camera", "camera", "my clip.mp4", "../x")]
    assert names == ["camera", "camera-2", "my-clip.mp4", "x"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, Address("127.0.0.1", 8765)),
        ("", Address("127.0.0.1", 8765)),
        ("9000", Address("127.0.0.1", 9000)),
        (":0", Address("127.0.0.1", 0)),
        ("localhost", Address("localhost", 8765)),
        ("0.0.0.0:80", Address("0.0.0.0", 80)),
        ("[::1]:81", Address("::1", 81)),
    ],
)
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("bad", ["host:port", "1.2.3.4:70000", "[::1", "a b:1"])
def test_bad_addresses_are_one_line_errors(bad):
    with pytest.raises(ConfigError, match="--dashboard"):
        parse_address(bad)


def test_non_loopback_binds_need_the_explicit_flag():
    check_public(Address("127.0.0.1", 1), public=False)
    check_public(Address("localhost", 1), public=False)
    check_public(Address("::1", 1), public=False)
    with pytest.raises(ConfigError, match="--dashboard-public"):
        check_public(Address("0.0.0.0", 1), public=False)
    check_public(Address("0.0.0.0", 1), public=True)
    with pytest.raises(ConfigError, match="no such host"):
        check_public(Address("test-pattern.invalid", 1), public=False)


def test_dashboard_without_a_value_gets_the_default_address():
    bare = ["narrate", "x.mp4", "--dashboard"]
    assert expand_optional_values(bare) == ["narrate", "x.mp4", "--dashboard", "127.0.0.1:8765"]
    assert expand_optional_values(["robot", "--dashboard", "--seed", "3"])[1:3] == ["--dashboard", "127.0.0.1:8765"]
    assert expand_optional_values(["narrate", "--dashboard", ":0", "x"]) == ["narrate", "--dashboard", ":0", "x"]
    assert expand_optional_values(["narrate", "--", "--dashboard"]) == ["narrate", "--", "--dashboard"]
