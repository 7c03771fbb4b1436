"""A KV store whose layers under-report their bytes: ``nbytes`` counts the keys and forgets the values."""

import attrs
from transformers.cache_utils import DynamicLayer

from longctx.hooks import hookimpl
from longctx.kvcache import build_cache


class HalfCountedLayer(DynamicLayer):
    @property
    def nbytes(self):
        if not self.is_initialized:
            return 0
        return self.keys.numel() * self.keys.element_size()


@attrs.frozen
class LyingConfig:
    pass


class LyingStore:
    def __init__(self, config, ctx=None):
        self.config = config

    def new_cache(self, model):
        return build_cache(model, lambda _i: HalfCountedLayer())

    def describe(self):
        return {"technique": "lying-kv", "evicts": False}


@hookimpl
def lc_register_kv_stores(register):
    register("lying-kv", config=LyingConfig, build=LyingStore, summary="Dynamic cache, half-counted", paper="none")
