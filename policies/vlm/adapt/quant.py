"""Weight-only int8 / int4 quantisation of a model's linear layers, with per-output-channel scales.

Why: a small device runs a checkpoint quantised, and QZO (:mod:`.qzo`) adapts exactly that model: the
integer weights are frozen and only their scales move. :class:`QuantLinear` replaces an ``nn.Linear``:

- ``qweight``: the integers, a buffer (int8 ``(out, in)``; int4 packed two per byte, ``(out, ceil(in / 2))``
  uint8), never changed by adaptation;
- ``scale``: one float per output channel, ``w[o, i] = qweight[o, i] * scale[o]``, symmetric (``qmax`` = 127
  or 7, zero maps to zero);
- ``bias``: the original bias, if any.

The forward pass dequantises each layer's weight on the fly for its own matmul, one layer at a time, so only
one layer's float weight exists at any moment. (torch's weight-only int8 CPU kernel,
``torch._weight_int8pack_mm``, avoids even that, but measured 10-15x slower than dequantise + matmul on the
small shapes here, torch 2.13 CPU.) :func:`dequantize_model` turns the layers back into
``nn.Linear`` with ``qweight * scale`` as weights, which is how an adapted model is saved: an ordinary
checkpoint the engine loads with ``from_pretrained``, whose linear weights lie exactly on the int grid of
their (adapted) scales, so quantising it again gives back the same integers.

Example:
    >>> import torch
    >>> lin = torch.nn.Linear(8, 4)
    >>> q = QuantLinear.from_linear(lin, bits=8)
    >>> x = torch.randn(2, 8)
    >>> bool((q(x) - lin(x)).abs().max() < 0.05)
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

BITS = (8, 4)
"""Supported widths."""
SKIP = ("lm_head",)
"""Linear layers kept in float by default: the output head (often tied to the embeddings, which stay float)."""


def _qmax(bits: int) -> int:
    return 127 if bits == 8 else 7


def _pack4(q: torch.Tensor) -> torch.Tensor:
    """int4 values ``(out, in)`` in ``[-8, 7]`` -> uint8 ``(out, ceil(in / 2))``, low nibble first."""
    u = (q.to(torch.int16) + 8).to(torch.uint8)
    if u.shape[1] % 2:
        u = F.pad(u, (0, 1), value=8)
    return u[:, 0::2] | (u[:, 1::2] << 4)


def _unpack4(packed: torch.Tensor, in_features: int) -> torch.Tensor:
    """The inverse of :func:`_pack4` (int8 values, ``(out, in_features)``)."""
    lo = (packed & 0x0F).to(torch.int8) - 8
    hi = (packed >> 4).to(torch.int8) - 8
    return torch.stack((lo, hi), dim=-1).reshape(packed.shape[0], -1)[:, :in_features]


def quantize_weight(weight: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel quantisation: ``(int values as int8, scales as float32)``.

    A row of zeros gets scale 1 (its integers are zero anyway).
    """
    if bits not in BITS:
        raise ValueError(f"bits={bits}: must be one of {BITS}")
    w = weight.detach().float()
    amax = w.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / _qmax(bits), torch.ones_like(amax))
    q = torch.round(w / scale[:, None]).clamp(-_qmax(bits), _qmax(bits)).to(torch.int8)
    return q, scale


