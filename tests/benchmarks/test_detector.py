"""The real detector narrator (MOG2 + OpenCV's HOG people detector) on clips of the real sample videos."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentkit.benchmarks.detector import replay_video
from agentkit.benchmarks.narration import load_labels
from agentkit.envs.media.video import VideoSource
from agentkit.policy import make_policy
from agentkit.types import DecisionKind

REPO = Path(__file__).resolve().parents[2]
LABELS = REPO / "configs" / "labels" / "one-by-one-person-detection.json"


def _video(name: str) -> Path:
    for folder in (REPO / "samples", REPO.parent / "shared" / "data" / "videos"):
        if (folder / name).is_file():
            return folder / name
    pytest.skip(f"{name} not found in samples/ or ../shared/data/videos")


@pytest.mark.parametrize("backend", ["auto", "numpy"])
def test_first_arrival_and_departure_on_the_real_clip(backend: str) -> None:
    """``auto`` is OpenCV's HOG where this OpenCV has it; ``numpy`` is the port that works on any OpenCV."""
    video = _video("one-by-one-person-detection.mp4")
    events = [e for e in load_labels(LABELS).events if e.t <= 21.0]
    assert [e.type for e in events] == ["arrive", "leave"]
    policy = make_policy("detector", hog_backend=backend)
    # decode only a window: 3 s of empty room, the first person walks in, stands, walks out
    decisions, stats = replay_video(policy, video, start_s=3.0, end_s=23.0)
    assert stats.frames == pytest.approx(200, abs=2)
    resp = [d for d in decisions if d.kind is DecisionKind.RESPONSE]
    assert [d.meta["event"] for d in resp] == ["arrive", "leave"], [(d.pts, d.text) for d in resp]
    arrive, leave = resp
    assert events[0].t - 1.0 <= arrive.pts <= events[0].t + 3.0
    assert events[1].t - 1.0 <= leave.pts <= events[1].t + 3.0
    assert arrive.text == "A person arrived (1 person in view)."
    (box,) = arrive.boxes
    assert box.label == "person"
    # the person stands at the table, in the left-centre of the frame, and fills most of its height
    assert 0.3 < box.center.x < 0.7 and box.y2 - box.y1 > 0.7
    assert any(d.kind is DecisionKind.STANDBY for d in decisions if 6.0 <= d.pts < arrive.pts)
    assert all(d.kind is DecisionKind.SILENCE for d in decisions if d.pts < 5.5)
    # faster than real time even on a loaded 2-core machine (measured ~10x; allow a wide margin)
    assert stats.realtime_factor > 2.0


def test_hand_moving_bottles_is_not_a_person() -> None:
    video = _video("bottle-detection.mp4")
    policy = make_policy("detector")
    decisions, _ = replay_video(policy, video, start_s=14.0, end_s=22.0)
    texts = [d.text or "" for d in decisions if d.kind is DecisionKind.RESPONSE]
    assert texts and not any(re.search(r"\b(person|people|face)\b", t) for t in texts), texts
    assert all(b.label == "object" for d in decisions for b in d.boxes)  # a thing, never a person
    assert any(d.kind is DecisionKind.STANDBY for d in decisions)  # the hand's motion is "under way"


def _score(name: str, labels: str):
    from agentkit.benchmarks.narration import ResponseRecord, event_types, match_events

    decisions, stats = replay_video(make_policy("detector"), _video(name))
    responses = [
        ResponseRecord(d.pts, event_types(d.to_dict()), d.text or "")
        for d in decisions
        if d.kind is DecisionKind.RESPONSE
    ]
    return match_events(load_labels(REPO / "configs" / "labels" / labels).events, responses), stats


def test_general_narration_of_the_bottle_clip() -> None:
    """Hands (no person) take bottles away and put them back, 7 times: 24 labelled events."""
    result, stats = _score("bottle-detection.mp4", "bottle-detection.json")
    # measured: precision 0.875 (21/24 Responses), recall 0.958 (23/24 events), mean delay +0.46 s
    assert result.recall >= 0.85 and result.precision >= 0.8, result.to_dict()
    texts = [r.text for r in result.responses]
    assert not any(re.search(r"\b(person|people|face)\b", t) for t in texts), texts
    assert stats.realtime_factor > 1.0


def test_general_narration_of_the_sign_language_clip() -> None:
    """A man signs "yes" to a drifting hand-held camera: one person in view, nothing else happens."""
    result, _ = _score("yes.mkv", "yes.json")
    assert result.recall == 1.0 and result.precision == 1.0, result.to_dict()
    assert [r.text for r in result.responses] == ["A person is in view in the centre."]


def test_window_decoding_and_missing_file(tmp_path: Path) -> None:
    from agentkit.errors import SourceError

    video = _video("one-by-one-person-detection.mp4")
    frames = list(VideoSource(str(video), start_s=50.0, end_s=51.0).iter_frames())
    assert frames[0].pts == pytest.approx(50.0, abs=0.051) and frames[-1].pts <= 51.0 + 1e-6
    assert frames[0].image.shape == (432, 768, 3)
    with pytest.raises(SourceError, match="not found"):
        next(VideoSource(str(tmp_path / "none.mp4")).iter_frames())
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    with pytest.raises(SourceError):
        next(VideoSource(str(broken)).iter_frames())


def test_bench_detector_cli_writes_a_report_with_the_evaluation(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    import agentkit.apps.cli.detector  # noqa: F401  (registers the commands)
    from agentkit.apps.cli.groups import app

    video = _video("one-by-one-person-detection.mp4")
    args = ["bench", "detector", str(video), "--labels", str(LABELS), "--start", "3", "--end", "23"]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path), "--sheet", str(tmp_path / "s.png")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["benchmark"] == "detector" and report["command"] and "environment" in report
    assert report["overall"]["recall"] == 1.0 and report["overall"]["precision"] == 1.0
    assert [r["type"] for r in report["rows"]] == ["arrive", "leave"]
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_bench_narrate_reports_offline_and_realtime_side_by_side(tiny_clip: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    import agentkit.apps.cli.narrate  # noqa: F401  (registers the commands)
    from agentkit.apps.cli.groups import app

    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "narrate", str(tiny_clip), "--out", str(tmp_path), "--json", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert [r["mode"] for r in report["rows"]] == ["offline", "realtime"]
    assert report["rows"][0]["processed"] == report["rows"][0]["frames_in"]  # offline is lossless
    assert report["overall"]["offline_real_time_factor"] > 0
