"""The adapter contract: turn prompt parts (text, token ids, frames) into one model chunk with positions.

A *chunk* is what one forward call appends to the KV cache. Adapters know three architecture-specific
things: the chat/turn template, how a frame becomes pixel inputs plus expanded vision placeholder tokens
(built with the ``*ImageProcessorPil`` classes, so torchvision is never needed), and how RoPE positions of
a chunk are computed given the stream's next position. The session never re-derives positions from the
cache length, which is what keeps eviction exact.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Template:
    """Turn markers of a chat format (strings, tokenized by the model's tokenizer)."""

    system: str  # format string with {system} and {instruction}
    user_open: str
    turn_close: str
    assistant_open: str
    frame_header: str = "<{t0:.0f}s-{t1:.0f}s>\n"  # Streamo's per-second user-turn header


CHATML = Template(
    system="<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{instruction}<|im_end|>\n",
    user_open="<|im_start|>user\n",
    turn_close="<|im_end|>\n",
    assistant_open="<|im_start|>assistant\n",
)
"""The ChatML turn markers of Qwen2-VL, Qwen2.5-VL and LLaVA-OneVision (Qwen2 language model)."""


@dataclass
class Chunk:
    """Token ids (plus per-token modality type) and the pixel inputs of the frames they contain."""

    ids: list[int] = field(default_factory=list)
    types: list[int] = field(default_factory=list)  # 0 text, 1 image
    images: list[dict[str, Any]] = field(default_factory=list)  # processor outputs, one per frame

    def __len__(self) -> int:
        return len(self.ids)

    def extend(self, other: Chunk) -> None:
        self.ids += other.ids
        self.types += other.types
        self.images += other.images


Part = str | np.ndarray | list[int] | Chunk  # one piece of a prompt


class Adapter(abc.ABC):
    """Architecture-specific glue between the engine and a ``*ForConditionalGeneration`` model."""

    pos_axes: int = 1  # rows of position_ids: 3 for M-RoPE, 1 for 1-D RoPE
    template: Template

    def __init__(self, arch: str, model: Any, tokenizer: Any, image_processor: Any) -> None:
        self.arch = arch
        self.model = model
        self.tokenizer = tokenizer
        self.image_processor = image_processor

    # -- tokens ---------------------------------------------------------------------------------------
    def text_ids(self, text: str) -> list[int]:
        """Token ids of ``text`` without BOS/EOS added (special-token strings map to their ids)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_id(self, token: str) -> int | None:
        """The id of a single vocabulary token, or ``None`` when the tokenizer does not have it."""
        tid = self.tokenizer.convert_tokens_to_ids(token)
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if tid is None or (unk is not None and tid == unk and token != self.tokenizer.unk_token):
            return None
        return int(tid)

    @property
    def placeholder_ids(self) -> set[int]:
        """Vision placeholder token ids: never generated (a generated one would be taken for a frame)."""
        names = ("image_token_id", "video_token_id", "image_token_index", "video_token_index")
        cfg = self.model.config
        return {int(v) for n in names if isinstance(v := getattr(cfg, n, None), int)}

    @property
    def eos_ids(self) -> set[int]:
        ids = {self.tokenizer.convert_tokens_to_ids(t) for t in (self.template.turn_close.strip(),)}
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return {int(i) for i in ids if i is not None}

    def encode(self, parts: Sequence[Part]) -> Chunk:
        """One chunk from ordered parts: strings are tokenized, int lists taken as ids, arrays are frames,
        chunks (an already encoded frame) are taken as they are."""
        chunk = Chunk()
        for p in parts:
            if isinstance(p, Chunk):
                chunk.extend(p)
            elif isinstance(p, str):
                ids = self.text_ids(p)
                chunk.extend(Chunk(ids, [0] * len(ids)))
            elif isinstance(p, np.ndarray):
                chunk.extend(self.frame_chunk(p))
            else:
                ids = [int(i) for i in p]
                chunk.extend(Chunk(ids, [0] * len(ids)))
        return chunk

    @abc.abstractmethod
    def frame_chunk(self, image: np.ndarray) -> Chunk:
        """Pixel inputs and expanded placeholder tokens of one RGB frame."""

    # -- positions ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def positions(self, chunk: Chunk, start: int) -> tuple[Any, int]:
        """``(position_ids, next_start)``: positions ``(pos_axes, L)`` of the chunk placed at ``start``."""

    # -- model calls ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def vision_inputs(self, images: list[dict[str, Any]]) -> dict[str, Any]:
        """Model keyword arguments for the pixel inputs of ``images`` (concatenated in order)."""

    def reset_state(self) -> None:
        """Clear per-stream state the model keeps between calls (Qwen's ``rope_deltas``)."""
        return None

    def forward(
        self,
        chunk: Chunk,
        position_ids: Any,
        cache: Any,
        attention_mask: Any = None,
        logits_to_keep: int = 1,
    ) -> Any:
        """Append ``chunk`` to ``cache`` at ``position_ids``; return logits ``(L_kept, vocab)``."""
        import torch

        dev = self.device
        ids = torch.tensor([chunk.ids], dtype=torch.long, device=dev)
        kw = self.vision_inputs(chunk.images) if chunk.images else {}
        pos = position_ids.to(dev)
        pos = pos[:, None, :] if self.pos_axes == 3 else pos  # (3, B, L) or (B, L)
        out = self.model(
            input_ids=ids,
            position_ids=pos,
            past_key_values=cache,
            attention_mask=attention_mask,
            use_cache=cache is not None,
            logits_to_keep=logits_to_keep,
            **kw,
        )
        return out.logits[0]

    def full_forward(self, chunk: Chunk, attention_mask: Any = None, position_ids: Any = None) -> Any:
        """One forward over a whole transcript with no cache (the reference). Positions default to the
        model's own computation, which is what makes this an independent check of :meth:`positions`."""
        import torch

        self.reset_state()
        dev = self.device
        ids = torch.tensor([chunk.ids], dtype=torch.long, device=dev)
        kw = self.vision_inputs(chunk.images) if chunk.images else {}
        kw.update(self.reference_kwargs(chunk))
        if position_ids is not None:
            kw["position_ids"] = position_ids.to(dev)[:, None, :] if self.pos_axes == 3 else position_ids.to(dev)
        out = self.model(input_ids=ids, attention_mask=attention_mask, use_cache=False, **kw)
        self.reset_state()
        return out.logits[0]

    def reference_positions(self, chunk: Chunk) -> Any:
        """Positions ``(pos_axes, L)`` of a whole transcript as the model itself computes them."""
        import torch

        return torch.arange(len(chunk.ids))[None, :]

    def reference_kwargs(self, chunk: Chunk) -> dict[str, Any]:
        """Extra keyword arguments the model needs to compute positions itself (e.g. token types)."""
        return {}

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype
