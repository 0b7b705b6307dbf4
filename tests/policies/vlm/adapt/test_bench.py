"""``agentkit bench adapt``: every mode measured in its own process, on the same model and batches."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("datasets")

from typer.testing import CliRunner

from agentkit.apps.cli.groups import app
from agentkit.benchmarks.adapt import MODES, parse_text_size
from agentkit.benchmarks.report import Report
from agentkit.errors import ConfigError

pytestmark = pytest.mark.vlm


@pytest.mark.slow
def test_bench_adapt_measures_every_mode(checkpoint: Path, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "adapt.json"
    res = CliRunner().invoke(
        app,
        ["bench", "adapt", "--model", str(checkpoint), "--data", str(dataset), "--steps", "1", "--batch-size", "2",
         "--json", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = Report.read(out)
    assert report.benchmark == "adapt_memory"
    rows = {r["mode"]: r for r in report.rows}
    assert set(rows) == set(MODES)
    for r in rows.values():
        assert r["peak_mb"] >= r["rss_loaded_mb"] * 0.9 > 0 and r["lifetime_peak_mb"] >= r["peak_mb"] * 0.99
        assert r["peak_is_phase"] and r["seconds_per_step"] > 0
    assert rows["inference"]["ratio_to_inference"] == 1.0
    assert rows["mezo"]["trainable"] == rows["mezo"]["values"] and rows["qzo"]["trainable"] < rows["qzo"]["values"]
    assert rows["backprop"]["trainable"] == rows["inference"]["values"]
    assert rows["qzo"]["weights_mb"] < rows["mezo"]["weights_mb"]
    o = report.overall
    assert {"mezo_over_inference", "qzo_over_inference", "backprop_over_inference"} <= set(o)
    assert o["adaptation_within_target"] == (max(o["mezo_over_inference"], o["qzo_over_inference"]) <= 1.3)


def test_text_size_is_checked() -> None:
    assert parse_text_size("1024x2816x16") == (1024, 2816, 16)
    for bad in ("1024x2816", "100x10x2", "ax1x1"):
        with pytest.raises(ConfigError, match="--text-size"):
            parse_text_size(bad)
