"""`agentkit browse` end to end (stream loop + OCR policy + GUI tools + replay) and the eval CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import agentkit.apps.cli.browser  # noqa: F401  (registers the commands)
from agentkit.apps.browser_agent import BrowseConfig, run_browse
from agentkit.apps.cli.groups import app

pytestmark = pytest.mark.browser

PAGE = """<html><body style="font-family: Arial; font-size: 28px; margin: 40px">
<p>Some text on the page.</p>
<button style="font-size: 28px" onclick="fetch('https://clicked.invalid/cancel').catch(() => {})">Cancel</button>
<button style="font-size: 28px" onclick="fetch('https://clicked.invalid/submit').catch(() => {})">Submit</button>
</body></html>"""


def test_browse_clicks_the_named_button_and_writes_a_replay(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text(PAGE)
    out = tmp_path / "replay.gif"
    cfg = BrowseConfig(
        url=str(page), task='Click on the "Submit" button.', policy="ocr", out=str(out), steps=2, width=640, height=360
    )
    summary = asyncio.run(run_browse(cfg))
    assert summary["responses"] == 1
    assert [a["call"]["name"] for a in summary["actions"]] == ["click"]
    # the click landed on Submit: its request (to a host off the allowlist) was blocked and reported
    assert summary["blocked_requests"] == ["https://clicked.invalid/submit"]
    assert out.exists() and summary["replay_frames"] >= 2


def test_eval_cli_json_and_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "r.json"
    res = runner.invoke(
        app,
        [
            "eval",
            "miniwob",
            "--policy",
            "oracle",
            "--tasks",
            "click-test,focus-text",
            "--episodes",
            "2",
            "--json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["overall"]["episodes"] == 4 and report["overall"]["success_rate"] == 1.0
    assert set(next(r for r in report["rows"] if r["task"] == "click-test")) >= {
        "success_rate",
        "mean_reward",
        "episodes",
        "mean_steps",
        "mean_seconds",
    }
    bad = runner.invoke(app, ["eval", "miniwob", "--tasks", "no-such-task", "--episodes", "1"])
    assert bad.exit_code != 0
    assert "unknown MiniWoB++ task(s): no-such-task" in bad.output
