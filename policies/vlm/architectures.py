"""The one registry of the architectures the streaming engine supports.

Why: what the engine must know about an architecture (which Hugging Face ``model_type`` it is, which
``*ForConditionalGeneration`` class loads it, which torchvision-free ``*ImageProcessorPil`` class turns a
frame into pixels, which adapter places its tokens, how a tiny offline checkpoint of it is built) used to
be spread over the loader, the builder, the adapters and the CLI. Each fact is stated once here, as an
:class:`ArchSpec`; everything else (``load``, ``build_tiny``, ``bench stream``, ``--arch`` choices)
derives from :data:`ARCHITECTURES`.

Classes are named by import path (``"module:attribute"``) and resolved on first use, so importing this
module costs nothing: no torch, no transformers.

Example:
    >>> from agentkit.policies.vlm.architectures import ARCH_NAMES, get_arch
    >>> ARCH_NAMES
    ('qwen2_vl', 'qwen2_5_vl', 'smolvlm', 'idefics3', 'llava_onevision')
    >>> get_arch("smolvlm").model_types
    ('smolvlm',)
"""

from __future__ import annotations

import abc
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from agentkit.policies.vlm.adapters.base import Adapter


def _resolve(path: str) -> Any:
    """The object named by ``"package.module:attribute"`` (imported now, not when the registry is)."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class TinyBuilder(abc.ABC):
    """How to build a random-weight checkpoint of one architecture family offline (implementations live
    in :mod:`agentkit.policies.vlm.build`, where transformers is imported when a method runs).

    Attributes:
        specials: the special tokens the family's prompt format needs (the state tokens come after them).
        eos: the token that ends an assistant turn.
    """

    specials: ClassVar[tuple[str, ...]]
    eos: ClassVar[str]

    @abc.abstractmethod
    def config(self, spec: ArchSpec, size: str, tokenizer: Any, tokens_per_frame: int | None) -> Any:
        """The model config at ``size``, with special-token ids taken from ``tokenizer``."""

    @abc.abstractmethod
    def image_processor(self, spec: ArchSpec, config: Any, tokens_per_frame: int) -> Any:
        """A torchvision-free image processor sized so a frame yields about ``tokens_per_frame`` tokens."""

    def default_tokens_per_frame(self, size: str) -> int:
        """Vision tokens per frame when none is asked for: 4 for ``tiny``, 64 for the real sizes."""
        return 4 if size == "tiny" else 64


@dataclass(frozen=True)
class ArchSpec:
    """Everything architecture-specific the engine needs, for one architecture.

    Attributes:
        name: the engine's name for it (``--arch``, ``Loaded.arch``, ``agentkit_vlm.json``).
        model_types: the ``config.model_type`` values of checkpoints of this architecture.
        model_class: import path of the ``*ForConditionalGeneration`` class.
        image_processor: import path of the ``*ImageProcessorPil`` class (the fast processors need
            torchvision, whose PyPI wheels do not import beside a CPU torch).
        adapter: import path of the :class:`~agentkit.policies.vlm.adapters.base.Adapter` subclass.
        builder: import path of the :class:`TinyBuilder` that makes a random-weight checkpoint of it offline
            (tokenizer specials, model config, image processor).
        token_px: side in pixels of the square of a frame one vision token covers, for architectures whose
            token count follows the frame's size (Qwen: 14 px patches merged 2x2 = 28); ``None`` where a
            frame is resized to a fixed square whose token count the config decides. ``max_pixels``
            applies only where it is set.
    """

    name: str
    model_types: tuple[str, ...]
    model_class: str
    image_processor: str
    adapter: str
    builder: str
    token_px: int | None = None

    def load_model_class(self) -> Any:
        """The ``*ForConditionalGeneration`` class (imports transformers)."""
        return _resolve(self.model_class)

    def load_image_processor_class(self) -> Any:
        """The ``*ImageProcessorPil`` class (imports transformers)."""
        return _resolve(self.image_processor)

    def load_adapter_class(self) -> type[Adapter]:
        """The :class:`~agentkit.policies.vlm.adapters.base.Adapter` subclass."""
        cls: type[Adapter] = _resolve(self.adapter)
        return cls

    def make_adapter(self, model: Any, tokenizer: Any, image_processor: Any) -> Adapter:
        """The adapter around a loaded model, tokenizer and image processor."""
        return self.load_adapter_class()(self.name, model, tokenizer, image_processor)

    def tiny_builder(self) -> TinyBuilder:
        """The builder of offline random-weight checkpoints of this architecture."""
        cls: type[TinyBuilder] = _resolve(self.builder)
        return cls()


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec(
            name="qwen2_vl",
            model_types=("qwen2_vl",),
            model_class="transformers:Qwen2VLForConditionalGeneration",
            image_processor="transformers.models.qwen2_vl.image_processing_pil_qwen2_vl:Qwen2VLImageProcessorPil",
            adapter="agentkit.policies.vlm.adapters.qwen:QwenVLAdapter",
            builder="agentkit.policies.vlm.build:QwenBuilder",
            token_px=28,
        ),
        ArchSpec(
            name="qwen2_5_vl",
            model_types=("qwen2_5_vl",),
            model_class="transformers:Qwen2_5_VLForConditionalGeneration",
            # Qwen2.5-VL ships Qwen2-VL's image processor
            image_processor="transformers.models.qwen2_vl.image_processing_pil_qwen2_vl:Qwen2VLImageProcessorPil",
            adapter="agentkit.policies.vlm.adapters.qwen:QwenVLAdapter",
            builder="agentkit.policies.vlm.build:QwenBuilder",
            token_px=28,
        ),
        ArchSpec(
            name="smolvlm",
            model_types=("smolvlm",),
            model_class="transformers:SmolVLMForConditionalGeneration",
            image_processor="transformers.models.smolvlm.image_processing_pil_smolvlm:SmolVLMImageProcessorPil",
            adapter="agentkit.policies.vlm.adapters.idefics3:Idefics3Adapter",
            builder="agentkit.policies.vlm.build:Idefics3Builder",
        ),
        ArchSpec(
            name="idefics3",
            model_types=("idefics3",),
            model_class="transformers:Idefics3ForConditionalGeneration",
            image_processor="transformers.models.idefics3.image_processing_pil_idefics3:Idefics3ImageProcessorPil",
            adapter="agentkit.policies.vlm.adapters.idefics3:Idefics3Adapter",
            builder="agentkit.policies.vlm.build:Idefics3Builder",
        ),
        ArchSpec(
            name="llava_onevision",
            model_types=("llava_onevision",),
            model_class="transformers:LlavaOnevisionForConditionalGeneration",
            image_processor=(
                "transformers.models.llava_onevision.image_processing_pil_llava_onevision:LlavaOnevisionImageProcessorPil"
            ),
            adapter="agentkit.policies.vlm.adapters.llava_onevision:LlavaOnevisionAdapter",
            builder="agentkit.policies.vlm.build:LlavaOnevisionBuilder",
        ),
    )
}
"""The supported architectures by name, in the order they are listed to users."""

ARCH_NAMES: tuple[str, ...] = tuple(ARCHITECTURES)

_BY_MODEL_TYPE = {mt: spec for spec in ARCHITECTURES.values() for mt in spec.model_types}


def get_arch(name: str) -> ArchSpec:
    """The spec of ``name``.

    Raises:
        ValueError: naming the architecture and the supported ones.
    """
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unsupported architecture {name!r}; supported: {', '.join(ARCH_NAMES)}") from None


def arch_of(config: Any) -> ArchSpec | None:
    """The spec of a transformers config, by its ``model_type`` (``None`` when it is not supported)."""
    return _BY_MODEL_TYPE.get(getattr(config, "model_type", ""))


__all__ = ["ARCHITECTURES", "ARCH_NAMES", "ArchSpec", "TinyBuilder", "arch_of", "get_arch"]
