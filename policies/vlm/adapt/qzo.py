"""QZO: zeroth-order adaptation of a quantised model through its quantisation scales.

Why: on a small device the model runs quantised (int8 or int4 weights, :mod:`.quant`), and its float copy may
not even fit. QZO (Shang et al. 2025, "Fine-tuning Quantized Neural Networks with Zeroth-order
Optimization") keeps the integer weights frozen and moves only the continuous quantisation scales with the
MeZO estimator (:mod:`.mezo`), with the projected gradient clipped (directional-derivative clipping) for
stability. Here each linear layer has one scale per output channel, so the trainable values are a few
thousand instead of millions, which also makes the zeroth-order estimate far less noisy per step. Biases and
normalisation weights, left in float, can move too (``biases``, ``norms``).

Scales are perturbed relative to their size: a layer's scale vector gets unit ``u`` = its root mean square,
so ``eps`` means the same relative perturbation for every layer, as it does for MeZO's weights.
"""

from __future__ import annotations

from typing import Any

from agentkit.policies.vlm.adapt.mezo import ZOParam

NORM_CLASS_HINT = "norm"
"""A module whose class name contains this (LayerNorm, RMSNorm, Qwen2RMSNorm...) is a normalisation layer."""


def qzo_params(model: Any, *, biases: bool = True, norms: bool = True) -> list[ZOParam]:
    """QZO's trainable tensors of a model quantised with :func:`~.quant.quantize_model`: every
    :class:`~.quant.QuantLinear`'s scales (unit: their RMS), and optionally its biases and the normalisation
    layers' weights and biases (unit 1). Nothing is decayed.

    Raises:
        ValueError: the model has no quantised layer (quantise it first).
    """
    from agentkit.policies.vlm.adapt.quant import quant_layers

    layers = quant_layers(model)
    if not layers:
        raise ValueError("the model has no quantised linear layer: call quantize_model first")
    out: list[ZOParam] = []
    seen: set[int] = set()
    for name, q in layers:
        unit = float(q.scale.detach().float().pow(2).mean().sqrt())
        out.append(ZOParam(f"{name}.scale", q.scale.data, unit if unit > 0 else 1.0, decay=False))
        seen.add(id(q.scale))
        if biases and q.bias is not None and id(q.bias) not in seen:
            out.append(ZOParam(f"{name}.bias", q.bias.data, 1.0, decay=False))
            seen.add(id(q.bias))
    if norms:
        for mname, module in model.named_modules():
            if NORM_CLASS_HINT not in type(module).__name__.lower():
                continue
            for pname, p in module.named_parameters(recurse=False):
                if p.dtype.is_floating_point and id(p) not in seen:
                    p.requires_grad_(False)
                    out.append(ZOParam(f"{mname}.{pname}", p.data, 1.0, decay=False))
                    seen.add(id(p))
    return out


__all__ = ["NORM_CLASS_HINT", "qzo_params"]
