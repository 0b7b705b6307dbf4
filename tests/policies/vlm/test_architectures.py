"""The architecture registry: every spec resolves to real classes that agree with each other."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from agentkit.policies.vlm.adapters.base import Adapter
from agentkit.policies.vlm.architectures import ARCH_NAMES, ARCHITECTURES, TinyBuilder, arch_of, get_arch

pytestmark = pytest.mark.vlm


@pytest.mark.parametrize("name", ARCH_NAMES)
def test_every_spec_resolves(name: str) -> None:
    spec = get_arch(name)
    model_cls = spec.load_model_class()
    assert model_cls.config_class.model_type in spec.model_types  # the loader finds it by model_type
    assert spec.load_image_processor_class().__name__.endswith("ImageProcessorPil")  # never torchvision
    assert issubclass(spec.load_adapter_class(), Adapter)
    assert isinstance(spec.tiny_builder(), TinyBuilder)


def test_lookup_by_name_and_model_type() -> None:
    assert ARCH_NAMES == ("qwen2_vl", "qwen2_5_vl", "smolvlm", "idefics3", "llava_onevision")
    for spec in ARCHITECTURES.values():
        for mt in spec.model_types:
            assert arch_of(type("Cfg", (), {"model_type": mt})()) is spec
    assert arch_of(type("Cfg", (), {"model_type": "gpt2"})()) is None
    with pytest.raises(ValueError, match="unsupported architecture 'gpt2'; supported: qwen2_vl"):
        get_arch("gpt2")


def test_importing_the_registry_stays_light() -> None:
    code = (
        "import sys; import agentkit.policies.vlm.architectures; "
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
