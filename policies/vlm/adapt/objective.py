"""The adaptation loss: exactly the training loss, forward only.

Why: adaptation must optimise what ``agentkit train`` optimised, on the same tokens and positions, or it
would pull the model towards another objective. :class:`Objective` builds a batch with the training
collate code (:func:`~agentkit.policies.vlm.train.collate.encode_dialogue`, ``collate``, ``forward``: the
engine's adapter, the shared system prefix run once) and scores it with
:func:`~agentkit.policies.vlm.train.loss.streaming_loss` (assistant tokens only; focal loss on the state
tokens, Streamo's gamma = 2; or the trainer's other modes), under ``torch.inference_mode``: no graph, no
activations kept beyond the layer being computed.

A batch may be scored in micro-batches (``micro_batch`` dialogues per forward) to bound the activations of
one forward pass; the result is the same mean over every target token of the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentkit.policies.vlm.train.dataset import Dialogue
from agentkit.policies.vlm.train.loss import StateLoss


@dataclass(frozen=True)
class LossValue:
    """A batch's loss (mean over its target tokens) and its state-token accuracy."""

    loss: float
    targets: int
    state_tokens: int
    state_correct: int

    @property
    def state_accuracy(self) -> float:
        return self.state_correct / self.state_tokens if self.state_tokens else 0.0


class Objective:
    """The training loss of dialogues under the adapter's current weights (module docstring).

    Args:
        adapter: the engine's adapter of the model being adapted.
        state_ids: the three state-token ids (silence, standby, response).
        load_frame: reads a dialogue's frame path into an RGB array.
        mode: ``focal`` | ``ce`` | ``weighted`` (as ``agentkit train --state-loss``).
        gamma: the focal exponent.
        weights: per-state weights for ``weighted``.
        micro_batch: dialogues per forward pass (default: the whole batch in one).
    """

    def __init__(
        self,
        adapter: Any,
        state_ids: Sequence[int],
        load_frame: Callable[[str], np.ndarray],
        *,
        mode: StateLoss = "focal",
        gamma: float = 2.0,
        weights: list[float] | None = None,
        micro_batch: int | None = None,
    ) -> None:
        self.adapter = adapter
        self.state_ids = list(state_ids)
        self.load_frame = load_frame
        self.mode: StateLoss = mode
        self.gamma = gamma
        self.weights = weights
        self.micro_batch = micro_batch
        pad = adapter.tokenizer.pad_token_id
        self.pad = int(pad) if pad is not None else 0

    def encode(self, dialogues: Sequence[Dialogue]) -> list[Any]:
        """The dialogues as training inputs (``collate.Encoded``), tokens and positions as the engine sees them."""
        from agentkit.policies.vlm.train.collate import encode_dialogue

        return [encode_dialogue(self.adapter, d, self.load_frame, self.state_ids) for d in dialogues]

    def __call__(self, encoded: Sequence[Any]) -> LossValue:
        """The loss of encoded dialogues (grouped by system prefix, ``micro_batch`` per forward)."""
        import torch

        from agentkit.policies.vlm.train.collate import collate, forward
        from agentkit.policies.vlm.train.loss import streaming_loss

        groups: dict[tuple[int, ...], list[Any]] = {}
        for e in encoded:
            groups.setdefault(tuple(e.prefix.ids), []).append(e)
        size = self.micro_batch or len(encoded)
        total = 0.0
        targets = states = correct = 0
        model = self.adapter.model
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for group in groups.values():
                    for i in range(0, len(group), size):
                        batch = collate(group[i : i + size], self.pad, self.adapter.pos_axes)
                        logits = forward(model, self.adapter, batch)
                        parts = streaming_loss(
                            logits, batch.labels, batch.states, self.state_ids, mode=self.mode, gamma=self.gamma,
                            weights=self.weights,
                        )  # fmt: skip
                        n = parts.state_tokens + parts.answer_tokens
                        total += float(parts.loss) * n
                        targets += n
                        states += parts.state_tokens
                        correct += parts.state_correct
                        del logits, parts, batch
        finally:
            model.train(was_training)
        return LossValue(total / max(targets, 1), targets, states, correct)

    def of(self, dialogues: Sequence[Dialogue]) -> LossValue:
        """Encode and score in one call."""
        return self(self.encode(dialogues))


__all__ = ["LossValue", "Objective"]
