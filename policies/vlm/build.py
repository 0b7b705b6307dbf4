"""Build small (or real-sized, random-weight) VLM checkpoints offline.

No model hub is reachable on the machines this project is tested on, yet the engine must be exercised on
the same code path a user's real checkpoint takes. This module trains a small BPE tokenizer with
``tokenizers`` (including every special token the architecture's prompt format needs plus the Streamo
state tokens), builds a model with random weights from a config, and ``save_pretrained``-s model,
tokenizer and image-processor config into one directory that :func:`agentkit.policies.vlm.loading.load`
reads back with ``from_pretrained``.

What differs per architecture family (special tokens, config dimensions, image-processor sizing) lives in
one :class:`~agentkit.policies.vlm.architectures.TinyBuilder` per family here; the registry
(:mod:`agentkit.policies.vlm.architectures`) names the builder of each architecture.

Sizes: ``tiny`` (a few hundred thousand parameters, for tests), ``2b`` and ``7b`` (the real
architectures' dimensions, random weights; speed does not depend on weight values).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentkit.policies.vlm.architectures import ArchSpec, TinyBuilder, get_arch

SIZES = ("tiny", "2b", "7b")
STATE_TOKENS = ("<silence>", "<standby>", "<response>")

_CORPUS = """\
You are a helpful streaming assistant. Watch the video and answer when something relevant happens.
A person walks up to the table and picks up a bottle. The cat jumps on the sofa. Click the button.
Describe what you see. Is there a person in the frame? Yes, a person is standing near the door.
The box is at (120, 340), (560, 780). Point at the red cup. <point x="43.0" y="58.0">cup</point>
{"name": "click", "arguments": {"x": 0.5, "y": 0.25}} {"name": "pick", "arguments": {"object": "cube"}}
Should I respond now? Answer yes or no. yes no wait. The car stops at the light, then turns left.
0 1 2 3 4 5 6 7 8 9 10 100 1000 seconds frame time question answer response silence standby.
"""


WORD_PATTERN = r" ?\p{L}+"
"""Pre-token of the ``words`` tokenizer: a run of letters with its leading space (as GPT-2 splits words)."""


def build_tokenizer(
    arch: str,
    vocab_size: int = 400,
    state_tokens: tuple[str, ...] = STATE_TOKENS,
    corpus: Sequence[str] | None = None,
    pre_tokenizer: str = "bytelevel",
) -> Any:
    """Train a byte-level BPE tokenizer on a small built-in corpus (or ``corpus``) and wrap it for transformers.

    Args:
        arch: a registered architecture; its builder decides which special tokens are added.
        vocab_size: target BPE vocabulary size (specials included).
        state_tokens: the decision tokens to add (e.g. Streamo's ``</Silence>``...; empty for none, as in
            a stock instruct checkpoint).
        corpus: texts to train the merges on (default: a small built-in English corpus).
        pre_tokenizer: ``bytelevel`` (GPT-2's split: words, numbers, punctuation runs) or ``words``: a
            letter run (with its leading space) is one pre-token, every digit is its own token, and
            everything between (punctuation, JSON syntax, spaces) may merge freely. ``words`` suits a
            model trained from scratch on tool calls: a number is read and written digit by digit, a
            word quoted in an instruction tokenizes as it does inside a tool call (so it can be copied),
            and the JSON around the calls shrinks to a few tokens.

    Returns:
        A ``transformers`` fast tokenizer with the architecture's special tokens and the state tokens.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    builder = get_arch(arch).tiny_builder()
    specials = [*builder.specials, *state_tokens]
    tok = Tokenizer(models.BPE())
    if pre_tokenizer == "bytelevel":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    elif pre_tokenizer == "words":
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="isolated"),
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    else:
        raise ValueError(f"pre_tokenizer must be 'bytelevel' or 'words', got {pre_tokenizer!r}")
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus) if corpus is not None else [_CORPUS] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=builder.eos,
        pad_token="<|endoftext|>",
        additional_special_tokens=[s for s in specials if s not in (builder.eos, "<|endoftext|>")],
    )


