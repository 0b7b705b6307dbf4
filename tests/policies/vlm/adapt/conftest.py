"""Fixtures of the adaptation tests: robot-like recordings written by the real Recorder, their export, and a
tiny checkpoint (random weights, a tokenizer trained on the data's text) saved the way ``agentkit train`` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agentkit.recorder import Recorder
from agentkit.types import ActionResult, Decision, Frame, ToolCall


def write_episode(root: Path, seed: int) -> Path:
    """Home, then pick + place at the block and the target drawn on the frame, then Silence."""
    rng = np.random.default_rng(seed)
    img = np.full((96, 128, 3), 128, np.uint8)
    (bx, by), (tx, ty) = rng.uniform(0.15, 0.85, size=(2, 2))
    for (x, y), colour in (((bx, by), (20, 40, 220)), ((tx, ty), (220, 30, 30))):
        img[int(y * 96) - 4 : int(y * 96) + 4, int(x * 128) - 4 : int(x * 128) + 4] = colour
    rec_dir = root / f"fetch-{seed}"
    rec = Recorder(rec_dir, fps=5.0, meta={"benchmark": "robot", "env": "fetch", "policy": "pixels", "seed": seed})
    pick = ToolCall("pick", {"point": {"x": float(bx), "y": float(by)}})
    place = ToolCall("place", {"point": {"x": float(tx), "y": float(ty)}})
    plan = [
        Decision.response("clearing the view", tool_calls=[ToolCall("home", {})]),
        Decision.response("pick and place", tool_calls=[pick, place]),
        Decision.silence(text="task done"),
    ]
    for i, d in enumerate(plan):
        d.seq, d.pts = i, 0.6 * i
        rec.on_decision(d, Frame(img, t=float(i), pts=0.6 * i, seq=i))
        for call in d.tool_calls:
            rec.on_action(ActionResult(call, True, i))
    rec.close()
    return rec_dir


@pytest.fixture(scope="session")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("adapt-recordings")
    for s in range(10):
        write_episode(root, 4000 + s)
    return root


@pytest.fixture(scope="session")
def dataset(recordings: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("pyarrow")
    pytest.importorskip("datasets")
    from agentkit.policies.vlm.train.dataset import export

    out = tmp_path_factory.mktemp("adapt-ds") / "robot"
    export([recordings], out, test_fraction=0.2)
    return out


@pytest.fixture(scope="session")
def checkpoint(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny qwen2_vl checkpoint with the state tokens (random weights), saved in float32."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from agentkit.policies.vlm.train.dataset import load_dialogues
    from agentkit.policies.vlm.train.model import new_model, save
    from agentkit.policies.vlm.train.trainer import corpus_of

    t = new_model("qwen2_vl", "tiny", corpus_of(load_dialogues(dataset)), vocab_size=400, seed=0)
    return save(t, tmp_path_factory.mktemp("adapt-ck") / "tiny", dtype="float32")
