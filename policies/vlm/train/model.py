"""The model to train: a new one from scratch at a preset size, or an existing checkpoint; LoRA for large ones.

Why: two ways into training, one output. From scratch (``--arch``), the tokenizer is trained offline on the
dataset's own text with the ``words`` pre-tokenizer of :func:`~agentkit.policies.vlm.build.build_tokenizer`
(every digit a token, JSON syntax merged, words kept whole so they can be copied from the instruction into a
call), and the model is built from the architecture's tiny config at a preset size. From a checkpoint
(``--model``), the state tokens are added to its tokenizer and embeddings when missing (new rows start at
the mean embedding); a large model gets LoRA adapters (``peft``) on its language model's projections, with
the state tokens' embedding and output rows trainable (``trainable_token_indices``). Either way the result
is saved with ``save_pretrained`` into a folder the engine loads like any checkpoint (LoRA merged first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentkit.errors import ConfigError
from agentkit.policies.vlm.architectures import arch_of, get_arch

PRESETS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "tiny": {},  # the builder's own tiny config (tests), for every architecture
    "mini": {
        "qwen2_vl": {
            "text": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2),
            "vision": dict(depth=3, embed_dim=64, num_heads=4, mlp_ratio=3),
        },
        "smolvlm": {
            "text": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=3, num_attention_heads=4,
                         num_key_value_heads=2),
            "vision": dict(hidden_size=64, intermediate_size=192, num_hidden_layers=3, num_attention_heads=4,
                           image_size=192, patch_size=16),
        },
    },
    "small": {
        "qwen2_vl": {
            "text": dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2),
            "vision": dict(depth=4, embed_dim=96, num_heads=4, mlp_ratio=2),
        },
        "smolvlm": {
            "text": dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2),
            "vision": dict(hidden_size=96, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                           image_size=192, patch_size=16),
        },
    },
    "base": {
        "qwen2_vl": {
            "text": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=6, num_attention_heads=4,
                         num_key_value_heads=2),
            "vision": dict(depth=6, embed_dim=128, num_heads=4, mlp_ratio=2),
        },
        "smolvlm": {
            "text": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=6, num_attention_heads=4,
                         num_key_value_heads=2),
            "vision": dict(hidden_size=128, intermediate_size=384, num_hidden_layers=6, num_attention_heads=4,
                           image_size=224, patch_size=14),
        },
    },
}  # fmt: skip
"""From-scratch sizes per architecture: ``tiny`` (the builder's, any architecture, for tests), ``mini``
(~1 M parameters), ``small`` (~2.5 M) and ``base`` (~6 M) for ``qwen2_vl`` and ``smolvlm``. SmolVLM at
``mini`` and ``small``: 192 px frames, 16 px patches, pixel shuffle 2 -> 36 tokens per frame (``image_size``
changes it); ``base``: 224 px, 14 px -> 64 tokens."""
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
"""The language model's projections that get LoRA adapters (the vision tower's are named differently)."""
LORA_ABOVE = 300_000_000
"""A pretrained model with more parameters than this is trained with LoRA unless told otherwise."""


@dataclass
class Trainable:
    """A model ready to train, with what the engine needs to run it."""

    arch: str
    model: Any
    tokenizer: Any
    processor: Any
    adapter: Any
    source: str  # "scratch:<preset>" or the checkpoint path
    peft: Any = None  # the PeftModel when trained with LoRA (its adapters run inside ``model``)

    @property
    def lora(self) -> bool:
        return self.peft is not None


def _mrope(head_dim: int) -> list[int]:
    """Qwen's M-RoPE sections (temporal, height, width) for a head size: 1/4, 3/8, 3/8 of its half."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def sincos_2d(side: int, dim: int) -> Any:
    """Fixed 2-D sine-cosine position codes of a ``side`` x ``side`` patch grid (MAE's), ``(side**2, dim)``:
    half the channels encode the row, half the column, at geometric frequencies."""
    import torch

    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float32) / max(quarter, 1)))
    grid = torch.arange(side, dtype=torch.float32)
    rows, cols = torch.meshgrid(grid, grid, indexing="ij")
    parts = []
    for coord in (rows.reshape(-1), cols.reshape(-1)):
        angles = coord[:, None] * omega[None, :]
        parts += [torch.sin(angles), torch.cos(angles)]
    codes = torch.cat(parts, dim=1)
    if codes.shape[1] < dim:
        codes = torch.cat([codes, torch.zeros(codes.shape[0], dim - codes.shape[1])], dim=1)
    return codes


