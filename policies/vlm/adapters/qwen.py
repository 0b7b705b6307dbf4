"""Qwen2-VL and Qwen2.5-VL: 3-axis M-RoPE positions computed per chunk and shifted by the stream position.

Stock ``generate()`` gives vision tokens that arrive after the first prefill plain text positions (max logit
error ~2-4e-2 measured here). Instead each chunk's ``(3, L)`` positions come from
``model.model.get_rope_index`` on the chunk alone, shifted by the stream's next position; the next
position is the last token's position + 1 (chunks always end with text, so all three axes agree there).
Frames are fed as images: one frame = ``<|vision_start|><|image_pad|>*N<|vision_end|>``.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np

from agentkit.policies.vlm.adapters.base import CHATML, Adapter, Chunk


class QwenVLAdapter(Adapter):
    """Adapter for ``Qwen2VLForConditionalGeneration`` and ``Qwen2_5_VLForConditionalGeneration``."""

    pos_axes = 3
    template = CHATML

    def __init__(self, arch: str, model: Any, tokenizer: Any, image_processor: Any) -> None:
        super().__init__(arch, model, tokenizer, image_processor)
        cfg = model.config
        self.image_token_id = int(cfg.image_token_id)
        self.vision_start_id = int(cfg.vision_start_token_id)
        self.vision_end_id = int(cfg.vision_end_token_id)
        self.merge = int(cfg.vision_config.spatial_merge_size)
        # Relative chunk positions depend only on the token types and the image grids: a stream sends the
        # same chunk shapes frame after frame, so get_rope_index (~0.4 ms on CPU) runs once per shape.
        self._rel_positions: collections.OrderedDict[tuple[Any, ...], Any] = collections.OrderedDict()

    def frame_chunk(self, image: np.ndarray) -> Chunk:
        image = _limit_aspect(image, 100.0)  # smart_resize rejects aspect ratios above 200
        out = self.image_processor(images=[image], return_tensors="pt", input_data_format="channels_last")
        grid = out["image_grid_thw"]
        n = int(grid.prod().item()) // (self.merge**2)
        ids = [self.vision_start_id] + [self.image_token_id] * n + [self.vision_end_id]
        types = [0] + [1] * n + [0]
        return Chunk(ids, types, [{"pixel_values": out["pixel_values"], "image_grid_thw": grid}])

    def vision_inputs(self, images: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        dev, dt = self.device, self.dtype
        return {
            "pixel_values": torch.cat([i["pixel_values"] for i in images]).to(dev, dt),
            "image_grid_thw": torch.cat([i["image_grid_thw"] for i in images]).to(dev),
        }

    def positions(self, chunk: Chunk, start: int) -> tuple[Any, int]:
        import torch

        if chunk.images:
            grid = torch.cat([i["image_grid_thw"] for i in chunk.images])
            key = (tuple(chunk.types), tuple(grid.flatten().tolist()))
            rel = self._rel_positions.get(key)
            if rel is None:
                ids = torch.tensor([chunk.ids], dtype=torch.long)
                types = torch.tensor([chunk.types], dtype=torch.int)
                pos, _ = self.model.model.get_rope_index(ids, mm_token_type_ids=types, image_grid_thw=grid)
                rel = pos[:, 0, :].cpu()
                self._rel_positions[key] = rel
                if len(self._rel_positions) > 256:
                    self._rel_positions.popitem(last=False)
            else:
                self._rel_positions.move_to_end(key)
            pos = rel + start
        else:
            pos = (torch.arange(len(chunk.ids)) + start)[None, :].expand(3, -1).clone()
        if chunk.types and chunk.types[-1] != 0:
            raise ValueError("a chunk must end with a text token so the next position is well defined")
        return pos, int(pos[:, -1].max().item()) + 1

    def reference_kwargs(self, chunk: Chunk) -> dict[str, Any]:
        import torch

        return {"mm_token_type_ids": torch.tensor([chunk.types], dtype=torch.int, device=self.device)}

    def reference_positions(self, chunk: Chunk) -> Any:
        import torch

        ids = torch.tensor([chunk.ids], dtype=torch.long)
        types = torch.tensor([chunk.types], dtype=torch.int)
        grid = torch.cat([i["image_grid_thw"] for i in chunk.images]) if chunk.images else None
        pos, _ = self.model.model.get_rope_index(ids, mm_token_type_ids=types, image_grid_thw=grid)
        return pos[:, 0, :]

    def reset_state(self) -> None:
        self.model.model.rope_deltas = None


def _limit_aspect(image: np.ndarray, max_ratio: float) -> np.ndarray:
    """Pad (black) the short side of a very elongated frame so its aspect ratio is at most ``max_ratio``."""
    h, w = image.shape[:2]
    if max(h, w) <= max_ratio * min(h, w):
        return image
    if h < w:
        pad = int(np.ceil(w / max_ratio)) - h
        return np.pad(image, ((0, pad), (0, 0), (0, 0)))
    pad = int(np.ceil(h / max_ratio)) - w
    return np.pad(image, ((0, 0), (0, pad), (0, 0)))
