"""``dynamic``: transformers' dynamic KV cache (the default KV store).

Every key and value is kept (sliding-window layers keep their window), as in the standard
autoregressive decoding of Vaswani et al. 2017, arXiv:1706.03762.
"""

from __future__ import annotations

from typing import Any

import attrs

from longctx.hooks import hookimpl
from longctx.kvcache import dynamic_cache


@attrs.frozen
class DynamicConfig:
    """No parameters."""


class DynamicStore:
    """Makes the same cache layout transformers would: ``DynamicLayer`` per full-attention layer,
    ``DynamicSlidingWindowLayer`` per sliding layer."""

    def __init__(self, config: DynamicConfig, ctx: Any = None) -> None:
        self.config = config

    def new_cache(self, model: Any) -> Any:
        return dynamic_cache(model)

    def describe(self) -> dict[str, Any]:
        return {"technique": "dynamic", "evicts": False}


@hookimpl
def lc_register_kv_stores(register):
    register(
        "dynamic",
        config=DynamicConfig,
        build=DynamicStore,
        summary="Keep every key and value (transformers' dynamic cache; default)",
        paper="Vaswani et al. 2017, Attention Is All You Need, arXiv:1706.03762",
    )
