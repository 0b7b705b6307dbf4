"""MeZO: memory-efficient zeroth-order optimisation (Malladi et al. 2023), the estimator shared by MeZO and QZO.

Why: backpropagation keeps the forward pass's activations, a gradient per weight and the optimiser's moments;
MeZO keeps none of them. One step (:meth:`ZeroOrder.step`):

1. draw a seed ``s``;
2. perturb every trainable tensor in place, ``theta += eps * u * z`` with ``z ~ N(0, 1)`` drawn from a
   generator seeded with ``s``, tensor by tensor (``z`` is never stored; only one tensor's ``z`` exists at a
   time), and measure the loss ``L+``;
3. ``theta -= 2 eps * u * z`` (the same ``z``, regenerated from ``s``): ``L-``;
4. ``theta += eps * u * z``: the weights are back where they were;
5. the projected gradient ``g = (L+ - L-) / (2 eps)`` (optionally clipped to ``[-clip, clip]``, QZO's
   directional-derivative clipping) and the update ``theta -= lr * g * u * z``, regenerating ``z`` once more.

``u`` is a per-tensor unit (1 for ordinary weights: plain MeZO): QZO (:mod:`.qzo`) perturbs the
quantisation scales relative to their size, which is SPSA on ``scale / u`` (a diagonal preconditioner).
The expected update is ``-lr * u**2 * grad`` (``E[z z^T] = I``); its variance grows with the number of
trainable values, which is why zeroth-order methods need many more, but far cheaper, steps than
backpropagation, and why fewer trainable values (QZO's scales) help.

A step's record (seed, ``g``) is all it takes to replay the update from the starting weights
(:meth:`ZeroOrder.replay`), so a whole run is a log of two numbers per step.

Example (a quadratic: the loss goes down):
    >>> import torch
    >>> w = torch.ones(16)
    >>> zo = ZeroOrder([ZOParam("w", w)], eps=1e-3, lr=0.05, seed=0)
    >>> before = float((w**2).sum())
    >>> for _ in range(100):
    ...     _ = zo.step(lambda: float((w**2).sum()))
    >>> float((w**2).sum()) < before / 2
    True
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class ZOParam:
    """A tensor that zeroth-order steps move in place.

    Attributes:
        name: for logs.
        tensor: the parameter's data (moved in place under ``torch.no_grad``).
        unit: perturbation and update scale of this tensor (1: plain MeZO).
        decay: whether weight decay applies.
    """

    name: str
    tensor: Any
    unit: float = 1.0
    decay: bool = True


@dataclass(frozen=True)
class ZOStep:
    """One step's record: enough to replay it (``seed``, ``grad``, ``lr``) and to follow the run."""

    step: int
    seed: int
    loss_plus: float
    loss_minus: float
    grad: float  # the projected gradient (after clipping); 0 when the step was skipped
    lr: float
    clipped: bool
    skipped: bool  # a non-finite loss: the weights were restored, no update
    seconds: float

    @property
    def loss(self) -> float:
        """The loss at the current weights, estimated as the mean of the two perturbed losses."""
        return 0.5 * (self.loss_plus + self.loss_minus)


