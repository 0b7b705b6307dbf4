"""`agentkit browse` end to end (stream loop + OCR policy + GUI tools + replay) and the eval CLI."""

from __future__ import annotations

import asyncio
import json
import socket
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


# ---------------------------------------------------------------------------------------------------------
# Issue 12 (6): a hung page, a stalled image, a browser that does not start - the run goes on or ends
# with one line, and the replay so far is always written.


def _replay_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


HANGS_AFTER_LOAD = PAGE.replace("</body>", "<script>setTimeout(() => { while (true) {} }, 300)</script></body>")


def test_browse_goes_on_when_the_page_hangs_and_writes_the_replay(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    page.write_text(HANGS_AFTER_LOAD)  # every load hangs 0.3 s later: a script in an endless loop
    out = tmp_path / "replay.mp4"
    cfg = BrowseConfig(
        url=str(page),
        task='Click on the "Submit" button.',
        out=str(out),
        steps=3,  # at most two frames come before the page hangs: the third is from the restarted page
        duration_s=40,
        width=640,
        height=360,
        browser={"screenshot_interval_s": 0.3, "screenshot_timeout_s": 1.5},
    )
    summary = asyncio.run(run_browse(cfg))  # before: raised "screenshot timed out", no summary
    assert any(e.startswith("page unresponsive: screenshot timed out") for e in summary["errors"]), summary
    assert summary["page"]["hangs"] >= 1 and summary["page"]["restarts"] >= 1
    assert summary["loop"]["processed"] == 3 and summary["loop_error"] is None
    assert out.exists() and _replay_frames(out) == summary["replay_frames"] >= 2


def test_browse_proceeds_past_an_image_that_never_arrives(tmp_path: Path) -> None:
    stalled = socket.create_server(("127.0.0.1", 0))  # accepts connections (kernel backlog), never answers
    page = tmp_path / "index.html"
    page.write_text(PAGE.replace("</body>", f"<img src='http://127.0.0.1:{stalled.getsockname()[1]}/x.png'></body>"))
    out = tmp_path / "replay.gif"
    cfg = BrowseConfig(
        url=str(page),
        task='Click on the "Submit" button.',
        out=str(out),
        steps=2,
        width=640,
        height=360,
        allow_hosts=["127.0.0.1"],
        browser={"nav_timeout_s": 5},
    )
    try:
        summary = asyncio.run(run_browse(cfg))  # before: "navigation ... failed: Timeout" at goto
    finally:
        stalled.close()
    assert [a["call"]["name"] for a in summary["actions"]] == ["click"]
    assert summary["blocked_requests"] == ["https://clicked.invalid/submit"]
    assert summary["errors"] == []
    assert out.exists()


@pytest.mark.parametrize(
    ("body", "browser", "why"),
    [
        (
            PAGE,
            "executable: /nonexistent/chromium",
            "chromium not found at /nonexistent/chromium (apt-get install chromium)",
        ),
        (  # a script that never lets the page reach DOMContentLoaded
            "<html><body><p>never</p><script>while (true) {}</script></body></html>",
            "nav_timeout_s: 3",
            "navigation to {url} failed: Page.goto: Timeout 3000ms exceeded.",
        ),
    ],
    ids=["browser-cannot-start", "page-never-loads"],
)
def test_browse_cli_fails_in_one_line_and_still_writes_the_replay(
    tmp_path: Path, body: str, browser: str, why: str
) -> None:
    page = tmp_path / "index.html"
    page.write_text(body)
    config = tmp_path / "browser.yaml"
    config.write_text(f"browser:\n  {browser}\n")
    out = tmp_path / "replay.mp4"
    res = CliRunner().invoke(
        app, ["browse", str(page), "--task", "Click on Submit.", "--out", str(out), "--config", str(config)]
    )
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert lines == [f"error: {why.format(url=page.as_uri())} (replay so far: {out})"]  # before: no replay
    assert _replay_frames(out) == 1  # one card saying why
