"""The zeroth-order estimator: weights restored after the two probes, seeded, replayable, reversible."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from agentkit.policies.vlm.adapt.mezo import ZeroOrder, ZOParam, select_params  # noqa: E402


def _params() -> list[ZOParam]:
    torch.manual_seed(0)
    return [ZOParam("a", torch.randn(4, 3)), ZOParam("b", torch.randn(5), unit=0.1, decay=False)]


def test_probes_leave_the_weights_where_they_were() -> None:
    ps = _params()
    start = [p.tensor.clone() for p in ps]
    seen = []
    zo = ZeroOrder(ps, eps=1e-2, lr=0.0, seed=1)

    def loss() -> float:
        seen.append([p.tensor.clone() for p in ps])
        return 1.0

    zo.step(loss)
    for p, s in zip(ps, start, strict=True):
        assert torch.allclose(p.tensor, s, atol=1e-6)
    plus, minus = seen
    for pp, pm, s, p in zip(plus, minus, start, ps, strict=True):
        assert torch.allclose((pp - s), -(pm - s), atol=1e-6)  # +eps z and -eps z with the same z
        assert (pp - s).abs().max() < 5 * 1e-2 * p.unit


def test_a_step_moves_against_the_projected_gradient_and_replays() -> None:
    ps = _params()
    start = [p.tensor.clone() for p in ps]
    target = [torch.zeros_like(p.tensor) for p in ps]

    def loss() -> float:
        return float(sum(((p.tensor - t) ** 2).sum() for p, t in zip(ps, target, strict=True)))

    zo = ZeroOrder(ps, eps=1e-3, lr=0.05, weight_decay=0.1, seed=3)
    before = loss()
    records = [zo.step(loss) for _ in range(60)]
    assert loss() < 0.5 * before
    assert all(r.seed >= 0 and not r.skipped for r in records)
    after = [p.tensor.clone() for p in ps]
    zo.replay(records, undo=True)  # back to the start from the log alone
    for p, s in zip(ps, start, strict=True):
        assert torch.allclose(p.tensor, s, atol=1e-4)
    zo.replay(records)  # and forward again
    for p, a in zip(ps, after, strict=True):
        assert torch.allclose(p.tensor, a, atol=1e-4)


def test_same_seed_same_run_and_clipping() -> None:
    runs = []
    for _ in range(2):
        ps = _params()
        zo = ZeroOrder(ps, eps=1e-3, lr=0.01, clip=0.5, seed=7)
        recs = [zo.step(lambda ps=ps: float(sum((p.tensor**2).sum() for p in ps))) for _ in range(5)]
        runs.append(([r.seed for r in recs], [p.tensor.clone() for p in ps]))
        assert all(abs(r.grad) <= 0.5 for r in recs) and any(r.clipped for r in recs)
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))


def test_a_non_finite_loss_skips_the_update() -> None:
    ps = _params()
    start = [p.tensor.clone() for p in ps]
    rec = ZeroOrder(ps, lr=1.0).step(lambda: float("nan"))
    assert rec.skipped and rec.grad == 0.0
    assert all(torch.allclose(p.tensor, s, atol=1e-6) for p, s in zip(ps, start, strict=True))


def test_select_params_and_bad_options() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    assert [p.name for p in select_params(model)] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert [p.decay for p in select_params(model)] == [True, False, False, False]
    assert [p.name for p in select_params(model, include=r"^0\.", exclude="bias")] == ["0.weight"]
    with pytest.raises(ValueError, match="no parameter matches"):
        select_params(model, include="nothing")
    with pytest.raises(ValueError, match="no trainable"):
        ZeroOrder([])
    with pytest.raises(ValueError, match="eps=0"):
        ZeroOrder(_params(), eps=0)
