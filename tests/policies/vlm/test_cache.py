"""The streaming cache layer on its own: select, snapshot/restore and bytes, on plain tensors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers.cache_utils import DynamicLayer  # noqa: E402

from agentkit.policies.vlm.cache import StreamingCache, StreamingLayer  # noqa: E402

pytestmark = pytest.mark.vlm


def _kv(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 2, n, 4, generator=g), torch.randn(1, 2, n, 4, generator=g)


def _filled(layers: int = 2, n: int = 6) -> StreamingCache:
    cache = StreamingCache()
    for i in range(layers):
        cache.update(*_kv(n, i), layer_idx=i)
    return cache


def test_layers_are_created_lazily_as_streaming_layers() -> None:
    cache = _filled()
    assert len(cache.layers) == 2 and all(type(ly) is StreamingLayer for ly in cache.layers)
    assert cache.get_seq_length() == 6


def test_select_keeps_exactly_the_given_tokens_in_every_layer() -> None:
    cache = _filled()
    before = [(ly.keys.clone(), ly.values.clone()) for ly in cache.layers]
    keep = [0, 1, 4, 5]
    cache.select(keep)
    for ly, (k, v) in zip(cache.layers, before, strict=True):
        assert torch.equal(ly.keys, k[:, :, keep]) and torch.equal(ly.values, v[:, :, keep])
    assert cache.get_seq_length() == 4
    k, v = _kv(1, 9)
    cache.update(k, v, layer_idx=0)  # appending after a selection goes on at the end
    assert torch.equal(cache.layers[0].keys[:, :, -1:], k)


def test_snapshot_restore_round_trip_and_bytes() -> None:
    cache = _filled()
    snap = cache.snapshot()
    nbytes = cache.nbytes
    assert nbytes == 2 * 2 * (1 * 2 * 6 * 4) * 4  # layers x (keys, values) x elements x fp32
    cache.update(*_kv(3, 7), layer_idx=0)
    cache.select([0, 2])
    for _ in range(2):  # one snapshot restores many times
        cache.restore(snap)
        assert cache.get_seq_length() == 6 and cache.nbytes == nbytes
        assert all(torch.equal(ly.keys, s[0]) for ly, s in zip(cache.layers, snap, strict=True))
        cache.update(*_kv(2, 8), layer_idx=1)  # changes after restore never reach the snapshot
    empty = StreamingCache().snapshot()
    cache.restore(empty)  # taken before any layer existed: all layers are dropped
    assert cache.layers == [] and cache.nbytes == 0


def test_a_foreign_layer_is_refused_not_silently_kept() -> None:
    cache = _filled()
    cache.layers.append(DynamicLayer())
    with pytest.raises(TypeError, match="DynamicLayer"):
        cache.select([0])
