"""SmolVLM / Idefics3: 1-D RoPE, one frame = ``<fake_token_around_image><global-img><image>*N<fake...>``.

Positions are plain integers continuing from the stream's next position; they are always passed
explicitly so that, after eviction shrinks the cache, they are never re-derived from the cache length.
Frames are not split into tiles (``do_image_splitting=False``): a stream wants a fixed, small token cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agentkit.policies.vlm.adapters.base import Adapter, Chunk, Template


class Idefics3Adapter(Adapter):
    """Adapter for ``SmolVLMForConditionalGeneration`` and ``Idefics3ForConditionalGeneration``."""

    pos_axes = 1
    template = Template(
        system="<|im_start|>System: {system}<end_of_utterance>\nUser: {instruction}<end_of_utterance>\n",
        user_open="User:",
        turn_close="<end_of_utterance>\n",
        assistant_open="Assistant:",
    )

    def __init__(self, arch: str, model: Any, tokenizer: Any, image_processor: Any) -> None:
        super().__init__(arch, model, tokenizer, image_processor)
        cfg = model.config
        self.image_token_id = int(cfg.image_token_id)
        vc = cfg.vision_config
        side = int(vc.image_size) // int(vc.patch_size)
        self.seq_len = side * side // int(cfg.scale_factor) ** 2
        fake_id = self.token_id("<fake_token_around_image>")
        global_id = self.token_id("<global-img>")
        if fake_id is None or global_id is None:
            raise ValueError("tokenizer lacks <fake_token_around_image> or <global-img>")
        self.fake_id: int = fake_id
        self.global_id: int = global_id

    def frame_chunk(self, image: np.ndarray) -> Chunk:
        out = self.image_processor(
            images=[[image]], return_tensors="pt", do_image_splitting=False, input_data_format="channels_last"
        )
        n = self.seq_len
        ids = [self.fake_id, self.global_id] + [self.image_token_id] * n + [self.fake_id]
        types = [0, 0] + [1] * n + [0]
        img = {"pixel_values": out["pixel_values"]}
        if "pixel_attention_mask" in out:
            img["pixel_attention_mask"] = out["pixel_attention_mask"]
        return Chunk(ids, types, [img])

    def vision_inputs(self, images: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        dev, dt = self.device, self.dtype
        kw = {"pixel_values": torch.cat([i["pixel_values"] for i in images], dim=1).to(dev, dt)}
        if all("pixel_attention_mask" in i for i in images):
            kw["pixel_attention_mask"] = torch.cat([i["pixel_attention_mask"] for i in images], dim=1).to(dev)
        return kw

    def positions(self, chunk: Chunk, start: int) -> tuple[Any, int]:
        import torch

        pos = (torch.arange(len(chunk.ids)) + start)[None, :]
        return pos, start + len(chunk.ids)