class ZeroOrder:
    """The two-forward estimator and update over a list of :class:`ZOParam` (module docstring).

    It keeps no state but the tensors' references, a seeded random source and a step counter.
    """

    def __init__(
        self,
        params: Sequence[ZOParam],
        *,
        eps: float = 1e-3,
        lr: float = 1e-5,
        weight_decay: float = 0.0,
        clip: float | None = None,
        seed: int = 0,
    ) -> None:
        if not params:
            raise ValueError("no trainable tensors: nothing to adapt")
        if eps <= 0:
            raise ValueError(f"eps={eps}: must be > 0")
        if clip is not None and clip <= 0:
            raise ValueError(f"clip={clip}: must be > 0 (or None)")
        self.params = list(params)
        self.eps = eps
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip = clip
        self.rng = random.Random(seed)
        self.steps = 0

    @property
    def numel(self) -> int:
        """Number of trainable values."""
        return sum(int(p.tensor.numel()) for p in self.params)

    def _noise(self, seed: int) -> Iterator[tuple[ZOParam, Any]]:
        """``(param, z)`` tensor by tensor; ``z`` drawn from generators seeded with ``seed`` (one per device)."""
        import torch

        gens: dict[str, Any] = {}
        for p in self.params:
            t = p.tensor
            key = str(t.device)
            if key not in gens:
                gens[key] = torch.Generator(device=t.device).manual_seed(seed)
            yield p, torch.randn(t.shape, generator=gens[key], device=t.device, dtype=t.dtype)

    def perturb(self, seed: int, scale: float) -> None:
        """``theta += scale * u * z(seed)`` for every tensor, in place."""
        import torch

        with torch.no_grad():
            for p, z in self._noise(seed):
                p.tensor.add_(z, alpha=scale * p.unit)

    def update(self, seed: int, grad: float, lr: float) -> None:
        """``theta = theta * (1 - lr * wd) - lr * grad * u * z(seed)``, in place."""
        import torch

        with torch.no_grad():
            for p, z in self._noise(seed):
                if self.weight_decay and p.decay:
                    p.tensor.mul_(1.0 - lr * self.weight_decay)
                p.tensor.add_(z, alpha=-lr * grad * p.unit)

    def step(self, loss_fn: Callable[[], float], lr: float | None = None) -> ZOStep:
        """One MeZO step with ``loss_fn`` (a forward pass at the current weights, returning a float)."""
        t0 = time.perf_counter()
        lr = self.lr if lr is None else lr
        seed = self.rng.randrange(2**31)
        self.perturb(seed, self.eps)
        loss_plus = float(loss_fn())
        self.perturb(seed, -2.0 * self.eps)
        loss_minus = float(loss_fn())
        self.perturb(seed, self.eps)
        self.steps += 1
        skipped = not (math.isfinite(loss_plus) and math.isfinite(loss_minus))
        grad, clipped = 0.0, False
        if not skipped:
            grad = (loss_plus - loss_minus) / (2.0 * self.eps)
            if self.clip is not None and abs(grad) > self.clip:
                grad, clipped = math.copysign(self.clip, grad), True
            self.update(seed, grad, lr)
        return ZOStep(self.steps, seed, loss_plus, loss_minus, grad, lr, clipped, skipped, time.perf_counter() - t0)

    def replay(self, records: Sequence[ZOStep], undo: bool = False) -> None:
        """Apply (or, with ``undo``, revert in reverse order) logged steps to the current weights.

        Replaying a run's log on its starting weights gives its result (up to float rounding); undoing the
        last steps goes back to an earlier point of the run without having stored any weights.
        """
        import torch

        seq = list(reversed(records)) if undo else list(records)
        for r in seq:
            if r.skipped:
                continue
            if not undo:
                self.update(r.seed, r.grad, r.lr)
                continue
            with torch.no_grad():
                for p, z in self._noise(r.seed):
                    p.tensor.add_(z, alpha=r.lr * r.grad * p.unit)
                    if self.weight_decay and p.decay:
                        p.tensor.div_(1.0 - r.lr * self.weight_decay)


def select_params(model: Any, include: str | None = None, exclude: str | None = None) -> list[ZOParam]:
    """MeZO's trainable tensors: the model's floating-point parameters whose names match ``include`` (a regular
    expression searched in the name; default: all) and not ``exclude``. Norm weights and biases are not
    decayed. Tied parameters appear once.

    Raises:
        ValueError: no parameter matches.
    """
    inc = re.compile(include) if include else None
    exc = re.compile(exclude) if exclude else None
    out = []
    for name, p in model.named_parameters():
        if not p.dtype.is_floating_point:
            continue
        if inc is not None and not inc.search(name):
            continue
        if exc is not None and exc.search(name):
            continue
        p.requires_grad_(False)
        out.append(ZOParam(name, p.data, 1.0, decay=p.ndim >= 2))
    if not out:
        raise ValueError(f"no parameter matches include={include!r} exclude={exclude!r}")
    return out


__all__ = ["ZOParam", "ZOStep", "ZeroOrder", "select_params"]
