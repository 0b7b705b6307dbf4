"""Training inputs equal what the engine appends to its cache: same tokens, same positions, same labels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentkit.policies.vlm.train.collate import IGNORE, collate, encode_dialogue, state_token_ids  # noqa: E402
from agentkit.policies.vlm.train.dataset import Dialogue, Turn, prompt_for  # noqa: E402

NAMES = ("<silence>", "<standby>", "<response>")
ANSWER = '<tool_call>\n{"name": "pick", "arguments": {"point": [0.42, 0.37]}}\n</tool_call>'
CALLS = [{"name": "pick", "arguments": {"point": {"x": 0.42, "y": 0.37}}}]


def _loaded(arch: str) -> Any:
    from agentkit.policies.vlm.architectures import get_arch
    from agentkit.policies.vlm.build import build_model
    from agentkit.policies.vlm.loading import Loaded

    model, tok, proc = build_model(arch)
    return Loaded(arch, get_arch(arch).make_adapter(model, tok, proc), "memory")


def _dialogue() -> tuple[Dialogue, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    frames = {f"f{i}.png": rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for i in range(4)}
    system, instruction = prompt_for("robot")
    turns = [
        Turn(0.0, "f0.png", "standby", question="  put the block on the target "),
        Turn(0.6, "f1.png", "standby"),
        Turn(1.3, "f2.png", "response", answer=ANSWER, calls=CALLS),
        Turn(2.4, "f3.png", "silence"),
    ]
    return Dialogue("d0", "robot", "fetch", 0, "train", "", system, instruction, turns), frames


@pytest.mark.parametrize("arch", ["qwen2_vl", "smolvlm"])
def test_training_tokens_and_positions_equal_the_engine_transcript(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import agentkit.policies.vlm.policy as policy_mod
    from agentkit.policies.vlm.decide import choose as real_choose
    from agentkit.policies.vlm.decode import DecodeResult
    from agentkit.policies.vlm.policy import VLMPolicy
    from agentkit.types import DecisionKind, Frame

    loaded = _loaded(arch)
    adapter = loaded.adapter
    dialogue, frames = _dialogue()
    sid = state_token_ids(adapter, NAMES)
    enc = encode_dialogue(adapter, dialogue, frames.__getitem__, sid)

    # the engine, made to decide the labeled states and to "generate" the labeled answer
    script = iter([DecisionKind(t.state) for t in dialogue.turns])

    def scripted_choose(logits: Any, ids: Any, cfg: Any) -> Any:
        _, probs = real_choose(logits, ids, cfg)
        return next(script), probs

    def scripted_decode(session: Any, first: Any, cfg: Any, eos: Any, *args: Any, **kw: Any) -> DecodeResult:
        ids = adapter.text_ids(ANSWER)
        for i in ids:
            session.append([[i]])
        return DecodeResult(ANSWER, ids, next(iter(eos)), "eos", 0.0, None)

    monkeypatch.setattr(policy_mod, "choose", scripted_choose)
    monkeypatch.setattr(policy_mod, "decode", scripted_decode)
    pol = VLMPolicy(loaded=loaded, prompt=dialogue.system, instruction=dialogue.instruction, record=True)
    for i, turn in enumerate(dialogue.turns):
        if turn.question:
            pol.instruct(turn.question, turn.pts)
        d = pol.step(Frame(frames[turn.frame], t=turn.pts, pts=turn.pts, seq=i))
        assert d.kind.value == turn.state and not [e for e in d.errors if "failed" in e]
    engine_ids = [i for r in pol.session.trace if not r.probe for i in r.chunk.ids]
    engine_pos = torch.cat([r.positions for r in pol.session.trace if not r.probe], dim=1)
    # the engine appends the last turn's state token and close lazily, with the next frame
    close = len(adapter.text_ids(adapter.template.turn_close))
    train_ids = enc.prefix.ids + enc.rest.ids[: -(close + 1)]
    assert engine_ids == train_ids
    assert torch.equal(engine_pos, enc.positions[:, : len(train_ids)])
    # labels: the three state tokens and the answer + its end, nothing from the user turns
    targets = [(j, t) for j, t in enumerate(enc.labels) if t != IGNORE]
    state_marks = [enc.states[j] for j, _ in targets if enc.states[j] >= 0]
    assert state_marks == [1, 1, 2, 0]
    answer = adapter.text_ids(ANSWER)
    assert [t for j, t in targets if enc.states[j] < 0] == [*answer, adapter.text_ids(adapter.template.turn_close)[0]]
    assert all(enc.rest.types[j] == 0 for j, _ in targets)


@pytest.mark.parametrize("arch", ["qwen2_vl", "smolvlm"])
def test_pointers_link_each_coordinate_token_to_the_image_token_of_its_point(arch: str) -> None:
    from agentkit.policies.vlm.train.collate import image_grid

    adapter = _loaded(arch).adapter
    dialogue, frames = _dialogue()
    enc = encode_dialogue(adapter, dialogue, frames.__getitem__, state_token_ids(adapter, NAMES))
    pieces = [adapter.tokenizer.decode([enc.rest.ids[q]]) for q, _ in enc.pointers]
    assert pieces[0].endswith("[") and "".join(pieces[1:]).replace(" ", "") == "0.42,0.37"
    keys = {k for _, k in enc.pointers}
    assert len(keys) == 1 and enc.rest.types[keys.pop()] == 1  # one image token, the point's
    # it lies in the third frame (the Response's), at the point's row and column of the token grid
    starts = [j for j in range(len(enc.rest.types)) if enc.rest.types[j] == 1 and enc.rest.types[j - 1] == 0]
    rows, cols = image_grid(adapter, adapter.frame_chunk(frames["f2.png"]))
    want = starts[2] + min(int(0.37 * rows), rows - 1) * cols + min(int(0.42 * cols), cols - 1)
    assert enc.pointers[0][1] == want


@pytest.mark.parametrize("arch", ["qwen2_vl", "smolvlm"])
def test_batch_shares_the_prefix_and_pads_rows(arch: str) -> None:
    from agentkit.policies.vlm.train.collate import forward

    loaded = _loaded(arch)
    adapter = loaded.adapter
    dialogue, frames = _dialogue()
    short = Dialogue(**{**dialogue.__dict__, "turns": dialogue.turns[:2]})
    sid = state_token_ids(adapter, NAMES)
    encs = [encode_dialogue(adapter, d, frames.__getitem__, sid) for d in (dialogue, short)]
    pad = adapter.tokenizer.pad_token_id
    batch = collate(encs, pad, adapter.pos_axes)
    n0, n1 = len(encs[0].rest.ids), len(encs[1].rest.ids)
    assert batch.ids.shape == (2, n0) and batch.positions.shape[-2:] == (2, n0)
    assert int(batch.attention_mask[1].sum()) == len(encs[1].prefix.ids) + n1
    assert (batch.labels[1, n1:] == IGNORE).all() and len(batch.images) == 4 + 2
    logits = forward(adapter.model, adapter, batch)
    # each row of the shared-prefix batch equals that dialogue alone, run as one full sequence
    for row, e in enumerate(encs):
        full = e.prefix.ids + e.rest.ids
        from agentkit.policies.vlm.adapters.base import Chunk

        chunk = Chunk(full, e.prefix.types + e.rest.types, e.rest.images)
        with torch.no_grad():
            ref = adapter.full_forward(chunk, position_ids=e.positions)
        n = len(e.rest.ids)
        diff = (logits[row, :n] - ref[len(e.prefix.ids) :]).abs().max().item()
        assert diff < 1e-4, diff
