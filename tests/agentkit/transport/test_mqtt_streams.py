"""The stream pool's shared pieces (issue 10 part 3a): ownership by rendezvous hashing, the membership view,
the message models and codecs, and the decision log's exactly-one-record-per-frame bookkeeping.

No broker here (the pool against real Mosquitto: ``tests/apps/serve/test_failover.py``).
"""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

from agentkit.transport.mqtt.ownership import Membership, owner, rank, ranking, weight
from agentkit.transport.mqtt.streams import (
    Coverage,
    DecisionBook,
    DecisionRecorder,
    SkipRange,
    StreamConfigMsg,
    StreamDecisionMsg,
    Topic,
    decision_topic,
    decode_frame_header,
    decode_frame_image,
    decode_json,
    encode_frame,
    encode_json,
    parse_topic,
    skip_ranges,
)
from agentkit.transport.mqtt.wire import WireError, pack

STREAMS = [f"cam{i}" for i in range(2000)]


# -- ownership -----------------------------------------------------------------------------------------------
def test_weights_are_stable_across_processes_and_python_versions():
    # fixed values: a salted hash() or a changed digest would silently give two machines different owners
    assert weight("cam1", "w1") == weight("cam1", "w1")
    assert weight("cam1", "w1") != weight("cam1", "w2") != weight("cam2", "w1")
    assert weight("cam1", "w1") == 14981248980016204227
    assert owner("cam1", ["w1", "w2", "w3"]) == ranking("cam1", ["w3", "w2", "w1"])[0]
    assert owner("cam1", []) is None and rank("cam1", ["w1"], "w9") is None


def test_streams_spread_evenly_and_only_a_leavers_streams_move():
    workers = {"w1", "w2", "w3", "w4"}
    before = {s: owner(s, workers) for s in STREAMS}
    counts = collections.Counter(before.values())
    assert all(400 <= n <= 600 for n in counts.values()), counts  # 500 each, within sampling noise
    after = {s: owner(s, workers - {"w3"}) for s in STREAMS}
    moved = {s for s in STREAMS if before[s] != after[s]}
    assert moved == {s for s in STREAMS if before[s] == "w3"}  # nobody else's streams move
    assert all(after[s] == ranking(s, workers)[1] for s in moved)  # each to its successor
    joined = {s: owner(s, workers | {"w5"}) for s in STREAMS}
    assert {s for s in STREAMS if joined[s] != before[s]} == {s for s in STREAMS if joined[s] == "w5"}


def test_membership_ignores_a_late_last_will_of_an_earlier_run():
    m = Membership()
    assert m.update("w1", True, "run1", 1.0) and m.live() == {"w1"}
    assert m.update("w1", True, "run2", 2.0) is False  # restarted: still live, new session
    assert m.update("w1", False, "run1", 3.0) is False and m.live() == {"w1"}  # run1's will, delivered late
    assert m.update("w1", False, "run2", 4.0) and m.live() == frozenset()
    assert m.update("w1", False, "run0", 5.0) is False
    assert m.update("w2", True, "a", 1.0) and m.remove("w2") and m.live() == frozenset()


# -- topics and messages --------------------------------------------------------------------------------------
def test_topics_parse_back_and_reject_wildcards_and_extra_levels():
    assert parse_topic(decision_topic("cam.1@site:a", "w-1")) == Topic("decision", "cam.1@site:a", "w-1")
    assert parse_topic("agentkit/streams/cam1/frame") == Topic("frame", "cam1")
    assert parse_topic("agentkit/workers/w1/status") == Topic("status", worker="w1")
    for bad in ("agentkit/streams/cam1/frame/x", "agentkit/streams/+/frame", "agentkit/r1/frame", "x/streams/a/frame"):
        assert parse_topic(bad) is None
    with pytest.raises(ValueError, match="bad stream name"):
        decision_topic("a/#", "w1")
    with pytest.raises(ValueError, match="bad worker id"):
        decision_topic("cam1", "w+")


def _decision(seq: int, after: int, skipped=(), **kw) -> StreamDecisionMsg:
    fields = {"stream": "cam1", "worker": "w1", "worker_session": "ws", "session": "s", "seq": seq, "after": after,
              "skipped": list(skipped), "t": 1.0, "frame_t": 1.0, "kind": "silence"}  # fmt: skip
    return StreamDecisionMsg.model_validate({**fields, **kw})


def test_a_decision_must_account_for_exactly_the_frames_since_after():
    _decision(5, 4)
    _decision(5, 1, [SkipRange(first=2, last=3, reason="dropped"), SkipRange(first=4, last=4, reason="takeover")])
    for seq, after, skipped in [
        (5, 5, []),  # after must be below seq
        (5, 2, []),  # 3..4 unaccounted
        (5, 2, [SkipRange(first=3, last=3, reason="dropped")]),  # 4 unaccounted
        (5, 2, [SkipRange(first=4, last=4, reason="dropped")]),  # 3 unaccounted
    ]:
        with pytest.raises(ValueError):
            _decision(seq, after, skipped)
    with pytest.raises(ValueError):
        SkipRange(first=4, last=3, reason="dropped")
    with pytest.raises(ValueError):
        _decision(5, 4, kind="speak")
    with pytest.raises(WireError, match="invalid"):  # strict: a string is not a number
        decode_json(StreamDecisionMsg, json.dumps({**_decision(5, 4).model_dump(), "seq": "5"}).encode())