def _qwen_text(size: str, arch: str, vocab: int) -> dict[str, Any]:
    dims: dict[str, Any]
    if size == "tiny":
        return dict(
            vocab_size=vocab,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            max_position_embeddings=32768,
            initializer_range=0.1,  # logits of order 1, so a position error is far above the tolerance
        )
    if arch == "qwen2_vl" and size == "2b":  # Qwen2-VL-2B-Instruct
        dims = dict(
            hidden_size=1536,
            intermediate_size=8960,
            num_hidden_layers=28,
            num_attention_heads=12,
            num_key_value_heads=2,
            vocab_size=151936,
        )
    elif arch == "qwen2_5_vl" and size == "2b":  # nearest real size: Qwen2.5-VL-3B-Instruct
        dims = dict(
            hidden_size=2048,
            intermediate_size=11008,
            num_hidden_layers=36,
            num_attention_heads=16,
            num_key_value_heads=2,
            vocab_size=151936,
        )
    else:  # Qwen2-VL-7B / Qwen2.5-VL-7B-Instruct
        dims = dict(
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            vocab_size=152064,
        )
    dims["rope_parameters"] = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}
    dims["max_position_embeddings"] = 128000
    return dims


def _qwen_vision(size: str, arch: str, out_hidden: int) -> dict[str, Any]:
    if arch == "qwen2_vl":
        if size == "tiny":
            return dict(depth=1, embed_dim=32, num_heads=2, mlp_ratio=2, hidden_size=out_hidden)
        return dict(depth=32, embed_dim=1280, num_heads=16, mlp_ratio=4, hidden_size=out_hidden)
    if size == "tiny":
        return dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=out_hidden,
            window_size=56,
            fullatt_block_indexes=[1],
        )
    return dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=out_hidden,
        window_size=112,
        fullatt_block_indexes=[7, 15, 23, 31],
        tokens_per_second=2,
    )


class QwenBuilder(TinyBuilder):
    """Qwen2-VL and Qwen2.5-VL: ChatML, M-RoPE sections, a pixel budget per frame."""

    specials = (
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<|vision_start|>",
        "<|vision_end|>",
        "<|vision_pad|>",
        "<|image_pad|>",
        "<|video_pad|>",
        "<|box_start|>",
        "<|box_end|>",
        "<|quad_start|>",
        "<|quad_end|>",
        "<|object_ref_start|>",
        "<|object_ref_end|>",
        "<tool_call>",
        "</tool_call>",
    )
    eos = "<|im_end|>"

    def config(self, spec: ArchSpec, size: str, tokenizer: Any, tokens_per_frame: int | None) -> Any:
        vocab = max(len(tokenizer), 1)
        text = _qwen_text(size, spec.name, vocab)
        text["vocab_size"] = max(text["vocab_size"], vocab)
        ids = {
            n: tokenizer.convert_tokens_to_ids(t)
            for n, t in [
                ("image_token_id", "<|image_pad|>"),
                ("video_token_id", "<|video_pad|>"),
                ("vision_start_token_id", "<|vision_start|>"),
                ("vision_end_token_id", "<|vision_end|>"),
            ]
        }
        text.update(
            bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        )
        return spec.load_model_class().config_class(
            text_config=text,
            vision_config=_qwen_vision(size, spec.name, text["hidden_size"]),
            tie_word_embeddings=size == "2b",  # Qwen2-VL-2B and Qwen2.5-VL-3B tie them
            **ids,
        )

    def image_processor(self, spec: ArchSpec, config: Any, tokens_per_frame: int) -> Any:
        if spec.token_px is None:
            raise ValueError(f"{spec.name}: a pixel-budget architecture needs ArchSpec.token_px")
        pixels = tokens_per_frame * spec.token_px**2
        return spec.load_image_processor_class()(min_pixels=pixels, max_pixels=pixels)


