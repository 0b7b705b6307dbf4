"""Exactness, eviction, decisions and decoding of the streaming VLM engine on tiny random checkpoints.

Every checkpoint is built offline (tokenizer trained here), saved, and loaded back with from_pretrained:
the same path a real checkpoint takes. The central check replays the streamed transcript as ONE full
forward and compares every logit (fp32, tolerance 1e-4).
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentkit.errors import ConfigError, PolicyError  # noqa: E402
from agentkit.policies.vlm.build import build_tiny  # noqa: E402
from agentkit.policies.vlm.decide import DecisionConfig  # noqa: E402
from agentkit.policies.vlm.loading import load  # noqa: E402
from agentkit.policies.vlm.reference import compare_with_full_forward  # noqa: E402
from agentkit.policies.vlm.verify import stream_and_compare  # noqa: E402
from agentkit.policy import make_policy  # noqa: E402
from agentkit.types import DecisionKind, Frame  # noqa: E402

pytestmark = pytest.mark.vlm
ARCHS = ["qwen2_vl", "qwen2_5_vl", "smolvlm", "idefics3", "llava_onevision"]
TOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def _threads():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    yield
    torch.set_num_threads(prev)


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint):
    return tiny_checkpoint


def _frame(rng: np.random.Generator, i: int, size: tuple[int, int] = (48, 64)) -> Frame:
    return Frame(rng.integers(0, 255, (*size, 3), dtype=np.uint8), t=float(i), pts=float(i), seq=i)


@pytest.mark.parametrize("arch", ARCHS)
def test_vlm_incremental_equals_full_forward(ckpt, arch: str) -> None:
    res = stream_and_compare(str(ckpt(arch)), frames=12, response_tokens=6)
    rep = res.report
    assert rep.frames == 12 and not rep.masked
    assert res.responses >= 2  # responses were decoded into the same cache
    assert rep.max_position_diff == 0
    assert rep.max_abs_diff <= TOL, rep


@pytest.mark.parametrize("arch", ARCHS)
def test_vlm_eviction_equals_masked_full_forward(ckpt, arch: str) -> None:
    res = stream_and_compare(str(ckpt(arch)), frames=12, response_tokens=6, window_tokens=60)
    rep = res.report
    assert rep.masked and res.evicted_tokens > 200
    assert rep.max_abs_diff <= TOL, rep


def test_vlm_wrong_positions_are_detected(ckpt) -> None:
    """The exactness check can fail: stock generate()-style text positions for vision tokens."""
    loaded = load(str(ckpt("qwen2_vl")))
    ad = loaded.adapter

    def text_positions(self, chunk, start):  # what generate() does after the first prefill
        p = (torch.arange(len(chunk.ids)) + start)[None].expand(3, -1).clone()
        return p, start + len(chunk.ids)

    ad.positions = types.MethodType(text_positions, ad)
    rep = stream_and_compare(loaded, frames=6).report
    assert rep.max_abs_diff > 1e-2 and rep.max_position_diff > 0
    assert rep.max_excess > 1e-2 and not rep.ok()  # the relative part of the tolerance does not hide it


def test_exactness_tolerance_is_absolute_plus_relative_to_the_logit() -> None:
    from agentkit.policies.vlm.reference import ExactnessReport

    sharp = ExactnessReport(1.08e-4, 0, 100, 4, False, max_excess=1.08e-4 - 1e-5 * 25)  # |logit| 25
    assert sharp.ok(1e-4)
    assert not ExactnessReport(3e-4, 0, 100, 4, False, max_excess=2e-4).ok(1e-4)
    assert not ExactnessReport(1.08e-4, 0, 100, 4, False).ok(1e-4)  # not measured: absolute only
    assert not ExactnessReport(0.0, 1, 100, 4, False, max_excess=0.0).ok(1e-4)  # a position mismatch


def test_vlm_zero_shot_probe_is_removed(ckpt) -> None:
    res = stream_and_compare(str(ckpt("qwen2_5_vl")), frames=10, decision="zero_shot", window_tokens=80)
    assert res.report.max_abs_diff <= TOL and res.report.masked
    pol = make_policy("vlm", model=str(ckpt("qwen2_5_vl")), decision="zero_shot", record=True)
    rng = np.random.default_rng(1)
    d = pol.step(_frame(rng, 0))
    assert "response" in d.meta["probs"] and "silence" in d.meta["probs"]
    # cache == transcript: the probe left nothing behind
    assert len(pol.session) == sum(len(r.orig) for r in pol.session.trace if not r.probe)
    assert any(r.probe for r in pol.session.trace)


def test_vlm_streamo_state_tokens_and_thresholds(tmp_path: Path) -> None:
    path = build_tiny("qwen2_vl", tmp_path / "ck")
    with pytest.raises(PolicyError, match="state tokens"):
        make_policy("vlm", model=str(path), decision="tokens", state_tokens="streamo")
    pol = make_policy("vlm", model=str(path), response_threshold=1.0, standby_threshold=0.0)
    rng = np.random.default_rng(0)
    assert pol.step(_frame(rng, 0)).kind is DecisionKind.STANDBY
    pol.decision_cfg = DecisionConfig(response_threshold=1.0)
    assert pol.step(_frame(rng, 1)).kind is DecisionKind.SILENCE
    with pytest.raises(ConfigError, match=r"response_threshold=1\.5"):
        make_policy("vlm", model=str(path), response_threshold=1.5)


def test_vlm_decoding_streams_tokens_and_is_seeded(ckpt) -> None:
    path = str(ckpt("qwen2_vl"))
    texts = []
    for _ in range(2):
        pieces: list[str] = []
        pol = make_policy(
            "vlm",
            model=path,
            response_threshold=0.0,
            temperature=0.9,
            top_p=0.9,
            seed=7,
            max_new_tokens=10,
            on_token=pieces.append,
        )
        d = pol.step(_frame(np.random.default_rng(0), 0))
        assert d.kind is DecisionKind.RESPONSE
        assert d.meta["ttft_ms"] > 0 and d.meta["ms_per_token"] > 0 and d.meta["tokens"] >= 1
        assert "".join(pieces).strip() and len(pieces) >= 2
        texts.append("".join(pieces))
    assert texts[0] == texts[1]
    # stop strings cut the text
    stop = texts[0][3:5]
    pol = make_policy(
        "vlm", model=path, response_threshold=0.0, temperature=0.9, top_p=0.9, seed=7, max_new_tokens=10, stop=[stop]
    )
    d = pol.step(_frame(np.random.default_rng(0), 0))
    assert d.meta["stopped_by"] == "stop" and stop not in (d.text or "")


def test_vlm_memory_and_cache_flat_with_eviction(ckpt) -> None:
    pol = make_policy("vlm", model=str(ckpt("smolvlm")), response_threshold=1.0, window_s=5.0)
    rng = np.random.default_rng(0)
    imgs = [_frame(rng, i).image for i in range(4)]
    sizes, nbytes = [], []
    for i in range(300):
        pol.step(Frame(imgs[i % 4], t=float(i), pts=float(i), seq=i))
        sizes.append(len(pol.session))
        nbytes.append(pol.session.cache_bytes())
    # bounded: only the "<Xs-Ys>" header digits vary (a few tokens); nothing grows with the stream
    assert max(sizes[50:]) - min(sizes[50:]) <= 20 and max(sizes[250:]) <= max(sizes[50:100]) + 20
    assert max(nbytes[250:]) <= max(nbytes[50:100]) * 1.1
    assert pol.session.next_pos > 10 * len(pol.session)  # original positions kept growing
    kept_t = sorted({s.t for s in pol.session.segments.values() if not s.pinned})
    assert kept_t[0] >= 299 - 5


def test_vlm_questions_are_pinned_against_eviction(ckpt) -> None:
    pol = make_policy("vlm", model=str(ckpt("qwen2_vl")), response_threshold=1.0, window_tokens=40, record=True)
    rng = np.random.default_rng(0)
    for i in range(8):
        if i == 2:
            pol.instruct("Where is the cup?", 2.0)
        d = pol.step(_frame(rng, i))
        if i == 2:
            assert d.meta["questions"] == ["Where is the cup?"]
    q_ids = pol.adapter.text_ids("Where is the cup?")
    full = [tok for r in pol.session.trace if not r.probe for tok in r.chunk.ids]
    kept_ids = [full[o] for o in pol.session.slot_orig]
    assert pol.session.stats.evicted_tokens > 100  # frames around the question were evicted...
    assert " ".join(map(str, q_ids)) in " ".join(map(str, kept_ids))  # ...the question was not
    assert compare_with_full_forward(pol.session).max_abs_diff <= TOL


def test_vlm_response_is_parsed_into_boxes_and_tool_calls(ckpt) -> None:
    pol = make_policy("vlm", model=str(ckpt("qwen2_vl")))
    d = pol._response(
        "cup <|box_start|>(100,200),(300,400)<|box_end|> "
        '<tool_call>{"name": "click", "arguments": {"x": 0.5, "y": 0.25}}</tool_call>'
    )
    assert d.kind is DecisionKind.RESPONSE
    assert d.boxes and abs(d.boxes[0].x1 - 0.1) < 1e-6 and abs(d.boxes[0].y2 - 0.4) < 1e-6
    assert d.tool_calls and d.tool_calls[0].name == "click"
    d = pol._response('<tool_call>{"name": broken</tool_call>')
    assert d.errors  # recorded, not raised


def test_vlm_failures_are_recorded_not_raised(ckpt, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="neither an existing folder"):
        make_policy("vlm", model=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyError, match=r"config\.json"):
        make_policy("vlm", model=str(tmp_path / "empty"))
    with pytest.raises(PolicyError, match="HF_HUB_OFFLINE"):
        make_policy("vlm", model="Qwen/Qwen2.5-VL-3B-Instruct")
    pol = make_policy("vlm", model=str(ckpt("qwen2_vl")))
    rng = np.random.default_rng(0)
    pol.step(_frame(rng, 0))

    def boom(*a, **k):
        raise RuntimeError("device lost")

    orig = pol.adapter.forward
    pol.adapter.forward = boom
    d = pol.step(_frame(rng, 1))
    assert d.kind is DecisionKind.SILENCE and "device lost" in d.errors[0]
    pol.adapter.forward = orig
    d = pol.step(_frame(rng, 2))  # the stream restarted cleanly
    assert not d.errors and d.meta["cache_tokens"] > 0


def test_vlm_snapshot_restore_replays_identically(ckpt) -> None:
    pol = make_policy("vlm", model=str(ckpt("smolvlm")), response_threshold=1.0, window_tokens=50)
    rng = np.random.default_rng(0)
    for i in range(5):
        pol.step(_frame(rng, i))
    snap, pending = pol.session.snapshot(), list(pol._pending)
    f = _frame(rng, 5)
    a = pol.step(f).meta
    pol.step(_frame(rng, 6))
    pol.session.restore(snap)
    pol._pending = pending
    b = pol.step(f).meta
    assert a["probs"] == b["probs"] and a["cache_tokens"] == b["cache_tokens"] and a["position"] == b["position"]


@pytest.mark.parametrize(
    ("arch", "size", "published_b"),
    [
        ("qwen2_vl", "2b", 2.21),
        ("qwen2_vl", "7b", 8.29),
        ("qwen2_5_vl", "2b", 3.75),
        ("qwen2_5_vl", "7b", 8.29),
        ("smolvlm", "2b", 2.25),
    ],
)
def test_vlm_bench_sizes_have_the_real_dimensions(arch: str, size: str, published_b: float) -> None:
    """The 2b/7b bench models (random weights) have the published parameter counts (built on meta)."""
    from agentkit.policies.vlm.architectures import get_arch
    from agentkit.policies.vlm.build import build_config, build_tokenizer

    cfg = build_config(arch, size, build_tokenizer(arch), 64)
    with torch.device("meta"):
        model = get_arch(arch).load_model_class()(cfg)
    n = sum(p.numel() for p in model.parameters()) / 1e9
    assert abs(n - published_b) / published_b < 0.03, n


def test_vlm_old_questions_age_out_beyond_the_pinned_limit(ckpt) -> None:
    pol = make_policy(
        "vlm", model=str(ckpt("qwen2_vl")), response_threshold=1.0, window_tokens=40, window_questions=1, record=True
    )
    rng = np.random.default_rng(0)
    for i in range(10):
        if i in (2, 4):
            pol.instruct(f"question number {i}", float(i))
        pol.step(_frame(rng, i))
    full = [tok for r in pol.session.trace if not r.probe for tok in r.chunk.ids]
    kept = " ".join(str(full[o]) for o in pol.session.slot_orig)
    first, second = (" ".join(map(str, pol.adapter.text_ids(f"question number {i}"))) for i in (2, 4))
    assert second in kept and first not in kept
    assert compare_with_full_forward(pol.session).max_abs_diff <= TOL


def test_vlm_auto_decision_detects_streamo_tokens_or_falls_back_to_zero_shot(tmp_path: Path) -> None:
    from agentkit.policies.vlm.decide import STATE_TOKEN_SETS

    streamo = build_tiny("smolvlm", tmp_path / "streamo", state_tokens=STATE_TOKEN_SETS["streamo"])
    pol = make_policy("vlm", model=str(streamo))
    assert pol.decision_cfg.mode == "tokens" and pol.state_names == STATE_TOKEN_SETS["streamo"]
    d = pol.step(_frame(np.random.default_rng(0), 0))
    assert set(d.meta["probs"]) == {"silence", "standby", "response"}
    stock = build_tiny("qwen2_vl", tmp_path / "stock", state_tokens=())  # like a stock instruct checkpoint
    pol = make_policy("vlm", model=str(stock))
    assert pol.decision_cfg.mode == "zero_shot"
    assert set(pol.step(_frame(np.random.default_rng(0), 0)).meta["probs"]) == {"silence", "response"}
    with pytest.raises(PolicyError, match="state tokens"):
        make_policy("vlm", model=str(stock), decision="tokens")


@pytest.mark.parametrize("arch", ["qwen2_vl", "smolvlm", "llava_onevision"])
def test_vlm_odd_frame_shapes_and_rejected_frames(ckpt, arch: str) -> None:
    pol = make_policy("vlm", model=str(ckpt(arch)), response_threshold=1.0)
    for i, shape in enumerate([(1, 1), (2, 600), (1000, 1), (8, 8)]):
        d = pol.step(Frame(np.zeros((*shape, 3), np.uint8), t=float(i), pts=float(i), seq=i))
        assert not d.errors, (shape, d.errors)
    before = (len(pol.session), pol.session.next_pos)

    def reject(image):
        raise ValueError("unsupported image")

    pol.adapter.frame_chunk = reject
    d = pol.step(Frame(np.zeros((8, 8, 3), np.uint8), t=5.0, pts=5.0, seq=5))
    assert d.errors and "frame rejected" in d.errors[0]
    assert (len(pol.session), pol.session.next_pos) == before  # skipped, the stream was not reset


def test_vlm_decoding_never_emits_vision_placeholders(ckpt) -> None:
    """A generated <image> token would be taken for a frame by the next forward (regression)."""
    from agentkit.policies.vlm.decode import DecodeConfig, sample

    loaded = load(str(ckpt("smolvlm")))
    banned = sorted(loaded.adapter.placeholder_ids)
    assert banned == [loaded.adapter.model.config.image_token_id]
    logits = torch.zeros(64)
    logits[banned[0]] = 100.0
    assert sample(logits, DecodeConfig(), None, banned) != banned[0]
    gen = torch.Generator().manual_seed(0)
    assert all(sample(logits, DecodeConfig(temperature=1.0), gen, banned) != banned[0] for _ in range(20))
