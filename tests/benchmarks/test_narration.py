"""The narration matcher on hand-built decisions, the label file, and the ``eval narration`` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import agentkit.apps.cli.detector  # noqa: F401 - registers the commands
from agentkit.apps.cli.groups import app
from agentkit.benchmarks.narration import (
    LabelEvent,
    ResponseRecord,
    event_types,
    load_labels,
    load_responses,
    match_events,
)
from agentkit.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
LABELS = REPO / "configs" / "labels" / "one-by-one-person-detection.json"


def ev(t: float, kind: str) -> LabelEvent:
    return LabelEvent(t=t, type=kind)  # type: ignore[arg-type]


def resp(pts: float, kind: str) -> ResponseRecord:
    return ResponseRecord(pts, frozenset({kind}))


def test_window_edges() -> None:
    events = [ev(10.0, "arrive")]
    assert match_events(events, [resp(13.0, "arrive")]).recall == 1.0  # exactly +3 s
    assert match_events(events, [resp(13.05, "arrive")]).recall == 0.0
    assert match_events(events, [resp(9.0, "arrive")]).recall == 1.0  # exactly -1 s
    assert match_events(events, [resp(8.9, "arrive")]).recall == 0.0
    assert match_events(events, [resp(13.5, "arrive")], tolerance=4.0).recall == 1.0


def test_type_must_agree() -> None:
    r = match_events([ev(10.0, "arrive")], [resp(10.5, "leave")])
    assert (r.precision, r.recall) == (0.0, 0.0)


def test_each_event_and_response_used_once() -> None:
    # two Responses for one event: the second is spurious
    r = match_events([ev(10.0, "arrive")], [resp(10.2, "arrive"), resp(10.4, "arrive")])
    assert (r.precision, r.recall) == (0.5, 1.0)
    assert r.unmatched_responses[0].pts == 10.4
    # one Response for two close events: only one is narrated
    r = match_events([ev(10.0, "leave"), ev(11.0, "leave")], [resp(11.5, "leave")])
    assert (r.precision, r.recall) == (1.0, 0.5)


def test_greedy_picks_the_matching_that_covers_both() -> None:
    # R1 fits both events, R2 only the second: both events must be matched
    r = match_events([ev(10.0, "arrive"), ev(12.0, "arrive")], [resp(11.5, "arrive"), resp(14.5, "arrive")])
    assert r.recall == 1.0 and r.precision == 1.0
    assert r.delays == pytest.approx([1.5, 2.5])
    assert r.mean_delay == pytest.approx(2.0) and r.max_delay == pytest.approx(2.5)


def test_empty_cases() -> None:
    r = match_events([], [])
    assert (r.precision, r.recall, r.mean_delay) == (1.0, 1.0, None)
    r = match_events([ev(1.0, "arrive")], [])
    assert (r.precision, r.recall) == (1.0, 0.0)
    r = match_events([], [resp(1.0, "arrive")])
    assert (r.precision, r.recall) == (0.0, 1.0)
    with pytest.raises(ConfigError):
        match_events([], [], tolerance=-1)


def test_event_types_from_meta_and_text() -> None:
    assert event_types({"text": "A person arrived (2 people in view).", "kind": "response"}) == {"arrive"}
    assert event_types({"text": "Someone left the room."}) == {"leave"}
    assert event_types({"text": "A man walks in and sits down"}) == {"arrive"}
    assert event_types({"text": "Nothing happens."}) == frozenset()
    assert event_types({"text": "A person arrived", "meta": {"event": "leave"}}) == {"leave"}  # meta wins
    assert event_types({"text": "Motion started.", "meta": {"event": "motion_start"}}) == frozenset()
    assert event_types({"text": "x", "meta": {"event": "change"}}) == {"arrive", "leave"}
    assert event_types({"text": None}) == frozenset()


def test_load_responses(tmp_path: Path) -> None:
    p = tmp_path / "decisions.jsonl"
    rows = [
        {"seq": 0, "pts": 1.0, "kind": "silence", "text": None},
        {"seq": 1, "pts": 2.0, "kind": "standby", "text": None},
        {"seq": 2, "pts": 3.0, "kind": "response", "text": "A person arrived (1 person in view).", "meta": {}},
    ]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    got = load_responses(p)
    assert [(r.pts, set(r.types)) for r in got] == [(3.0, {"arrive"})]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"pts": 1, "kind": "silence"}\n{not json\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.jsonl:2"):
        load_responses(bad)
    bad.write_text('{"kind": "response"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="pts"):
        load_responses(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_responses(tmp_path / "missing.jsonl")


def test_shipped_label_file() -> None:
    labels = load_labels(LABELS)
    assert labels.video == "one-by-one-person-detection.mp4" and "CC BY 4.0" in labels.credit
    times = [e.t for e in labels.events]
    assert times == sorted(times) and 0 < times[0] and times[-1] < 139.5
    # six people, one at a time: arrive, leave, arrive, leave, ...
    assert [e.type for e in labels.events] == ["arrive", "leave"] * 6


def test_bad_label_file(tmp_path: Path) -> None:
    p = tmp_path / "l.json"
    p.write_text(json.dumps({"video": "v.mp4", "events": [{"t": 1.0, "type": "jump"}]}), encoding="utf-8")
    with pytest.raises(ConfigError, match="type"):
        load_labels(p)
    p.write_text("{", encoding="utf-8")
    with pytest.raises(ConfigError, match="not JSON"):
        load_labels(p)


def test_cli_eval_narration(tmp_path: Path) -> None:
    labels = load_labels(LABELS)
    dec = tmp_path / "decisions.jsonl"
    lines = []
    for i, e in enumerate(labels.events):
        text = "A person arrived (1 person in view)." if e.type == "arrive" else "A person left (no one in view)."
        if i != 3:  # miss one event
            lines.append({"seq": i, "pts": e.t + 0.5, "kind": "response", "text": text})
    lines.append({"seq": 99, "pts": 2.0, "kind": "response", "text": "A person arrived (1 person in view)."})
    dec.write_text("\n".join(json.dumps(d) for d in lines), encoding="utf-8")
    out = tmp_path / "eval.json"
    res = CliRunner().invoke(app, ["eval", "narration", str(dec), "--labels", str(LABELS), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "precision" in res.output and "missed" in res.output
    figures = json.loads(out.read_text())["overall"]
    assert figures["matched"] == 11 and figures["responses"] == 12 and figures["events"] == 12
    assert figures["recall"] == pytest.approx(11 / 12, abs=1e-4)
    assert figures["precision"] == pytest.approx(11 / 12, abs=1e-4)
    assert figures["mean_delay_s"] == pytest.approx(0.5)


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["eval", "narration", str(tmp_path / "nope.jsonl"), "--labels", str(LABELS)])
    assert res.exit_code == 1
    assert "decisions file not found" in res.output and "Traceback" not in res.output


# -- the general narrator's vocabulary: enter / leave / stop / start / count, slots per Response -----------


def test_event_vocabulary_from_meta_events() -> None:
    d = {"kind": "response", "text": "x", "meta": {"event": "change", "events": ["pass", "placed"]}}
    t = event_types(d)
    assert set(t) == {"enter", "leave", "count"}
    assert t.slots == (frozenset({"enter"}), frozenset({"leave"}), frozenset({"count"}))  # type: ignore[attr-defined]
    # a narrated arrival stands for the label types arrive or enter, in one slot
    assert event_types({"meta": {"event": "arrive"}}).slots == (frozenset({"arrive", "enter"}),)  # type: ignore[attr-defined]
    assert set(event_types({"text": "The red thing stopped in the centre."})) == {"stop"}
    assert set(event_types({"text": "The red thing started moving up."})) == {"start"}
    assert set(event_types({"text": "Something small was put down in the centre."})) == {"count"}


def test_one_slot_matches_one_event() -> None:
    arrive = ResponseRecord(10.2, event_types({"meta": {"events": ["arrive"]}}))
    r = match_events([ev(10.0, "arrive"), ev(10.0, "enter")], [arrive])
    assert len(r.matches) == 1 and r.recall == 0.5 and r.precision == 1.0
    both = ResponseRecord(10.2, event_types({"meta": {"events": ["arrive", "arrive"]}}))  # two at once
    assert match_events([ev(10.0, "enter"), ev(10.1, "enter")], [both]).recall == 1.0


def test_maximum_matching_across_types() -> None:
    # a pass (enter+leave) and a leave: the leave label must not steal the pass's only enter-capable slot
    pas = ResponseRecord(5.0, event_types({"meta": {"events": ["pass"]}}))
    leave = ResponseRecord(5.5, event_types({"meta": {"events": ["leave"]}}))
    r = match_events([ev(4.5, "enter"), ev(5.0, "leave"), ev(5.2, "leave")], [pas, leave])
    assert r.recall == 1.0 and r.precision == 1.0
    # the old single-type case is unchanged: earliest fitting Response first
    r = match_events([ev(10.0, "arrive"), ev(12.0, "arrive")], [resp(11.5, "arrive"), resp(14.5, "arrive")])
    assert [round(m.delay, 1) for m in r.matches] == [1.5, 2.5]


@pytest.mark.parametrize("name", ["one-by-one-person-detection", "bottle-detection", "yes"])
def test_every_shipped_label_file_loads(name: str) -> None:
    labels = load_labels(REPO / "configs" / "labels" / f"{name}.json")
    assert labels.events and "CC BY 4.0" in labels.credit
    times = [e.t for e in labels.events]
    assert times == sorted(times)


def test_bottle_labels_tell_seven_visits() -> None:
    labels = load_labels(REPO / "configs" / "labels" / "bottle-detection.json")
    kinds = [e.type for e in labels.events]
    # visit 3 has two hands: 8 entries, 8 exits, 8 bottles taken or put back
    assert kinds.count("enter") == 8 and kinds.count("leave") == 8 and kinds.count("count") == 8