class Idefics3Builder(TinyBuilder):
    """SmolVLM and Idefics3: a Llama text model, a SigLIP tower, pixel shuffle by ``scale_factor``."""

    specials = (
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "<end_of_utterance>",
        "<fake_token_around_image>",
        "<global-img>",
        "<image>",
        "<tool_call>",
        "</tool_call>",
    )
    eos = "<end_of_utterance>"

    def config(self, spec: ArchSpec, size: str, tokenizer: Any, tokens_per_frame: int | None) -> Any:
        """``tokens_per_frame`` sets the vision image size so one frame yields that many tokens (a square
        number: ``(image_size / patch / scale) ** 2``)."""
        vocab = max(len(tokenizer), 1)
        text: dict[str, Any]
        vision: dict[str, Any]
        if size == "tiny":
            text = dict(
                vocab_size=vocab,
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=32768,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                initializer_range=0.1,
            )
            vision = dict(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=2,
                image_size=64,
                patch_size=16,
            )
            scale = 2
        else:  # SmolVLM2-2.2B text dims; vision at 512 px / 16 px patches / scale 4 -> 64 tokens per frame
            text = dict(
                vocab_size=max(vocab, 49280),
                hidden_size=2048,
                intermediate_size=8192,
                num_hidden_layers=24,
                num_attention_heads=32,
                num_key_value_heads=32,
                max_position_embeddings=16384,
                rope_parameters={"rope_type": "default", "rope_theta": 130000.0},
            )
            vision = dict(
                hidden_size=1152,
                intermediate_size=4304,
                num_hidden_layers=27,
                num_attention_heads=16,
                image_size=512,
                patch_size=16,
            )
            scale = 4
        if tokens_per_frame:
            side = round(tokens_per_frame**0.5)
            if side * side != tokens_per_frame:
                raise ValueError(f"tokens_per_frame must be a square number for {spec.name}, got {tokens_per_frame}")
            vision["image_size"] = side * scale * vision["patch_size"]
        text["model_type"] = "llama"
        text.update(
            bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
            eos_token_id=tokenizer.convert_tokens_to_ids("<end_of_utterance>"),
            pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        )
        return spec.load_model_class().config_class(
            text_config=text,
            vision_config=vision,
            scale_factor=scale,
            image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        )

    def image_processor(self, spec: ArchSpec, config: Any, tokens_per_frame: int) -> Any:
        side = int(config.vision_config.image_size)  # the config already fixes the tokens per frame
        return spec.load_image_processor_class()(
            do_image_splitting=False,
            size={"longest_edge": side},
            max_image_size={"longest_edge": side},
        )


class LlavaOnevisionBuilder(TinyBuilder):
    """LLaVA-OneVision: a Qwen2 text model, a SigLIP tower; a frame is a pooled one-frame video."""

    specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>", "<tool_call>", "</tool_call>")
    eos = "<|im_end|>"

    def config(self, spec: ArchSpec, size: str, tokenizer: Any, tokens_per_frame: int | None) -> Any:
        """``tokens_per_frame`` sets the vision image size: ``tokens_per_frame - 1`` (the pooled grid, without
        the newline embedding) must be a square number."""
        vocab = max(len(tokenizer), 1)
        text: dict[str, Any]
        vision: dict[str, Any]
        if size == "tiny":
            text = dict(
                model_type="qwen2",
                vocab_size=vocab,
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                max_position_embeddings=32768,
                initializer_range=0.1,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            )
            vision = dict(
                model_type="siglip_vision_model",
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=1,
                num_attention_heads=2,
                image_size=32,
                patch_size=8,
            )
        else:  # LLaVA-OneVision-Qwen2-7B (7b) / -0.5B text dims for 2b (no 2B release), SigLIP-so400m vision
            big = size == "7b"
            text = dict(
                model_type="qwen2",
                vocab_size=max(vocab, 152000),
                hidden_size=3584 if big else 896,
                intermediate_size=18944 if big else 4864,
                num_hidden_layers=28 if big else 24,
                num_attention_heads=28 if big else 14,
                num_key_value_heads=4 if big else 2,
                max_position_embeddings=32768,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            )
            vision = dict(
                model_type="siglip_vision_model",
                hidden_size=1152,
                intermediate_size=4304,
                num_hidden_layers=26,
                num_attention_heads=16,
                image_size=384,
                patch_size=14,
            )
        if tokens_per_frame:
            side = round((tokens_per_frame - 1) ** 0.5)
            if side * side != tokens_per_frame - 1:
                raise ValueError(
                    f"tokens_per_frame - 1 must be a square number for {spec.name}, got {tokens_per_frame}"
                )
            vision["image_size"] = 2 * side * vision["patch_size"]
        return spec.load_model_class().config_class(
            text_config=text,
            vision_config=vision,
            image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
            video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
            vision_feature_layer=-1,
            tie_word_embeddings=size == "2b",  # LLaVA-OneVision-Qwen2-0.5B ties them
            image_grid_pinpoints=[[vision["image_size"], vision["image_size"]]],
        )

    def image_processor(self, spec: ArchSpec, config: Any, tokens_per_frame: int) -> Any:
        side = int(config.vision_config.image_size)
        return spec.load_image_processor_class()(size={"height": side, "width": side})

    def default_tokens_per_frame(self, size: str) -> int:
        return super().default_tokens_per_frame(size) + 1  # pooled square + one newline embedding


