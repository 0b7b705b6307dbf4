"""LLaVA-OneVision: 1-D RoPE (Qwen2 text model); each frame is fed as a one-frame *video*.

The image path of LLaVA-OneVision tiles a frame into "anyres" patches (hundreds to thousands of tokens);
its video path pools each frame 2x2 and appends one newline embedding, which is the fixed, small per-frame
cost a stream wants: ``<video> * (ceil(side/2)**2 + 1)``. The frame is resized to the vision tower's
square input and normalized with the checkpoint's mean/std by hand (the HF video processor needs
torchvision). Positions are plain integers continuing from the stream's next position.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agentkit.policies.vlm.adapters.base import CHATML, Adapter, Chunk


class LlavaOnevisionAdapter(Adapter):
    """Adapter for ``LlavaOnevisionForConditionalGeneration``."""

    pos_axes = 1
    template = CHATML

    def __init__(self, arch: str, model: Any, tokenizer: Any, image_processor: Any) -> None:
        super().__init__(arch, model, tokenizer, image_processor)
        cfg = model.config
        self.video_token_id = int(cfg.video_token_index)
        vc = cfg.vision_config
        self.side = int(vc.image_size)
        grid = self.side // int(vc.patch_size)
        self.n_tokens = math.ceil(grid / 2) ** 2 + 1  # pooled frame + one newline embedding
        self.mean = np.array(getattr(image_processor, "image_mean", [0.5, 0.5, 0.5]), dtype=np.float32)
        self.std = np.array(getattr(image_processor, "image_std", [0.5, 0.5, 0.5]), dtype=np.float32)

    def frame_chunk(self, image: np.ndarray) -> Chunk:
        import torch
        from PIL import Image

        im = Image.fromarray(image).convert("RGB").resize((self.side, self.side), Image.Resampling.BICUBIC)
        arr = (np.asarray(im, dtype=np.float32) / 255.0 - self.mean) / self.std
        px = torch.from_numpy(arr.transpose(2, 0, 1).copy())[None, None]  # (1 video, 1 frame, C, H, W)
        ids = [self.video_token_id] * self.n_tokens
        return Chunk(ids, [2] * self.n_tokens, [{"pixel_values_videos": px}])

    def encode(self, parts: Any) -> Chunk:
        chunk = super().encode(parts)
        if chunk.types and chunk.types[-1] != 0:
            raise ValueError("a chunk must end with a text token")
        return chunk

    def vision_inputs(self, images: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        px = torch.cat([i["pixel_values_videos"] for i in images]).to(self.device, self.dtype)
        return {"pixel_values_videos": px}

    def positions(self, chunk: Chunk, start: int) -> tuple[Any, int]:
        import torch

        pos = (torch.arange(len(chunk.ids)) + start)[None, :]
        return pos, start + len(chunk.ids)
