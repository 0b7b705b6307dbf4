"""``smart_resize`` must agree with transformers' Qwen2-VL image processor, which sets what the model saw."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkit.parsing import smart_resize

pytestmark = pytest.mark.vlm


def _reference():
    try:  # the torchvision module needs torchvision; the PIL one carries a verbatim copy
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as ref
    except ImportError:
        mod = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
        ref = mod.smart_resize
    return ref


@settings(max_examples=400, deadline=None)
@given(
    st.integers(1, 8000),
    st.integers(1, 8000),
    st.sampled_from([(28, 56 * 56, 14 * 14 * 4 * 1280), (28, 100 * 28 * 28, 16384 * 28 * 28), (14, 3136, 802816)]),
)
def test_smart_resize_matches_transformers(h: int, w: int, params: tuple[int, int, int]) -> None:
    ref = _reference()
    factor, lo, hi = params
    try:
        expected = ref(h, w, factor=factor, min_pixels=lo, max_pixels=hi)
    except ValueError:
        with pytest.raises(ValueError):
            smart_resize(h, w, factor=factor, min_pixels=lo, max_pixels=hi)
        return
    assert smart_resize(h, w, factor=factor, min_pixels=lo, max_pixels=hi) == expected
