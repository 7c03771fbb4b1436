"""Helpers shared by KV-storage plugins and the runtime: building caches, counting bytes, and passing
a cache to ``generate`` on every supported transformers version."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicLayer, DynamicSlidingWindowLayer

from longctx.capabilities import text_config


def layer_nbytes(layer: Any) -> int:
    """Bytes of the tensors a cache layer holds: its ``nbytes`` if it reports one, else keys + values."""
    n = getattr(layer, "nbytes", None)
    if isinstance(n, int):
        return n
    total = 0
    for name in ("keys", "values"):
        t = getattr(layer, name, None)
        if isinstance(t, torch.Tensor):
            total += t.numel() * t.element_size()
    return total


def cache_nbytes(cache: Any) -> int:
    """Bytes held by every layer of ``cache`` (0 for ``None``)."""
    if cache is None:
        return 0
    return sum(layer_nbytes(layer) for layer in getattr(cache, "layers", []))


def build_cache(
    model: nn.Module,
    full: Callable[[int], CacheLayerMixin],
    sliding: Callable[[int, int], CacheLayerMixin] | None = None,
) -> Cache:
    """A ``Cache`` with one layer per decoder layer, following ``config.layer_types``.

    :param full: ``full(layer_idx)`` makes the layer of a full-attention layer.
    :param sliding: ``sliding(layer_idx, window)`` for sliding-window layers; defaults to transformers'
        own ``DynamicSlidingWindowLayer``.
    """
    cfg = text_config(model.config)
    n = cfg.num_hidden_layers
    types = list(getattr(cfg, "layer_types", None) or ["full_attention"] * n)
    window = getattr(cfg, "sliding_window", None)
    layers: list[CacheLayerMixin] = []
    for i, t in enumerate(types[:n]):
        if t == "sliding_attention" and window:
            layers.append(sliding(i, window) if sliding else DynamicSlidingWindowLayer(sliding_window=window))
        else:
            layers.append(full(i))
    return Cache(layers=layers)


def dynamic_cache(model: nn.Module) -> Cache:
    """transformers' default dynamic cache layout for ``model``."""
    return build_cache(model, lambda _i: DynamicLayer())


def cache_kwarg(model: nn.Module) -> str:
    """The name under which ``model.forward`` takes a cache: ``cache`` (≥ 5.24) or ``past_key_values``."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class EvictingLayer(DynamicLayer):
    """Base of cache layers that drop tokens: the bookkeeping every evicting KV store shares.

    ``update`` appends the new states, returns everything the current forward attends over (held +
    new, so a long prefill attends correctly), then — when more than :attr:`capacity` tokens are held —
    lets :meth:`evict` choose what to keep. Every held token stays older than every new one, so with
    ``get_mask_sizes = (held + q, evicted)`` transformers' causal mask is right for the default
    attention. The logical length (:meth:`get_seq_length`, tokens seen) is kept apart from the physical
    one (:attr:`held`), so the model's default positions stay absolute; keys are stored as given
    (post-RoPE). ``crop`` works until the first eviction; ``reset`` clears everything.

    Subclasses set :attr:`capacity` and implement :meth:`evict`.
    """

    is_sliding = False
    #: a short name used in error messages
    label = "evicting"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        #: tokens seen so far (the logical length; positions stay absolute).
        self.cumulative_length = 0

    @property
    def capacity(self) -> int:
        """Most tokens held between forward passes."""
        raise NotImplementedError

    def evict(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Given more than :attr:`capacity` tokens (held, then new), return the ones to keep, in order."""
        raise NotImplementedError

    # -- sizes ------------------------------------------------------------------------------------

    @property
    def held(self) -> int:
        """Tokens physically held now."""
        if not self.is_initialized or self.keys is None or self.keys.dim() < 2:
            return 0
        return int(self.keys.shape[-2])

    @property
    def evicted(self) -> int:
        """Tokens evicted so far (seen but no longer held)."""
        return self.cumulative_length - self.held

    @property
    def nbytes(self) -> int:
        """Bytes of the key and value tensors actually held."""
        return sum(t.numel() * t.element_size() for t in (self.keys, self.values) if isinstance(t, torch.Tensor))

    @property
    def is_croppable(self) -> bool:  # type: ignore[override]
        """``crop`` can restore the layer only while nothing has been evicted."""
        return self.evicted == 0

    def get_seq_length(self) -> int:
        """The logical length: tokens seen, evicted ones included (the model's next position)."""
        return self.cumulative_length

    def get_mask_sizes(self, query_length: int | torch.Tensor) -> tuple[int, int]:
        """``(kv_length, kv_offset)`` of what :meth:`update` returns: held + new tokens. transformers
        passes the query length (≥ 5.4) or the ``cache_position`` tensor (earlier; detected by type)."""
        q = int(query_length.shape[-1]) if isinstance(query_length, torch.Tensor) else int(query_length)
        return self.held + q, self.evicted

    def get_max_length(self) -> int:
        return self.capacity

    # -- update, crop, reset ---------------------------------------------------------------------------

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append the new states, return everything this forward attends over, then evict."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self.cumulative_length += key_states.shape[-2]
        keys = torch.cat([self.keys, key_states], dim=-2)
        values = torch.cat([self.values, value_states], dim=-2)
        if keys.shape[-2] > self.capacity:
            self.keys, self.values = self.evict(keys, values)
        else:
            self.keys, self.values = keys, values
        return keys, values

    def crop(self, max_length: int) -> None:
        """Remove ``-max_length`` tokens from the end when negative (transformers ≥ 5.4), or crop to
        ``max_length`` tokens when positive (5.0's assisted decoding); possible only until the first
        eviction, after which the dropped tokens are gone."""
        if max_length == 0 or not self.is_initialized or self.keys is None:
            return
        target = self.cumulative_length - abs(max_length) if max_length < 0 else max_length
        if target >= self.cumulative_length:
            return
        if self.evicted:
            from longctx.errors import LongctxError

            raise LongctxError(
                f"cannot crop a {self.label} cache after it evicted {self.evicted} token(s): the tokens it "
                "dropped are gone; start a fresh cache (or use kv=dynamic for assisted decoding)"
            )
        target = max(target, 0)
        self.keys = self.keys[..., :target, :]
        self.values = self.values[..., :target, :]
        self.cumulative_length = target

    def reset(self) -> None:
        """Drop every state and the logical length (not ``super().reset()``, whose behaviour differs
        across transformers versions: some zero the tensors in place and keep their size)."""
        if self.is_initialized and self.keys is not None:
            self.keys = self.keys[..., :0, :]
            self.values = self.values[..., :0, :]
        self.cumulative_length = 0