def build_config(arch: str, size: str, tokenizer: Any, tokens_per_frame: int | None = None) -> Any:
    """The model config for ``arch`` at ``size``, with special-token ids taken from ``tokenizer``.

    ``tokens_per_frame`` (SmolVLM/Idefics3/LLaVA-OneVision) sizes the vision input so one frame yields that
    many tokens; see each builder below.
    """
    spec = get_arch(arch)
    return spec.tiny_builder().config(spec, size, tokenizer, tokens_per_frame)


def build_image_processor(arch: str, config: Any, tokens_per_frame: int = 4) -> Any:
    """A torchvision-free image processor sized so a frame yields about ``tokens_per_frame`` tokens."""
    spec = get_arch(arch)
    return spec.tiny_builder().image_processor(spec, config, tokens_per_frame)


def build_model(
    arch: str,
    size: str = "tiny",
    seed: int = 0,
    dtype: Any = None,
    device: Any = None,
    tokens_per_frame: int | None = None,
    state_tokens: tuple[str, ...] = STATE_TOKENS,
) -> tuple:
    """Build ``(model, tokenizer, image_processor)`` in memory with random weights (no disk round trip).

    ``tokens_per_frame`` defaults to 4 for ``tiny`` and 64 for the real sizes (plus the newline embedding for
    LLaVA-OneVision); ``state_tokens`` as in :func:`build_tokenizer`.
    """
    import torch

    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    tokenizer = build_tokenizer(arch, state_tokens=tuple(state_tokens))
    spec = get_arch(arch)
    builder = spec.tiny_builder()
    tpf = tokens_per_frame or builder.default_tokens_per_frame(size)
    config = builder.config(spec, size, tokenizer, tpf)
    torch.manual_seed(seed)
    dtype = dtype or torch.float32
    cls = spec.load_model_class()
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device or "cpu"):
            model = cls(config)
    finally:
        torch.set_default_dtype(prev)
    model.eval()
    return model, tokenizer, builder.image_processor(spec, config, tpf)


def build_tiny(
    arch: str,
    out_dir: str | Path,
    size: str = "tiny",
    seed: int = 0,
    tokens_per_frame: int | None = None,
    state_tokens: tuple[str, ...] = STATE_TOKENS,
) -> Path:
    """Build a random-weight checkpoint of ``arch`` and save it under ``out_dir``.

    Args:
        arch: one of :data:`~agentkit.policies.vlm.architectures.ARCH_NAMES`.
        out_dir: directory to write (created).
        size: ``tiny`` for tests; ``2b``/``7b`` for the real dimensions (gigabytes on disk).
        seed: torch seed for the random weights.
        tokens_per_frame: vision tokens per frame (default 4 for tiny, 64 otherwise).
        state_tokens: decision tokens in the vocabulary (Streamo's, agentkit's, or none).

    Returns:
        The checkpoint directory, loadable with ``from_pretrained`` and ``make_policy("vlm", model=...)``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer, processor = build_model(
        arch, size, seed, tokens_per_frame=tokens_per_frame, state_tokens=tuple(state_tokens)
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "agentkit_vlm.json").write_text(
        json.dumps({"arch": arch, "size": size, "random_weights": True, "state_tokens": list(state_tokens)}, indent=2)
    )
    return out