def init_vision_positions(model: Any) -> bool:
    """Start a from-scratch SigLIP tower's learned position embeddings at 2-D sine-cosine codes.

    Why: a tool call's point is written as digits, so the model must read *where* a patch is; random position
    embeddings carry that only after much training, smooth 2-D codes from the first step (they stay
    trainable). Qwen's vision tower has no absolute positions (2-D RoPE), so it is left as it is.
    Returns whether the model had such embeddings.
    """
    import torch

    emb = None
    for name, module in model.named_modules():
        if (
            name.endswith("embeddings")
            and hasattr(module, "position_embedding")
            and hasattr(module, "num_patches_per_side")
        ):
            emb = module
            break
    if emb is None:
        return False
    weight = emb.position_embedding.weight
    side = int(emb.num_patches_per_side)
    if weight.shape[0] != side * side:
        return False
    with torch.no_grad():
        weight.copy_(sincos_2d(side, weight.shape[1]).to(weight.dtype))
    return True


def set_pixel_budget(processor: Any, max_pixels: int | None) -> None:
    """Cap a pixel-budget processor (Qwen) at ``max_pixels`` per frame, as the engine's loader does."""
    if max_pixels:
        lo = min(int((getattr(processor, "size", None) or {}).get("shortest_edge", 56 * 56)), int(max_pixels))
        processor.size = {"shortest_edge": lo, "longest_edge": int(max_pixels)}


def new_model(
    arch: str,
    preset: str,
    corpus: list[str],
    *,
    vocab_size: int = 2000,
    state_tokens: tuple[str, str, str] = ("<silence>", "<standby>", "<response>"),
    max_pixels: int | None = None,
    image_size: int | None = None,
    seed: int = 0,
) -> Trainable:
    """A model with random weights at ``preset`` size and a tokenizer trained on ``corpus``.

    ``max_pixels`` (Qwen) or ``image_size`` (SmolVLM / Idefics3: the square side frames are resized to, a
    multiple of the patch size times the pixel-shuffle factor) set the vision tokens per frame.

    Raises:
        ConfigError: an unknown preset, or a preset other than ``tiny`` for an architecture without presets.
    """
    import torch

    from agentkit.policies.vlm.build import build_tokenizer

    if preset not in PRESETS:
        raise ConfigError(f"preset={preset!r}: must be one of {', '.join(PRESETS)}")
    if preset != "tiny" and arch not in PRESETS[preset]:
        raise ConfigError(f"preset={preset!r} exists for {', '.join(PRESETS[preset])}; use preset='tiny' for {arch}")
    spec = get_arch(arch)
    builder = spec.tiny_builder()
    tokenizer = build_tokenizer(arch, vocab_size, tuple(state_tokens), corpus=corpus, pre_tokenizer="words")
    config = builder.config(spec, "tiny", tokenizer, None)
    dims = PRESETS[preset].get(arch)
    if dims:  # rebuild the config from its dict, so fields derived from the sizes are derived again
        d = config.to_dict()
        tc, vc = d["text_config"], d["vision_config"]
        for derived in ("layer_types", "head_dim"):
            tc.pop(derived, None)
        tc.update(dims["text"], initializer_range=0.02)
        vc.update(dims["vision"], initializer_range=0.02)
        if image_size and spec.token_px is None:
            step = int(vc["patch_size"]) * int(d.get("scale_factor", 1))
            if image_size % step:
                raise ConfigError(f"image_size={image_size}: must be a multiple of {step} (patch x pixel shuffle)")
            vc["image_size"] = image_size
        if spec.token_px is not None:  # Qwen: M-RoPE sections follow the head size; the merger feeds the text width
            head_dim = tc["hidden_size"] // tc["num_attention_heads"]
            tc["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": _mrope(head_dim)}
            vc["hidden_size"] = tc["hidden_size"]
        config = type(config).from_dict(d)
    torch.manual_seed(seed)
    model = spec.load_model_class()(config)
    init_vision_positions(model)
    processor = builder.image_processor(spec, config, builder.default_tokens_per_frame("tiny"))
    if spec.token_px is not None:
        set_pixel_budget(processor, max_pixels or 48 * spec.token_px**2)
    adapter = spec.make_adapter(model, tokenizer, processor)
    return Trainable(arch, model, tokenizer, processor, adapter, f"scratch:{preset}")


