"""The stream's KV cache: transformers' ``DynamicCache`` with the operations streaming needs, on its layers.

Why: a stream needs three things a stock ``DynamicCache`` does not offer. Eviction keeps an arbitrary
subset of cached tokens (the sink and a recent window) while ``DynamicCache.crop`` only trims the end; the
benchmark and the tests return a session to an earlier state (snapshot / restore); the benchmark reports
the bytes the cache holds. Doing these from outside means poking every layer's ``keys`` / ``values``; here
each :class:`StreamingLayer` does them to its own tensors, and :class:`StreamingCache` (which builds its
layers lazily with that class, like ``DynamicCache`` does with ``DynamicLayer``) applies them to all layers.

Importing this module imports torch and transformers: the engine imports it when a session starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

LayerState = tuple[torch.Tensor, torch.Tensor] | None
"""One layer's saved keys and values (``None``: the layer held nothing yet)."""


class StreamingLayer(DynamicLayer):
    """A ``DynamicLayer`` (keys/values ``[batch, heads, seq, head_dim]``, grown by concatenation) that can keep
    a subset of its tokens, save and restore its tensors, and say how many bytes it holds."""

    def select(self, index: torch.Tensor) -> None:
        """Keep only the cached tokens at ``index`` (positions along the sequence axis, in that order)."""
        if not self.is_initialized or self.keys is None or self.values is None:
            return
        self.keys = self.keys.index_select(-2, index.to(self.keys.device))
        self.values = self.values.index_select(-2, index.to(self.values.device))

    def snapshot(self) -> LayerState:
        """A copy of the keys and values (``None`` before the first update)."""
        if not self.is_initialized or self.keys is None or self.values is None:
            return None
        return self.keys.clone(), self.values.clone()

    def restore(self, state: LayerState) -> None:
        """Return to a :meth:`snapshot` (copied again, so one snapshot can be restored many times)."""
        if state is None:
            self.reset()  # uninitialized again: the next update starts it afresh
            return
        keys, values = state
        self.keys, self.values = keys.clone(), values.clone()
        self.device = keys.device
        self.is_initialized = True

    def assign(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Hold ``keys`` / ``values`` (``[1, heads, seq, head_dim]``) as they are, replacing what was here (the
        batched step writes a stream's cache back this way: its tensors are already a private copy)."""
        self.keys, self.values = keys, values
        self.device = keys.device
        self.is_initialized = True

    def compact(self) -> bool:
        """Give the keys/values their own storage when they are a view into a larger tensor (a batched step's
        buffer, shared with other streams); returns whether it copied."""
        shared = False
        for t in (self.keys, self.values):
            if t is not None and t.untyped_storage().nbytes() > t.numel() * t.element_size():
                shared = True
        if shared and self.keys is not None and self.values is not None:
            self.keys = self.keys.clone(memory_format=torch.contiguous_format)
            self.values = self.values.clone(memory_format=torch.contiguous_format)
        return shared

    @property
    def nbytes(self) -> int:
        """Bytes held by the key and value tensors."""
        return sum(t.numel() * t.element_size() for t in (self.keys, self.values) if t is not None)


class StreamingCache(DynamicCache):
    """A ``DynamicCache`` of :class:`StreamingLayer` s, created lazily one per model layer on first update.

    The model's forward uses it exactly like a ``DynamicCache`` (``update``, ``get_seq_length``, ``crop``);
    the session uses only the methods below to evict, save and measure.
    """

    def __init__(self) -> None:
        super().__init__()  # no config, no data: no layers yet, one is appended per model layer on update
        self.layer_class_to_replicate = StreamingLayer

    def _streaming_layers(self) -> list[StreamingLayer]:
        """The layers, each checked to be a :class:`StreamingLayer` (a stock layer would silently keep what
        eviction meant to drop)."""
        layers = []
        for layer in self.layers:
            if not isinstance(layer, StreamingLayer):
                raise TypeError(f"StreamingCache holds a {type(layer).__name__}, not a StreamingLayer")
            layers.append(layer)
        return layers

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the cached tokens at positions ``keep`` (ascending) in every layer."""
        index: torch.Tensor | None = None
        for layer in self._streaming_layers():
            if layer.keys is None:
                continue
            if index is None or index.device != layer.keys.device:
                index = torch.tensor(list(keep), dtype=torch.long, device=layer.keys.device)
            layer.select(index)

    def snapshot(self) -> list[LayerState]:
        """A copy of every layer's keys and values, for :meth:`restore`."""
        return [layer.snapshot() for layer in self._streaming_layers()]

    def restore(self, states: list[LayerState]) -> None:
        """Return to a :meth:`snapshot`. Layers created after it was taken are dropped (they are created
        again, empty, by the next update)."""
        while len(self.layers) < len(states):
            self.layers.append(StreamingLayer())
        del self.layers[len(states) :]
        for layer, state in zip(self._streaming_layers(), states, strict=True):
            layer.restore(state)

    def layer(self, index: int) -> StreamingLayer:
        """Layer ``index``, created (empty) with the ones before it when the cache has fewer layers yet."""
        while len(self.layers) <= index:
            self.layers.append(StreamingLayer())
        return self._streaming_layers()[index]

    def compact(self) -> int:
        """:meth:`StreamingLayer.compact` on every layer: a stream whose cache still views a batched step's
        buffer gets its own copy, so that buffer (which holds other streams' tensors too) can be freed.
        Returns the number of layers copied."""
        return sum(layer.compact() for layer in self._streaming_layers())

    @property
    def nbytes(self) -> int:
        """Bytes held by all layers' key and value tensors."""
        return sum(layer.nbytes for layer in self._streaming_layers())


__all__ = ["LayerState", "StreamingCache", "StreamingLayer"]
