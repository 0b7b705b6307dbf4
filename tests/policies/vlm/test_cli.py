"""The engine's commands end to end: ``verify stream``, ``bench stream``, ``vlm build-tiny``, and
``agentkit narrate --policy vlm`` on a tiny local checkpoint (random words: this proves the wiring)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from typer.testing import CliRunner

import agentkit.apps.cli.vlm  # noqa: F401 - registers the commands
from agentkit.apps.cli.groups import app

pytestmark = pytest.mark.vlm
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(1)


def test_vlm_verify_stream_passes_and_fails_on_tolerance() -> None:
    r = CliRunner().invoke(app, ["verify", "stream", "--arch", "qwen2_vl", "--frames", "10"])
    assert r.exit_code == 0, r.output
    assert "OK" in r.output and "max |logit diff|" in r.output
    r = CliRunner().invoke(app, ["verify", "stream", "--arch", "smolvlm", "--frames", "6", "--tol", "1e-12"])
    assert r.exit_code != 0 and "differ from the full forward" in r.output


def test_vlm_cli_bad_input_is_one_line() -> None:
    r = CliRunner().invoke(app, ["verify", "stream", "--arch", "gpt2"])
    assert r.exit_code != 0 and "--arch must be one of" in r.output
    r = CliRunner().invoke(app, ["verify", "stream"])
    assert r.exit_code != 0 and "exactly one of" in r.output
    r = CliRunner().invoke(app, ["bench", "stream", "--history", "8,x"])
    assert r.exit_code != 0 and "comma-separated integers" in r.output


def test_vlm_bench_stream_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    r = CliRunner().invoke(
        app,
        [
            "bench",
            "stream",
            "--arch",
            "qwen2_5_vl",
            "--history",
            "2,6",
            "--tokens-per-frame",
            "16",
            "--frames",
            "120",
            "--repeats",
            "2",
            "--reprefill-max-history",
            "4",
            "--window-s",
            "8",
            "--json",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "vlm_stream" in r.output and "overall:" in r.output  # printed with print_report
    from agentkit.benchmarks.report import Report

    report = Report.read(out)  # the project's one report schema
    assert report.benchmark == "vlm_stream" and report.command and "git_revision" in json.loads(out.read_text())
    assert {"device", "dtype", "torch_threads", "python", "libraries"} <= set(report.environment)
    assert report.config["arch"] == "qwen2_5_vl" and report.config["histories"] == [2, 6]
    rows = report.rows
    assert [row["history"] for row in rows] == [2, 6]
    for row in rows:
        for key in (
            "arch",
            "size",
            "history",
            "tokens_per_frame",
            "incremental_ms",
            "reprefill_ms",
            "speedup",
            "decode_ms_per_token",
            "peak_mem_mb",
        ):
            assert key in row
        assert row["tokens_per_frame"] == 16 and row["incremental_ms"] > 0
    assert rows[0]["reprefill_ms"] > 0 and rows[1]["reprefill_ms"] is None and "reprefill_skipped" in rows[1]
    lr = report.overall  # the long run's figures
    assert lr["frames"] == 120 and lr["cache_tokens_at_last"] <= lr["cache_tokens_at_100"] * 1.1  # header digits only
    for key in ("step_ms_at_100", "step_ms_at_last", "mem_mb_at_100", "mem_mb_at_last"):
        assert lr[key] > 0


def test_vlm_narrate_end_to_end_with_tiny_checkpoint(tmp_path: Path) -> None:
    ck = tmp_path / "tiny"
    r = CliRunner().invoke(app, ["vlm", "build-tiny", "qwen2_vl", str(ck)])
    assert r.exit_code == 0, r.output
    assert (ck / "config.json").exists() and (ck / "tokenizer.json").exists()
    out = tmp_path / "run"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentkit.apps.cli",
            "narrate",
            "test-pattern",
            "--policy",
            "vlm",
            "--model",
            str(ck),
            "--max-frames",
            "5",
            "--out",
            str(out),
            "--no-progress",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [json.loads(x) for x in (out / "decisions.jsonl").read_text().splitlines() if x.strip()]
    assert len(lines) >= 5
    assert all(d["kind"] in ("silence", "standby", "response") for d in lines)
    assert all("probs" in d.get("meta", {}) for d in lines)


def test_vlm_verify_stream_on_video_frames() -> None:
    video = Path(__file__).resolve().parents[4] / "shared" / "data" / "videos" / "yes.mkv"
    if not video.exists():
        pytest.skip(f"{video} not present")
    r = CliRunner().invoke(app, ["verify", "stream", "--arch", "smolvlm", "--frames", "10", "--video", str(video)])
    assert r.exit_code == 0, r.output
    assert "frames of" in r.output and r.output.count("OK") == 2


def test_vlm_narrate_config_builds_the_policy(tmp_path: Path) -> None:
    from agentkit.config import NarratorConfig, load_config
    from agentkit.policies.vlm.build import build_tiny

    cfg_path = Path(__file__).resolve().parents[3] / "configs" / "vlm_narrate.yaml"
    ck = build_tiny("qwen2_vl", tmp_path / "ck")
    cfg = load_config(NarratorConfig, cfg_path, {"model": str(ck)})
    from agentkit.apps.narrator import build_policy

    pol = build_policy(cfg)
    assert pol.window.seconds == 16 and pol.decode_cfg.max_new_tokens == 48
    assert pol.decision_cfg.mode == "tokens"