def load_pretrained(
    path: str,
    *,
    state_tokens: tuple[str, str, str] = ("<silence>", "<standby>", "<response>"),
    max_pixels: int | None = None,
    lora: bool | None = None,
    lora_r: int = 16,
    lora_alpha: int = 32,
    device: str | None = None,
    dtype: str | None = None,
) -> Trainable:
    """An existing checkpoint, with the state tokens added where missing and LoRA where asked (or large).

    Raises:
        ConfigError: the checkpoint cannot be read or its architecture is not supported.
    """
    from transformers import AutoConfig, AutoTokenizer

    from agentkit.policies.vlm.loading import pick_device

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the checkpoint {path}: {str(e).splitlines()[0]}") from e
    spec = arch_of(config)
    if spec is None:
        raise ConfigError(f"{path}: model type {getattr(config, 'model_type', '?')!r} is not supported")
    dev, dt = pick_device(device, dtype)
    model = spec.load_model_class().from_pretrained(path, dtype=dt).to(dev)
    tokenizer = AutoTokenizer.from_pretrained(path)
    processor = spec.load_image_processor_class().from_pretrained(path)
    if spec.token_px is not None:
        set_pixel_budget(processor, max_pixels)
    unk = getattr(tokenizer, "unk_token_id", None)
    missing = [t for t in state_tokens if tokenizer.convert_tokens_to_ids(t) in (None, unk)]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    n_params = sum(p.numel() for p in model.parameters())
    peft = None
    if lora if lora is not None else n_params > LORA_ABOVE:
        ids = [int(str(tokenizer.convert_tokens_to_ids(t))) for t in state_tokens]
        peft = add_lora(model, ids, r=lora_r, alpha=lora_alpha)
    adapter = spec.make_adapter(model, tokenizer, processor)  # LoRA layers sit inside ``model`` itself
    return Trainable(spec.name, model, tokenizer, processor, adapter, path, peft)


def add_lora(model: Any, state_ids: list[int], *, r: int = 16, alpha: int = 32) -> Any:
    """LoRA adapters (``peft``) on the language model's projections, in place; the state tokens' embedding
    (and untied output) rows stay trainable. Returns the ``PeftModel`` (the model itself runs the adapters)."""
    from peft import LoraConfig, get_peft_model

    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    tokens: dict[str, list[int]] = {"embed_tokens": list(state_ids)}
    if not tied:
        tokens["lm_head"] = list(state_ids)
    cfg = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules=list(LORA_TARGETS),
        trainable_token_indices=tokens,
    )
    return get_peft_model(model, cfg)


def save(
    t: Trainable,
    out: str | Path,
    *,
    dtype: str = "float16",
    meta: dict[str, Any] | None = None,
) -> Path:
    """Save model (in ``dtype``), tokenizer, image processor and ``agentkit_vlm.json`` into ``out``."""
    import copy

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = t.model
    if t.peft is not None:  # a copy with the adapters folded in; training can go on with the original
        model = copy.deepcopy(t.peft).merge_and_unload()
    dt = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
    if dt != torch.float32 or next(model.parameters()).dtype != torch.float32:
        model = copy.deepcopy(model).to(dt)
    model.save_pretrained(out)
    t.tokenizer.save_pretrained(out)
    t.processor.save_pretrained(out)
    info = {"arch": t.arch, "random_weights": False, "trained": True, "source": t.source, "dtype": dtype}
    info.update(meta or {})
    (out / "agentkit_vlm.json").write_text(json.dumps(info, indent=2))
    return out


__all__ = [
    "LORA_TARGETS",
    "PRESETS",
    "Trainable",
    "add_lora",
    "load_pretrained",
    "new_model",
    "save",
    "set_pixel_budget",
]
