"""Focal loss on the state tokens, cross-entropy on answers, assistant turns only."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from agentkit.policies.vlm.train.loss import class_weights, focal_terms, streaming_loss  # noqa: E402


def test_focal_terms_match_the_formula_and_reduce_to_ce() -> None:
    p = torch.tensor([0.9, 0.5, 0.1])
    logp = torch.log(p)
    want = [-((1 - v) ** 2) * math.log(v) for v in p.tolist()]
    assert torch.allclose(focal_terms(logp, 2.0), torch.tensor(want))
    assert torch.allclose(focal_terms(logp, 0.0), -logp)  # gamma 0 is cross-entropy
    # easy tokens are down-weighted much more than hard ones
    ratio = focal_terms(logp, 2.0) / -logp
    assert ratio[0] < 0.02 and ratio[2] > 0.8


def test_class_weights_are_inverse_frequency_with_mean_one() -> None:
    counts = [12, 3, 2]
    w = class_weights(counts)
    assert w[0] < w[1] < w[2]
    assert sum(c * x for c, x in zip(counts, w, strict=True)) / sum(counts) == pytest.approx(1.0)


def _batch(vocab: int = 11):
    # tokens: 0 1 2 ... ; targets at positions 3 (state 2 = response, token 9), 4, 5 (answer), 8 (state 0)
    labels = torch.full((1, 10), -100)
    states = torch.full((1, 10), -1)
    labels[0, 3], states[0, 3] = 9, 2
    labels[0, 4], labels[0, 5] = 4, 5
    labels[0, 8], states[0, 8] = 7, 0
    logits = torch.randn(1, 10, vocab, generator=torch.Generator().manual_seed(0))
    return logits, labels, states


def test_loss_counts_only_assistant_targets_and_uses_focal_on_states() -> None:
    logits, labels, states = _batch()
    state_ids = [7, 8, 9]
    ce = streaming_loss(logits, labels, states, state_ids, mode="ce")
    fl = streaming_loss(logits, labels, states, state_ids, mode="focal", gamma=2.0)
    assert (ce.state_tokens, ce.answer_tokens) == (2, 2)
    logp = torch.log_softmax(logits[0, :-1], -1)
    terms = {j: -logp[j - 1, labels[0, j]] for j in (3, 4, 5, 8)}
    assert float(ce.loss) == pytest.approx(float(sum(terms.values()) / 4), rel=1e-5)
    focal = sum(float(focal_terms(-terms[j], 2.0)) for j in (3, 8)) + float(terms[4] + terms[5])
    assert float(fl.loss) == pytest.approx(focal / 4, rel=1e-5)
    assert float(fl.loss) < float(ce.loss)
    # a change of logits where no label is changes nothing
    logits2 = logits.clone()
    logits2[0, 0] += 5.0
    assert float(streaming_loss(logits2, labels, states, state_ids, mode="ce").loss) == pytest.approx(float(ce.loss))


def test_weighted_mode_and_state_accuracy() -> None:
    logits, labels, states = _batch()
    state_ids = [7, 8, 9]
    logits[0, 2, 9] = 50.0  # predicts the response state at position 3
    logits[0, 7, 8] = 50.0  # predicts standby where silence (7) is the label at position 8
    parts = streaming_loss(logits, labels, states, state_ids, mode="weighted", weights=[2.0, 1.0, 1.0])
    assert parts.state_correct == 1 and parts.state_tokens == 2
    plain = streaming_loss(logits, labels, states, state_ids, mode="ce")
    assert float(parts.loss) > float(plain.loss)  # the wrong silence counts twice


def test_pointer_loss_is_the_mean_log_attention_on_the_target() -> None:
    from agentkit.policies.vlm.train.loss import pointer_loss

    att = torch.full((2, 3, 4, 6), 1 / 6)  # (B, heads, queries, keys): uniform
    att[1, 0, 2] = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.5, 0.5])
    pointers = torch.tensor([[0, 1, 3], [1, 2, 5]])
    got = float(pointer_loss([att], pointers, layer=-1, head=0))
    assert got == pytest.approx((math.log(6) + math.log(2)) / 2, rel=1e-5)
    assert pointer_loss([att], torch.zeros((0, 3), dtype=torch.long)) is None
