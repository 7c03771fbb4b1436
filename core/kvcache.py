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
