"""Recordings -> Streamo dialogues: labels, frames, questions, fps sampling, splits, stats and the CLI."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("datasets")

from typer.testing import CliRunner

from agentkit.apps.cli.groups import app
from agentkit.errors import ConfigError
from agentkit.policies.vlm.train.dataset import (
    answer_text,
    export,
    load_dialogues,
    prompt_for,
    select_frames,
    split_of,
)


def test_answer_is_the_canonical_tool_call_text() -> None:
    from agentkit.parsing import parse_response

    d = {"kind": "response", "text": "pick it", "tool_calls": [
        {"name": "pick", "arguments": {"point": {"x": 0.48906, "y": 0.39375}}},
        {"name": "place", "arguments": {"point": {"x": 0.6, "y": 0.731}}},
    ]}  # fmt: skip
    text = answer_text(d)
    assert text == (
        '<tool_call>\n{"name": "pick", "arguments": {"point": [0.49, 0.39]}}\n</tool_call>\n'
        '<tool_call>\n{"name": "place", "arguments": {"point": [0.6, 0.73]}}\n</tool_call>'
    )
    back = parse_response(text)  # the engine's parser reads it back to normalized points
    assert [c.name for c in back.tool_calls] == ["pick", "place"] and not back.errors
    assert back.tool_calls[0].arguments["point"] == {"x": 0.49, "y": 0.39}
    assert answer_text(d, keep_text=True).startswith("pick it\n<tool_call>")
    assert answer_text({"kind": "response", "text": "A person arrived."}) == "A person arrived."


def test_frames_kept_at_a_fixed_rate_plus_every_response_and_change() -> None:
    kinds = ["response"] + ["standby"] * 9 + ["response"] + ["standby"] * 4 + ["silence"] * 5
    ds = [{"kind": k, "pts": 0.1 * i} for i, k in enumerate(kinds)]
    kept = select_frames(ds, fps=2.0)
    assert kept[:2] == [0, 1]  # the first frame, then the change of state
    assert 10 in kept and 15 in kept  # the second Response and the change to silence
    assert all(
        ds[b]["pts"] - ds[a]["pts"] >= 0.5 - 1e-6
        for a, b in itertools.pairwise(kept[1:])
        if ds[b]["kind"] == ds[a]["kind"] == "standby"
    )
    assert select_frames(ds, None) == list(range(len(ds)))


def test_export_writes_dialogues_frames_and_a_datasheet(recordings: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    st = export([recordings], out, test_fraction=0.3)
    for name in ("dialogues.parquet", "dialogues.jsonl", "stats.json", "datasheet.md"):
        assert (out / name).exists(), name
    ds = load_dialogues(out)
    assert len(ds) == st["episodes"] == 13
    by_id = {d.id: d for d in ds}
    turn_based = by_id["fetch-1000"]
    assert [t.state for t in turn_based.turns] == ["response", "response", "silence"]
    assert turn_based.turns[0].question is None  # eval fetch gives the single-block world no instruction
    assert (turn_based.system, turn_based.instruction) == prompt_for("robot")
    assert '"name": "home"' in turn_based.turns[0].answer and turn_based.turns[2].answer == ""
    assert [c["name"] for c in turn_based.turns[1].calls] == ["pick", "place"]
    live = by_id["fetch-2000"]  # the robot app gives its task at stream time 0: a question in turn one
    assert live.turns[0].question == "put the block on the target"
    assert {t.state for t in live.turns} == {"response", "standby", "silence"}
    gui = by_id["click-test-3000"]
    assert gui.domain == "gui" and gui.task == "click-test" and gui.turns[0].question == "Click the button."
    assert (gui.system, gui.instruction) == prompt_for("gui")
    assert "Tools:\n{" in gui.system  # full: the tools' JSON schemas (the default)
    compact = export([recordings / "gui"], tmp_path / "compact", prompt_style="compact")
    assert compact["export"]["prompt_style"] == "compact"
    small = load_dialogues(tmp_path / "compact")[0].system
    assert small == prompt_for("gui", "compact")[0] and "click(point, button, hold):" in small
    assert len(small) < len(gui.system) / 4
    assert all((out / t.frame).exists() for d in ds for t in d.turns)
    assert st["states"]["response"] == 8 * 2 + 2 * 2 + 3 and st["tasks"]["click-test"]["episodes"] == 3
    assert st["calls"]["pick"] == 10
    assert {d.split for d in ds} == {"train", "test"}
    assert sum(st["splits"][s]["episodes"] for s in ("train", "test")) == 13
    assert "| all | 13 |" in (out / "datasheet.md").read_text()
    with pytest.raises(ConfigError, match="earlier run"):
        export([recordings], out)
    export([recordings / "gui"], out, force=True)  # --force replaces the earlier export
    assert len(load_dialogues(out)) == 3


def test_split_is_stable_and_proportional() -> None:
    ids = [f"fetch-{i}" for i in range(2000)]
    test = [i for i in ids if split_of(i, 0.1) == "test"]
    assert 150 < len(test) < 250
    assert test == [i for i in ids if split_of(i, 0.1) == "test"]


def test_export_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such recording"):
        export([tmp_path / "missing"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no recordings"):
        export([tmp_path / "empty"], tmp_path / "out")
    with pytest.raises(ConfigError, match="fps"):
        export([tmp_path / "empty"], tmp_path / "out", fps=-1)
    with pytest.raises(ConfigError, match="not an exported dataset"):
        load_dialogues(tmp_path)


def test_cli_export_and_stats(recordings: Path, tmp_path: Path) -> None:
    import agentkit.apps.cli.train  # noqa: F401 - registers the commands

    out = tmp_path / "ds"
    r = CliRunner().invoke(app, ["data", "export", str(recordings / "fetch"), "--out", str(out), "--fps", "2"])
    assert r.exit_code == 0, r.output
    assert '"episodes": 8' in r.output and "| fetch | 8 |" in r.output
    r = CliRunner().invoke(app, ["data", "stats", str(out), "--json", str(tmp_path / "st.json")])
    assert r.exit_code == 0, r.output
    st = json.loads((tmp_path / "st.json").read_text())
    assert st["states"] == {"silence": 8, "standby": 0, "response": 16} and st["export"]["fps"] == 2.0
    r = CliRunner().invoke(app, ["data", "export", str(tmp_path / "nope"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 1 and "error: no such recording folder" in r.output


def test_successful_only_leaves_out_the_episodes_the_report_marks_failed(recordings: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "rec"
    shutil.copytree(recordings / "fetch", root)  # seeds 1000..1007, as `eval fetch --record` lays them out
    rows = [{"seed": 1000 + s, "success": s != 2, "instruction": ""} for s in range(8)]
    (root / "eval.json").write_text(json.dumps({"benchmark": "robot", "episodes": rows}))
    st = export([root], tmp_path / "all")
    assert st["episodes"] == 8  # off by default: every recording is kept
    st = export([root], tmp_path / "ok", successful_only=True)
    assert st["episodes"] == 7
    assert [Path(p).name for p in st["export"]["failed_left_out"]] == ["fetch-1002"]
    assert "failed episodes left out (`--successful-only`): 1" in (tmp_path / "ok" / "datasheet.md").read_text()
    assert "fetch-1002" not in {d.id for d in load_dialogues(tmp_path / "ok")}
