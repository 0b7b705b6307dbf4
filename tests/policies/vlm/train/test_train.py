"""Export -> train a few steps -> load with the engine -> stream -> evaluate, on tiny models; resume; LoRA."""

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
from agentkit.policies.vlm.train.trainer import TrainConfig, train
from agentkit.types import Frame

pytestmark = pytest.mark.vlm
FAST = dict(preset="tiny", batch_size=2, eval_dialogues=2, progress=False, max_new_tokens=6, threads=1, log_every=1)


@pytest.fixture(scope="module")
def trained(robot_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ck") / "fetch-tiny"
    summary = train(
        TrainConfig(data=robot_dataset, out=out, arch="qwen2_vl", steps=4, eval_every=2, save_every=2, **FAST)
    )
    return out, summary


def test_a_trained_checkpoint_is_a_complete_folder(trained: tuple[Path, dict]) -> None:
    out, summary = trained
    for name in ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json", "agentkit_vlm.json"):
        assert (out / name).exists(), name
    for name in ("log.jsonl", "eval.jsonl", "final_eval.json", "summary.json", "curves.png", "last/optimizer.pt"):
        assert (out / "training" / name).exists(), name
    assert summary["steps"] == 4 and summary["samples_per_s"] > 0 and summary["resumed_from"] is None
    final = summary["final_eval"]
    assert set(final["states"]) >= {"silence", "standby", "response", "accuracy", "confusion"}
    assert final["responses"]["n"] > 0 and final["dialogues"] == summary["test_dialogues"]
    meta = json.loads((out / "agentkit_vlm.json").read_text())
    assert meta["trained"] and meta["arch"] == "qwen2_vl" and meta["dtype"] == "float16"
    assert meta["prompt_style"] == "compact"  # what the data was exported with
    last = json.loads((out / "training" / "last" / "agentkit_vlm.json").read_text())
    assert last["prompt_style"] == "compact"  # the resumable checkpoint runs with the same prompt
    rows = [json.loads(x) for x in (out / "training" / "eval.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]


def test_the_engine_loads_and_streams_it_with_its_cache(trained: tuple[Path, dict]) -> None:
    from agentkit.policies.robot.vlm import FetchVLMPolicy
    from agentkit.policies.vlm.verify import stream_and_compare

    out, _ = trained
    from agentkit.policies.robot.vlm import robot_system_prompt

    policy = FetchVLMPolicy(model=str(out), max_new_tokens=6)
    assert policy.vlm.decision_cfg.mode == "tokens"  # it has the state tokens: no zero-shot probe
    assert policy.prompt_style == "compact" and policy.vlm.prompt == robot_system_prompt("compact")
    assert FetchVLMPolicy(model=str(out), prompt_style="full").vlm.prompt == robot_system_prompt("full")
    sizes = []
    for i in range(3):
        d = policy.step(Frame(np.full((96, 128, 3), 60 * i, np.uint8), t=float(i), pts=float(i), seq=i))
        assert not [e for e in d.errors if "failed" in e]
        sizes.append(d.meta["cache_tokens"])
    assert sizes[0] < sizes[1] < sizes[2]  # one persistent cache, growing by each frame's own tokens
    for window in (None, 40):
        res = stream_and_compare(str(out), frames=6, window_tokens=window)
        assert res.report.ok(1e-4), res.report


def test_training_resumes_from_its_last_checkpoint(robot_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "ck"
    first = train(
        TrainConfig(data=robot_dataset, out=out, arch="qwen2_vl", steps=2, eval_every=0, save_every=1, **FAST)
    )
    assert first["steps"] == 2
    second = train(
        TrainConfig(data=robot_dataset, out=out, arch="qwen2_vl", steps=3, eval_every=0, save_every=1, **FAST)
    )
    assert second["resumed_from"] == 2 and second["steps"] == 3
    steps = [json.loads(x)["step"] for x in (out / "training" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_lora_on_a_checkpoint_without_state_tokens(robot_dataset: Path, tmp_path: Path) -> None:
    from agentkit.policies.vlm.build import build_tiny
    from agentkit.policies.vlm.policy import VLMPolicy

    base = build_tiny("qwen2_vl", tmp_path / "base", state_tokens=())
    out = tmp_path / "lora"
    summary = train(
        TrainConfig(data=robot_dataset, out=out, model=str(base), lora=True, steps=2, eval_every=0, state_loss="ce",
                    **{k: v for k, v in FAST.items() if k != "preset"})
    )  # fmt: skip
    assert summary["lora"] and 0 < summary["trainable_parameters"] < summary["parameters"]
    policy = VLMPolicy(model=str(out), max_new_tokens=4)  # merged and saved: a plain checkpoint again
    assert policy.decision_cfg.mode == "tokens"
    assert policy.step(Frame(np.zeros((48, 64, 3), np.uint8), t=0.0, pts=0.0, seq=0)).kind.value in {
        "silence", "standby", "response"
    }  # fmt: skip


def test_cli_train_and_data_eval(robot_dataset: Path, tmp_path: Path) -> None:
    import agentkit.apps.cli.train  # noqa: F401 - registers the commands

    out = tmp_path / "ck"
    args = ["train", "--data", str(robot_dataset), "--out", str(out), "--arch", "qwen2_vl", "--preset", "tiny"]
    r = CliRunner().invoke(app, [*args, "--steps", "2", "--batch-size", "2", "--eval-every", "0", "--threads", "1"])
    assert r.exit_code == 0, r.output
    assert '"steps": 2' in r.output and (out / "model.safetensors").exists()
    r = CliRunner().invoke(app, ["data", "eval", str(robot_dataset), "--model", str(out), "--no-responses"])
    assert r.exit_code == 0, r.output
    assert '"states"' in r.output and '"responses"' not in r.output
    r = CliRunner().invoke(app, ["train", "--data", str(robot_dataset), "--out", str(out), "--arch", "qwen2_vl",
                                 "--model", str(out)])  # fmt: skip
    assert r.exit_code == 1 and "exactly one of arch" in r.output


@pytest.mark.robot
def test_a_trained_checkpoint_runs_a_fetch_episode(trained: tuple[Path, dict]) -> None:
    import asyncio

    from agentkit.benchmarks.robot import EvalConfig, evaluate

    out, _ = trained
    report = asyncio.run(evaluate(EvalConfig(policy="vlm", model=str(out), episodes=1, seed=0, max_steps=40,
                                             max_decisions=4)))  # fmt: skip
    assert report.episodes[0]["decisions"] > 0