def test_skip_ranges_merge_reasons_and_stay_bounded():
    reasons = {2: "dropped", 3: "dropped", 5: "takeover"}
    got = skip_ranges(1, 7, lambda s: reasons.get(s, "not_received"))
    assert [(r.first, r.last, r.reason) for r in got] == [(2, 3, "dropped"), (4, 4, "not_received"),
                                                           (5, 5, "takeover"), (6, 6, "not_received")]  # fmt: skip
    many = skip_ranges(0, 5000, lambda s: "dropped" if s % 2 else "takeover")
    assert len(many) == 512 and many[0].first == 1 and many[-1].last == 4999
    msg = _decision(5000, 0, many)
    assert len(encode_json(msg)) < 64 * 1024


def test_config_is_closed_against_typos():
    assert decode_json(StreamConfigMsg, b'{"t": 1.0, "instruction": "watch"}').instruction == "watch"
    with pytest.raises(WireError, match="instrucion"):
        decode_json(StreamConfigMsg, b'{"t": 1.0, "instrucion": "watch"}')


def test_frames_roundtrip_and_a_lying_header_is_refused():
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = 200
    payload = encode_frame(rgb, "sess1", 7, pts=1.5)
    header, jpeg = decode_frame_header(payload)
    assert (header.session, header.seq, header.w, header.h, header.pts) == ("sess1", 7, 64, 48, 1.5)
    back = decode_frame_image(jpeg, header)
    assert back.shape == (48, 64, 3) and abs(int(back[10, 10, 0]) - 200) < 8
    lying = pack({"session": "s", "seq": 1, "t": header.t, "w": 640, "h": 480}, jpeg)
    with pytest.raises(WireError, match="header says 640x480"):
        decode_frame_header(lying)
    with pytest.raises(WireError, match="not a JPEG or PNG"):
        decode_frame_header(pack({"session": "s", "seq": 1, "t": header.t, "w": 64, "h": 48}, b"GIF89a..."))
    with pytest.raises(WireError, match="too large"):
        decode_frame_header(b"\x00" * (4 * 1024 * 1024 + 1))


# -- the decision log -----------------------------------------------------------------------------------------
def test_coverage_claims_only_what_is_new():
    c = Coverage()
    assert c.claim(5, 5) == [(5, 5)]
    assert c.claim(1, 9) == [(1, 4), (6, 9)]
    assert c.claim(3, 7) == [] and c.spans == [[1, 9]]
    assert c.claim(12, 12) == [(12, 12)] and c.gaps() == [(10, 11)] and c.count == 10
    assert 12 in c and 10 not in c


def test_the_book_keeps_the_first_account_of_every_frame_and_reports_gaps():
    book = DecisionBook()
    recs = book.add(_decision(3, 0, [SkipRange(first=1, last=2, reason="dropped")]))
    assert [(r["seq"], r["kind"], r.get("last")) for r in recs] == [(1, "skipped", 2), (3, "silence", None)]
    # the old owner's late answer to frame 4 and the new owner's, both after 3: the first one wins
    assert [r["seq"] for r in book.add(_decision(4, 3, worker="w2"))] == [4]
    assert book.add(_decision(4, 3, worker="w1")) == [] and book.stats.duplicates == 1
    # a takeover that had not seen 5 and 6 answered: it skips them; the late answers are duplicates
    recs = book.add(_decision(7, 4, [SkipRange(first=5, last=6, reason="takeover")], worker="w2"))
    assert [(r["seq"], r["kind"]) for r in recs] == [(5, "skipped"), (7, "silence")]
    assert book.add(_decision(6, 5, worker="w1")) == [] and book.stats.duplicates == 2
    assert book.gaps() == {}
    book.add(_decision(10, 9))  # 8..9 accounted by nobody: a gap
    assert book.gaps() == {("cam1", "s"): [(8, 9)]}
    assert book.stats.decisions == 4 and book.stats.skipped["dropped"] == 2 and book.stats.skipped["takeover"] == 2


def test_the_recorder_checks_topic_against_message_and_writes_one_line_per_record(tmp_path):
    rec = DecisionRecorder("mqtt://127.0.0.1:1", tmp_path / "d.jsonl")
    rec._file = rec.out.open("a")  # no broker: messages are handed in directly
    good = encode_json(_decision(2, 0, [SkipRange(first=1, last=1, reason="dropped")]))
    assert len(rec.handle("agentkit/streams/cam1/decision/w1", good)) == 2
    assert rec.handle("agentkit/streams/cam1/decision/w2", good) == []  # w2 speaking for w1: refused
    assert rec.handle("agentkit/streams/cam9/decision/w1", good) == []  # another stream's topic
    assert rec.handle("agentkit/streams/cam1/decision/w1", b"{not json") == []
    assert rec.handle("agentkit/streams/cam1/decision/w1", good, retained=True) == []  # history before the start
    assert rec.rejected.counts == {"mismatch": 2, "invalid": 1}
    rec.handle("agentkit/workers/w1/status", b'{"online": true, "session": "a", "t": 1.0}')
    assert rec.workers.live() == {"w1"}
    rec._file.close()
    lines = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert [(x["seq"], x["kind"]) for x in lines] == [(1, "skipped"), (2, "silence")]