class QuantLinear(nn.Module):
    """A linear layer with frozen integer weights and float per-output-channel scales (module docstring)."""

    qweight: torch.Tensor

    def __init__(
        self, qweight: torch.Tensor, scale: torch.Tensor, bias: nn.Parameter | None, bits: int, in_features: int
    ) -> None:
        super().__init__()
        if bits not in BITS:
            raise ValueError(f"bits={bits}: must be one of {BITS}")
        self.bits = bits
        self.in_features = in_features
        self.out_features = int(scale.shape[0])
        self.register_buffer("qweight", qweight)
        self.scale = nn.Parameter(scale, requires_grad=False)
        self.bias = bias

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: int = 8) -> QuantLinear:
        q, scale = quantize_weight(linear.weight, bits)
        stored = q.contiguous() if bits == 8 else _pack4(q)
        bias = linear.bias
        if bias is not None:
            bias.requires_grad_(False)
        return cls(stored.to(linear.weight.device), scale.to(linear.weight.device), bias, bits, linear.in_features)

    def int_weight(self) -> torch.Tensor:
        """The integers ``(out, in)`` as int8 (int4 unpacked)."""
        return self.qweight if self.bits == 8 else _unpack4(self.qweight, self.in_features)

    def dequantize(self) -> torch.Tensor:
        """``int * scale`` as a float ``(out, in)`` weight in the scales' dtype."""
        return self.int_weight().to(self.scale.dtype) * self.scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.dequantize().to(x.dtype), bias)

    def to_linear(self) -> nn.Linear:
        """An ``nn.Linear`` holding the dequantised weight (and the same bias)."""
        w = self.dequantize()
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device=w.device,
                        dtype=w.dtype)  # fmt: skip
        with torch.no_grad():
            lin.weight.copy_(w)
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}"


@dataclass(frozen=True)
class QuantSummary:
    """What :func:`quantize_model` did."""

    bits: int
    layers: int
    weights: int  # number of quantised weights
    float_bytes: int  # their bytes before
    quant_bytes: int  # integers + scales after


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


def _linears(model: nn.Module, skip: tuple[str, ...]) -> Iterator[tuple[str, nn.Linear]]:
    for name, module in list(model.named_modules()):
        if type(module) is nn.Linear and not any(name == s or name.endswith("." + s) for s in skip):
            yield name, module


def own_storage(model: nn.Module) -> None:
    """Give every parameter and buffer of ``model`` its own memory (a copy).

    Why: ``from_pretrained`` may map a checkpoint's float32 tensors straight from the file; any tensor still
    viewing that mapping (an embedding, a norm, a bias) keeps the whole file mapped and its touched pages
    resident, so the float weights that quantisation replaced would still count in memory.
    """
    with torch.no_grad():
        for module in model.modules():
            for _, p in module.named_parameters(recurse=False):
                p.data = p.data.clone()
            for name, b in list(module.named_buffers(recurse=False)):
                if b is not None and not isinstance(module, QuantLinear):  # its integers are new already
                    setattr(module, name, b.clone())


def quantize_model(model: nn.Module, bits: int = 8, skip: tuple[str, ...] = SKIP) -> QuantSummary:
    """Replace every ``nn.Linear`` of ``model`` (except ``skip`` names) by a :class:`QuantLinear`, in place.

    Layers are converted one at a time, so the float weights are freed as the integers are made; then the
    remaining tensors get their own memory (:func:`own_storage`), so nothing keeps the checkpoint file mapped.
    (Freed heap memory returns to the system with :func:`agentkit.policies.vlm.adapt.memory.release`.)

    Raises:
        ValueError: ``bits`` is not 8 or 4.
    """
    if bits not in BITS:
        raise ValueError(f"bits={bits}: must be one of {BITS}")
    layers = weights = fbytes = qbytes = 0
    for name, lin in _linears(model, skip):
        q = QuantLinear.from_linear(lin, bits)
        parent, child = _parent(model, name)
        setattr(parent, child, q)
        layers += 1
        weights += lin.weight.numel()
        fbytes += lin.weight.numel() * lin.weight.element_size()
        qbytes += q.qweight.numel() + q.scale.numel() * q.scale.element_size()
        del lin
    own_storage(model)
    return QuantSummary(bits, layers, weights, fbytes, qbytes)


def quant_layers(model: nn.Module) -> list[tuple[str, QuantLinear]]:
    """The :class:`QuantLinear` layers of ``model`` with their names."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, QuantLinear)]


def dequantize_model(model: nn.Module) -> int:
    """Turn every :class:`QuantLinear` back into an ``nn.Linear`` (weights ``int * scale``); returns how many."""
    layers = quant_layers(model)
    for name, q in layers:
        parent, child = _parent(model, name)
        setattr(parent, child, q.to_linear())
    return len(layers)


__all__ = [
    "BITS",
    "SKIP",
    "QuantLinear",
    "QuantSummary",
    "dequantize_model",
    "own_storage",
    "quant_layers",
    "quantize_model",
    "quantize_weight",
]
