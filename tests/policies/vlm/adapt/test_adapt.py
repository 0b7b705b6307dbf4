"""Adaptation end to end on a tiny checkpoint: MeZO and QZO lower the training loss with forward passes only;
the adapted folder loads back through the engine and streams; QZO's saved weights lie on its int grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("datasets")

from typer.testing import CliRunner

from agentkit.apps.cli.groups import app
from agentkit.policies.vlm.adapt.run import AdaptConfig, adapt
from agentkit.types import Frame

pytestmark = pytest.mark.vlm
FAST = dict(threads=1, progress=False, max_new_tokens=4, eval_every=0, batch_size=4)


def _objective(checkpoint: Path, dataset: Path, method: str = "mezo"):  # type: ignore[no-untyped-def]
    from agentkit.policies.vlm.adapt.objective import Objective
    from agentkit.policies.vlm.adapt.run import load_model, trainable
    from agentkit.policies.vlm.decide import detect_state_tokens
    from agentkit.policies.vlm.train.collate import state_token_ids
    from agentkit.policies.vlm.train.dataset import load_dialogues
    from agentkit.policies.vlm.train.trainer import frame_loader

    cfg = AdaptConfig(model=str(checkpoint), data=dataset, out=dataset.parent / "unused", method=method)
    loaded, _ = load_model(cfg)
    adapter = loaded.adapter
    names = detect_state_tokens(adapter)
    assert names is not None
    obj = Objective(adapter, state_token_ids(adapter, names), frame_loader(dataset))
    return obj, trainable(cfg, adapter.model), load_dialogues(dataset, "train")


@pytest.mark.parametrize(("method", "lr"), [("mezo", 3e-3), ("qzo", 3e-2)])
def test_zeroth_order_steps_lower_a_tiny_models_loss(checkpoint: Path, dataset: Path, method: str, lr: float) -> None:
    import torch

    from agentkit.policies.vlm.adapt.mezo import ZeroOrder

    torch.set_num_threads(1)
    obj, params, train = _objective(checkpoint, dataset, method)
    enc = obj.encode(train[:2])
    before = obj(enc)
    assert before.targets > 0 and before.state_tokens == 6
    again = obj(enc)
    assert again.loss == before.loss  # forward only, deterministic: the two probes see the same function
    zo = ZeroOrder(params, eps=1e-3, lr=lr, seed=0)
    for _ in range(20):
        zo.step(lambda: obj(enc).loss)
    after = obj(enc)
    assert after.loss < before.loss - 0.1, (before.loss, after.loss)  # measured: -0.3 to -0.7 over seeds 0-2


def test_micro_batches_give_the_same_loss(checkpoint: Path, dataset: Path) -> None:
    obj, _, train = _objective(checkpoint, dataset)
    enc = obj.encode(train[:4])
    whole = obj(enc)
    obj.micro_batch = 1
    parts = obj(enc)
    assert parts.targets == whole.targets and abs(parts.loss - whole.loss) < 1e-5


def test_qzo_adapts_saves_and_loads_back_through_the_engine(checkpoint: Path, dataset: Path, tmp_path: Path) -> None:
    import torch

    from agentkit.policies.robot.vlm import FetchVLMPolicy
    from agentkit.policies.vlm.adapt.quant import quantize_weight
    from agentkit.policies.vlm.loading import load

    out = tmp_path / "qzo"
    s = adapt(AdaptConfig(model=str(checkpoint), data=dataset, out=out, method="qzo", steps=4, lr=3e-2, **FAST))
    assert s["steps"] == 4 and s["quantized"]["layers"] > 0 and s["trainable_values"] < s["model_values"] / 10
    for name in ("config.json", "model.safetensors", "tokenizer.json", "agentkit_vlm.json"):
        assert (out / name).exists(), name
    assert len((out / "adaptation" / "log.jsonl").read_text().splitlines()) == 4
    meta = json.loads((out / "agentkit_vlm.json").read_text())
    assert meta["adaptation"]["method"] == "qzo" and meta["adaptation"]["steps"] == 4
    before_ft = load(str(checkpoint)).adapter.model
    after = load(str(out)).adapter.model
    moved = 0
    for (name, w0), (_, w1) in zip(before_ft.named_parameters(), after.named_parameters(), strict=True):
        if not name.endswith("weight") or w1.ndim != 2 or "lm_head" in name or "embed" in name:
            continue
        q0, s0 = quantize_weight(w0, 8)
        q1, s1 = quantize_weight(w1, 8)
        assert torch.equal(q0, q1), name  # the integers never moved: only the scales
        moved += int(not torch.allclose(s0, s1))
    assert moved > 0
    policy = FetchVLMPolicy(model=str(out), max_new_tokens=4)  # the engine streams the adapted checkpoint
    for i in range(2):
        d = policy.step(Frame(np.full((96, 128, 3), 60 * i, np.uint8), t=float(i), pts=float(i), seq=i))
        assert not [e for e in d.errors if "failed" in e]
    policy.close()


def test_mezo_run_writes_log_summary_and_a_checkpoint(checkpoint: Path, dataset: Path, tmp_path: Path) -> None:
    import hashlib

    def digest() -> str:  # float32 weights may be mapped from the file: in-place steps must never write it
        return hashlib.sha256((checkpoint / "model.safetensors").read_bytes()).hexdigest()

    source = digest()
    out = tmp_path / "mezo"
    s = adapt(AdaptConfig(model=str(checkpoint), data=dataset, out=out, method="mezo", steps=3, lr=1e-3, **FAST))
    assert s["steps"] == 3 and s["trainable_values"] == s["model_values"] and s["steps_per_s"] > 0
    assert s["before"]["held_out"]["targets"] > 0 and s["after"]["metrics"]["states"]["accuracy"] >= 0
    assert s["memory_mb"]["peak_during_steps"] > 0
    summary = json.loads((out / "adaptation" / "summary.json").read_text())
    assert summary["config"]["method"] == "mezo"
    rows = [json.loads(x) for x in (out / "adaptation" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and all("seed" in r and "grad" in r for r in rows)
    assert digest() == source


def test_cli_adapt_from_recordings_and_one_line_errors(checkpoint: Path, recordings: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    args = ["adapt", "--model", str(checkpoint), "--data", str(recordings), "--out", str(out), "--steps", "2",
            "--threads", "1", "--no-final-eval", "--method", "qzo", "--bits", "4"]  # fmt: skip
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout[: res.stdout.rindex("}") + 1])["steps"] == 2
    assert (out / "model.safetensors").exists()
    bad = runner.invoke(app, [*args[:-4], "--method", "sgd"])
    assert bad.exit_code == 1 and "method" in bad.output and "Traceback" not in bad.output
    same = runner.invoke(
        app, ["adapt", "--model", str(checkpoint), "--data", str(recordings), "--out", str(checkpoint)]
    )
    assert same.exit_code == 1 and "--out must differ" in same.output
    nodata = runner.invoke(app, ["adapt", "--model", str(checkpoint), "--data", str(tmp_path), "--out", str(out)])
    assert nodata.exit_code == 1 and "neither an exported dataset" in nodata.output


def test_the_source_checkpoints_own_facts_carry_over(checkpoint: Path, dataset: Path, tmp_path: Path) -> None:
    import shutil

    from agentkit.errors import ConfigError

    src = tmp_path / "src"
    shutil.copytree(checkpoint, src)
    meta = json.loads((src / "agentkit_vlm.json").read_text())
    (src / "agentkit_vlm.json").write_text(json.dumps({**meta, "prompt_style": "full", "training": {"steps": 7}}))
    out = tmp_path / "out"
    adapt(AdaptConfig(model=str(src), data=dataset, out=out, steps=1, final_eval=False, **FAST))
    got = json.loads((out / "agentkit_vlm.json").read_text())
    assert got["prompt_style"] == "full" and got["training"] == {"steps": 7} and got["source"] == str(src)
    assert got["adaptation"]["method"] == "mezo" and got["dtype"] == "float32"
    (src / "agentkit_vlm.json").write_text(json.dumps({**meta, "prompt_style": "compact"}))
    with pytest.raises(ConfigError, match="prompt_style='full' but the checkpoint was trained with 'compact'"):
        adapt(AdaptConfig(model=str(src), data=dataset, out=tmp_path / "x", steps=1, **FAST))


def test_a_blow_up_is_undone_from_the_seed_log(checkpoint: Path, dataset: Path, tmp_path: Path) -> None:
    """A far too large learning rate: the run backs off to its best point and ends no worse than it began."""
    out = tmp_path / "blowup"
    cfg = {**FAST, "eval_every": 2}
    s = adapt(AdaptConfig(model=str(checkpoint), data=dataset, out=out, steps=6, lr=3.0, final_eval=False, **cfg))
    assert s["backtracks"] >= 1
    rows = [json.loads(x) for x in (out / "adaptation" / "eval.jsonl").read_text().splitlines()]
    assert any("backtrack_to" in r for r in rows)
    start = s["before"]["held_out"]["loss"]
    assert s["after"]["held_out"]["loss"] <= start + 1e-3, (start, s["after"]["held_out"]["loss"])
