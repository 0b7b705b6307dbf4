"""Weight-only quantisation: close to the float layer, int4 packing exact, whole models converted and back."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from agentkit.policies.vlm.adapt.quant import (  # noqa: E402
    QuantLinear,
    _pack4,
    _unpack4,
    dequantize_model,
    quant_layers,
    quantize_model,
    quantize_weight,
)


@pytest.mark.parametrize(("bits", "tol"), [(8, 0.01), (4, 0.2)])
def test_quant_linear_is_close_to_the_float_layer(bits: int, tol: float) -> None:
    torch.manual_seed(0)
    lin = torch.nn.Linear(33, 17)
    q = QuantLinear.from_linear(lin, bits)
    x = torch.randn(3, 5, 33)
    ref = lin(x)
    err = (q(x) - ref).abs().max() / ref.abs().max()
    assert err < tol
    assert q.qweight.dtype == (torch.int8 if bits == 8 else torch.uint8)
    assert q.qweight.shape == ((17, 33) if bits == 8 else (17, 17))  # int4: two per byte, padded
    assert q.scale.shape == (17,) and q.bias is lin.bias


def test_int4_packing_round_trips() -> None:
    q = torch.randint(-7, 8, (5, 9), dtype=torch.int8)
    assert torch.equal(_unpack4(_pack4(q), 9), q)


def test_zero_rows_and_bad_widths() -> None:
    w = torch.zeros(2, 4)
    q, s = quantize_weight(w, 8)
    assert torch.equal(q, torch.zeros_like(q, dtype=torch.int8)) and torch.equal(s, torch.ones(2))
    with pytest.raises(ValueError, match="bits=3"):
        quantize_weight(w, 3)


def test_a_model_is_quantised_except_its_head_and_dequantised_onto_the_grid() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module("proj", torch.nn.Linear(8, 16))
    model.add_module("act", torch.nn.ReLU())
    model.add_module("lm_head", torch.nn.Linear(16, 4, bias=False))
    x = torch.randn(2, 8)
    ref = model(x)
    s = quantize_model(model, 8)
    assert s.layers == 1 and s.weights == 128 and s.quant_bytes < s.float_bytes
    assert isinstance(model.proj, QuantLinear) and type(model.lm_head) is torch.nn.Linear
    assert (model(x) - ref).abs().max() < 0.02
    ints = model.proj.int_weight().clone()
    with torch.no_grad():
        model.proj.scale.mul_(1.1)  # what QZO does: scales move, integers stay
    scales = model.proj.scale.detach().clone()
    out = model(x)
    assert dequantize_model(model) == 1 and not quant_layers(model)
    assert type(model.proj) is torch.nn.Linear and torch.allclose(model(x), out, atol=1e-6)
    q, s2 = quantize_weight(model.proj.weight, 8)  # quantising the saved weight again: the same integers
    assert torch.equal(q, ints) and torch.allclose(s2, scales, rtol=1e-6)
