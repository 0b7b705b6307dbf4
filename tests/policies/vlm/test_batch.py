"""Cross-stream batching: one forward for several streams equals the one-stream path, stream by stream.

Streams of different lengths (different system prompts, frame sizes, extra frames, a question inserted in
one of them) are appended (a) one at a time with ``StreamSession.append`` and (b) together with
``append_batch``; next-token logits, keys/values and positions must agree within 1e-4 (fp32). At the policy
level, ``step_batch`` must give the same decisions as ``VLMPolicy.step`` and a transcript that one full
forward reproduces.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentkit.policies.vlm.batch import Turn, append_batch, step_batch  # noqa: E402
from agentkit.policies.vlm.engine import StreamSession  # noqa: E402
from agentkit.policies.vlm.loading import load  # noqa: E402
from agentkit.policies.vlm.policy import VLMPolicy  # noqa: E402
from agentkit.policies.vlm.reference import compare_with_full_forward  # noqa: E402
from agentkit.types import DecisionKind, Frame  # noqa: E402

pytestmark = pytest.mark.vlm
TOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def _threads():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    cache = {}

    def get(arch: str):
        if arch not in cache:
            cache[arch] = load(str(tiny_checkpoint(arch)))
        return cache[arch]

    return get


def _image(rng: np.random.Generator, stream: int) -> np.ndarray:
    return rng.integers(0, 255, (40 + 8 * stream, 64, 3), dtype=np.uint8)  # a different size per stream


@pytest.mark.parametrize("arch", ["qwen2_vl", "smolvlm", "llava_onevision"])
def test_batched_append_equals_one_stream_path(loaded, arch: str) -> None:
    ad = loaded(arch).adapter
    t = ad.template
    n = 3
    one = [StreamSession(ad) for _ in range(n)]
    many = [StreamSession(ad) for _ in range(n)]
    for s in range(n):  # different prompts: the caches start at different lengths
        prompt = [t.system.format(system="watch " * (1 + 3 * s), instruction="narrate")]
        one[s].append(prompt)
        many[s].append(prompt)
    rng = np.random.default_rng(0)
    worst = 0.0
    for step in range(5):
        chunks = []
        for s in range(n):
            head = [t.user_open, "Where is the cup?\n"] if (s == 1 and step == 2) else [t.user_open]
            if s == 2 and step in (1, 3):  # a text-only turn in one stream: chunks of very different lengths
                chunks.append(ad.encode([*head, "no frame this time", t.turn_close, t.assistant_open]))
                continue
            parts = [*head, f"<{step}s-{step + 1}s>\n", _image(rng, s), t.turn_close, t.assistant_open]
            chunks.append(ad.encode(parts))
        ref = [one[s].append(chunks[s]) for s in range(n)]
        # smolvlm: each stream gets its own copy; the others keep views into the batch buffer (the scheduler's way)
        got = append_batch([(many[s], many[s].prepare(chunks[s])) for s in range(n)], copy=arch == "smolvlm")
        for s in range(n):
            diff = (ref[s] - got[s]).abs().max().item()
            worst = max(worst, diff)
            assert diff <= TOL, (arch, step, s, diff)
            assert len(one[s]) == len(many[s]) and one[s].next_pos == many[s].next_pos
            assert one[s].slot_seg == many[s].slot_seg
        if step == 4:  # views of the batch buffer get their own copy (and nothing else changes)
            shared = sum(many[s].cache.compact() for s in range(n))
            assert (shared > 0) == (arch != "smolvlm") and sum(many[s].cache.compact() for s in range(n)) == 0
            for s in range(n):
                for la, lb in zip(one[s].cache.layers, many[s].cache.layers, strict=True):
                    assert (la.keys - lb.keys).abs().max().item() <= TOL
                    assert lb.keys.untyped_storage().nbytes() == lb.keys.numel() * lb.keys.element_size()
        # a state token appended per stream on its own (as after a decision) keeps them equal
        state = [[ad.token_id("<silence>") or 0]]
        for s in range(n):
            a, b = one[s].append(state), many[s].append(state)
            assert (a - b).abs().max().item() <= TOL
    for s in range(n):
        assert len({len(x) for x in one}) > 1  # the streams really had different lengths
        for la, lb in zip(one[s].cache.layers, many[s].cache.layers, strict=True):
            assert la.keys.shape == lb.keys.shape and la.keys.is_contiguous()
            assert (la.keys - lb.keys).abs().max().item() <= TOL
            assert (la.values - lb.values).abs().max().item() <= TOL
    assert worst < TOL


@pytest.mark.parametrize("arch", ["qwen2_vl", "llava_onevision"])
def test_step_batch_equals_policy_steps_and_the_full_forward(loaded, arch: str) -> None:
    """Decisions, probabilities, decoded Responses and the whole transcript: batched == one stream at a time,
    and the batched streams' transcripts equal ONE full forward (the engine's exactness test)."""
    lo = loaded(arch)

    def make(s: int) -> VLMPolicy:
        # stream 0 answers every frame (Responses decoded into the cache); the others never do
        return VLMPolicy(lo, record=True, max_new_tokens=4, response_threshold=0.0 if s == 0 else 1.0)

    n = 3
    one = [make(s) for s in range(n)]
    many = [make(s) for s in range(n)]
    rng = np.random.default_rng(1)
    frames = [[Frame(_image(rng, s), t=float(i), pts=float(i), seq=i) for i in range(6)] for s in range(n)]
    for i in range(2):  # stream 2 starts two frames earlier: different lengths, a new stream joins a batch
        one[2].step(frames[2][i])
        step_batch([Turn(many[2], frames[2][i])])
    for i in range(2, 6):
        if i == 3:
            one[1].instruct("What changed?", float(i))
            many[1].instruct("What changed?", float(i))
        a = [one[s].step(frames[s][i]) for s in range(n)]
        b = step_batch([Turn(many[s], frames[s][i]) for s in range(n)])
        for s in range(n):
            assert a[s].kind is b[s].kind and a[s].text == b[s].text, (s, i)
            pa, pb = a[s].meta["probs"], b[s].meta["probs"]
            assert max(abs(pa[k] - pb[k]) for k in pa) <= 2e-4  # rounded to 4 digits in meta
            assert b[s].meta["batch"] == 3 and b[s].meta["prefilled_tokens"] > 0
            assert a[s].meta["cache_tokens"] == b[s].meta["cache_tokens"]
        assert b[0].kind is DecisionKind.RESPONSE
        assert b[1].meta.get("questions") == (["What changed?"] if i == 3 else None)
    for s in range(n):
        rep = compare_with_full_forward(many[s].session)
        assert rep.max_abs_diff <= TOL and rep.max_position_diff == 0, (s, rep)


def test_step_batch_zero_shot_probes_are_batched_and_removed(tiny_checkpoint, tmp_path) -> None:
    from agentkit.policies.vlm.build import build_tiny

    lo = load(str(build_tiny("smolvlm", tmp_path / "stock", state_tokens=())))  # no state tokens: zero-shot
    one = [VLMPolicy(lo, record=True) for _ in range(2)]
    many = [VLMPolicy(lo, record=True) for _ in range(2)]
    assert many[0].decision_cfg.mode == "zero_shot"
    rng = np.random.default_rng(2)
    for i in range(3):
        fr = [Frame(_image(rng, s), t=float(i), pts=float(i), seq=i) for s in range(2)]
        a = [one[s].step(fr[s]) for s in range(2)]
        b = step_batch([Turn(many[s], fr[s]) for s in range(2)])
        for s in range(2):
            assert a[s].kind is b[s].kind and len(one[s].session) == len(many[s].session)
            pa, pb = a[s].meta["probs"], b[s].meta["probs"]
            assert max(abs(pa[k] - pb[k]) for k in pa) <= 2e-4
    for s in range(2):  # the probes left nothing behind
        assert len(many[s].session) == sum(len(r.orig) for r in many[s].session.trace if not r.probe)
        assert compare_with_full_forward(many[s].session).max_abs_diff <= TOL


def test_step_batch_errors_are_values_and_reset_the_streams(loaded) -> None:
    lo = loaded("qwen2_vl")
    pols = [VLMPolicy(lo, response_threshold=1.0) for _ in range(2)]
    rng = np.random.default_rng(3)
    fr = [Frame(_image(rng, s), t=0.0, pts=0.0, seq=0) for s in range(2)]
    step_batch([Turn(p, f) for p, f in zip(pols, fr, strict=True)])
    model = lo.adapter.model
    original = model.forward

    def boom(*a, **k):
        raise RuntimeError("device lost")

    model.forward = boom
    try:
        ds = step_batch([Turn(p, f) for p, f in zip(pols, fr, strict=True)])
    finally:
        model.forward = original
    assert all(d.kind is DecisionKind.SILENCE and "device lost" in d.errors[0] for d in ds)
    assert all(len(p.session) == 0 for p in pols)  # reset: the next step starts cleanly
    ds = step_batch([Turn(p, f) for p, f in zip(pols, fr, strict=True)])
    assert all(not d.errors and d.meta["cache_tokens"] > 0 for d in ds)
    # a turn without a frame and without a question is a recorded error, not a crash
    d = step_batch([Turn(pols[0], None)])[0]
    assert d.errors and "question" in d.errors[0]
    with pytest.raises(ValueError, match="one stream"):
        step_batch([Turn(pols[0], fr[0]), Turn(pols[0], fr[1])])


def test_evict_to_sink_keeps_the_prompt_and_stays_exact(loaded) -> None:
    pol = VLMPolicy(loaded("qwen2_vl"), record=True, response_threshold=1.0)
    rng = np.random.default_rng(4)
    pol.step(Frame(_image(rng, 0), t=0.0, pts=0.0, seq=0))
    sink = len(pol.session) - sum(s.n_tokens for s in pol.session.segments.values() if not s.pinned)
    pol.instruct("Is the door open?", 1.0)
    for i in range(1, 4):
        pol.step(Frame(_image(rng, 0), t=float(i), pts=float(i), seq=i))
    q = len(pol.adapter.text_ids("<|im_start|>user\nIs the door open?\n"))
    evicted = pol.evict_to_sink()
    assert evicted > 0 and len(pol.session) == sink + q  # the prompt and the pinned question stay
    d = pol.step(Frame(_image(rng, 0), t=5.0, pts=5.0, seq=5))
    assert not d.errors
    rep = compare_with_full_forward(pol.session)
    assert rep.masked and rep.max_abs_diff <= TOL
