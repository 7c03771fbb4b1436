"""KV-storage family: where and how keys and values live between forward passes.

A store makes a fresh transformers ``Cache`` (usually ``Cache(layers=[…])`` of custom layers) for each
generation. Caches hold keys *after* RoPE; a store that evicts keeps its physical length separate from
the logical number of tokens seen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from longctx.hooks import hookspec

if TYPE_CHECKING:
    import torch.nn as nn
    from transformers import Cache

    from longctx.hooks import Register


@runtime_checkable
class KVStore(Protocol):
    """A built KV-storage component."""

    def new_cache(self, model: nn.Module) -> Cache:
        """A fresh, empty cache for one generation with ``model``."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description (name, budget, …)."""
        ...


@hookspec
def lc_register_kv_stores(register: Register) -> None:
    """Register KV-storage techniques (dynamic, sink+window, quantized, …).

    :param register: ``register(name, config=…, build=…, summary=…, paper=…)``; ``build(config, ctx)``
        returns a :class:`KVStore`. Cache layers should expose ``nbytes`` (the bytes of the tensors they
        actually hold); :func:`longctx.kvcache.cache_nbytes` falls back to summing keys and values.
    """
