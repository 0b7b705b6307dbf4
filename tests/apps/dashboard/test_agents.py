"""The agents on the dashboard: a robot's and a browser agent's tool calls and their results reach it, and the
robot's recording replays with its plan drawn."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from agentkit.apps.dashboard import LiveViews
from agentkit.apps.dashboard.state import StreamView

pytest.importorskip("fastapi")


def finished_view(views: LiveViews, name: str) -> StreamView:
    assert views.server is not None and views.server.runtime is not None
    return views.server.runtime.views[name]


@pytest.mark.robot
def test_robot_run_shows_its_tool_calls_results_and_camera(tmp_path):
    pytest.importorskip("gymnasium_robotics")
    from agentkit.apps.dashboard.replay import ReplayStream
    from agentkit.apps.robot import LiveConfig, run_live
    from agentkit.benchmarks.robot import POINT_LABELS

    cfg = LiveConfig(policy="pixels", seed=2, fps=10, duration_s=40, realtime=2.0, record=tmp_path / "rec")
    with LiveViews(":0", rerun=tmp_path / "robot.rrd", announce=lambda _t: None) as views:
        sinks = views.sinks("camera", hold_response=True, point_labels=POINT_LABELS)
        result = asyncio.run(run_live(cfg, sinks))
    assert result["success"], result
    view = finished_view(views, "camera")
    snap = view.snapshot()
    assert snap["status"] == "ended" and snap["frame"] is not None and view.frames_encoded > 0
    calls = [r["call"]["name"] for r in view.action_records]
    assert calls[:3] == ["home", "pick", "place"] and all(r["ok"] for r in view.action_records)
    planned = [d for d in view.records if d.get("tool_calls")]
    assert planned and {"pick", "place"} <= {c["name"] for d in planned for c in d["tool_calls"]}
    assert (tmp_path / "robot.rrd").stat().st_size > 10_000

    rec = ReplayStream(tmp_path / "rec")  # meta.json says robot: the plan's points stay drawn
    try:
        assert rec.hold_response and rec.frames == len(rec.decisions) > 0
        i = next(k for k, d in enumerate(rec.decisions) if d.tool_calls)
        jpeg, header = rec.frame(min(i + 3, rec.frames - 1))
        assert jpeg[:2] == b"\xff\xd8" and header["annotated"]
        assert json.loads(json.dumps(rec.timeline()))["counters"]["actions"] == len(calls)
    finally:
        rec.close()


@pytest.mark.browser
def test_browser_agent_clicks_show_on_the_dashboard(tmp_path):
    from agentkit.apps.browser_agent import BrowseConfig, run_browse

    page = tmp_path / "index.html"
    page.write_text(
        '<html><body style="font-family: Arial; font-size: 28px; margin: 40px"><p>Some text.</p>'
        '<button style="font-size: 28px">Cancel</button> <button style="font-size: 28px">Submit</button></body></html>'
    )
    cfg = BrowseConfig(
        url=str(page), task='Click on the "Submit" button.', policy="ocr", out=str(tmp_path / "r.gif"), steps=2
    )
    with LiveViews(":0", announce=lambda _t: None) as views:
        summary = asyncio.run(run_browse(cfg, views.sinks("page")))
    assert [a["call"]["name"] for a in summary["actions"]] == ["click"]
    view = finished_view(views, "page")
    assert [(r["call"]["name"], r["ok"]) for r in view.action_records] == [("click", True)]
    responses = [d for d in view.records if d["kind"] == "response"]
    assert responses and responses[0]["tool_calls"][0]["name"] == "click"
    assert view.frame is not None and re.match(r"\d+", str(view.frame.header["seq"]))
    assert Path(cfg.out).exists()
