"""Fixtures of the training tests: small recordings written by the real Recorder, and their export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agentkit.recorder import Recorder
from agentkit.types import ActionResult, Decision, Frame, ToolCall


def scene(seed: int, h: int = 96, w: int = 128) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """A grey table with a blue block and a red target at seeded places; their normalized centres."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 128, np.uint8)
    (bx, by), (tx, ty) = rng.uniform(0.15, 0.85, size=(2, 2))
    for (x, y), colour in (((bx, by), (20, 40, 220)), ((tx, ty), (220, 30, 30))):
        cx, cy = int(x * w), int(y * h)
        img[cy - 4 : cy + 4, cx - 4 : cx + 4] = colour
    return img, (float(bx), float(by)), (float(tx), float(ty))


def write_robot_episode(root: Path, seed: int, live: bool = False) -> Path:
    """A Fetch-like recording: home, (Standby while busy when live), pick+place, Silence when done."""
    img, block, target = scene(seed)
    rec_dir = root / f"fetch-{seed}"
    meta = {"benchmark": "robot", "env": "fetch", "policy": "pixels", "seed": seed}
    if live:
        meta = {"app": "robot", "task": "put the block on the target", "policy": "pixels"}
    rec = Recorder(rec_dir, fps=5.0, meta=meta)
    pick = ToolCall("pick", {"point": {"x": block[0], "y": block[1]}})
    place = ToolCall("place", {"point": {"x": target[0], "y": target[1]}})
    plan: list[Decision] = [Decision.response("clearing the view", tool_calls=[ToolCall("home", {})])]
    if live:
        plan += [Decision.standby(text="robot busy") for _ in range(3)]
    plan.append(Decision.response("pick and place", tool_calls=[pick, place]))
    if live:
        plan += [Decision.standby(text="robot busy") for _ in range(4)]
    plan.append(Decision.silence(text="task done"))
    for i, d in enumerate(plan):
        d.seq, d.pts = i, 0.6 * i
        rec.on_decision(d, Frame(img, t=float(i), pts=0.6 * i, seq=i))
        for call in d.tool_calls:
            rec.on_action(ActionResult(call, True, i))
    rec.close()
    return rec_dir


def write_gui_episode(root: Path, seed: int) -> Path:
    """A MiniWoB-like recording (one frame, one click) with the utterance in episode.json."""
    img, block, _ = scene(seed, 126, 96)
    rec_dir = root / f"click-test-{seed}"
    rec = Recorder(rec_dir, fps=2.0, meta={"benchmark": "miniwob", "task": "click-test", "seed": seed})
    d = Decision.response(None, tool_calls=[ToolCall("click", {"point": {"x": block[0], "y": block[1]}})])
    d.seq, d.pts = 0, 3.2
    rec.on_decision(d, Frame(img, t=0.0, pts=3.2, seq=0))
    rec.close()
    (rec_dir / "episode.json").write_text(json.dumps({"instruction": "Click the button.", "seed": seed}))
    return rec_dir


@pytest.fixture(scope="session")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight turn-based and two live robot recordings, and three GUI ones."""
    root = tmp_path_factory.mktemp("recordings")
    for s in range(8):
        write_robot_episode(root / "fetch", 1000 + s)
    for s in range(2):
        write_robot_episode(root / "live", 2000 + s, live=True)
    for s in range(3):
        write_gui_episode(root / "gui", 3000 + s)
    return root


@pytest.fixture(scope="session")
def robot_dataset(recordings: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The robot recordings exported (a quarter held out), tools described compactly (as the shipped ones)."""
    pytest.importorskip("pyarrow")
    pytest.importorskip("datasets")
    from agentkit.policies.vlm.train.dataset import export

    out = tmp_path_factory.mktemp("ds") / "robot"
    export([recordings / "fetch", recordings / "live"], out, test_fraction=0.25, prompt_style="compact")
    return out
