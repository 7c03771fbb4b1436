"""Model-side techniques that each break one more check of their family (positional, attention, kv)."""

from typing import ClassVar

import attrs
import torch
from transformers import AttentionInterface
from transformers.cache_utils import DynamicLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

from longctx.capabilities import rotary_modules
from longctx.hooks import hookimpl
from longctx.kvcache import build_cache
from longctx.rope import apply_rope, default_inv_freq


@attrs.frozen
class NoParams:
    pass


# -- positional ------------------------------------------------------------------------------------


def _nan_inv_freq(config, device=None, seq_len=None, layer_type=None):
    inv = default_inv_freq(config, layer_type, device).clone()
    inv[-1] = float("inf")  # cos(inf · p) is NaN for every p > 0
    return inv, 1.0


class NanRope:
    """Claims a 4× window but its frequencies contain an infinity."""

    def __init__(self, config, ctx=None):
        self.config = config

    def apply(self, ctx):
        out = apply_rope(ctx, rope_type="broken_nan", init_fn=_nan_inv_freq, params={})
        ctx.max_context = 4 * ctx.max_context
        return out


class StickyRope:
    """Halves the RoPE frequencies in place, behind the ComposeContext's back: undo cannot restore them."""

    def __init__(self, config, ctx=None):
        self.config = config

    def apply(self, ctx):
        for _name, rot in rotary_modules(ctx.model):
            for buf in rot.buffers():
                buf.mul_(0.5)
        return {"changed": True}


# -- attention --------------------------------------------------------------------------------------


def upcast_attention(module, query, key, value, attention_mask, **kwargs):
    out, w = sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    return out.float(), w


class Upcast:
    """Computes attention, then returns it in float32 whatever it was given."""

    def __init__(self, config, ctx=None):
        self.config = config

    def apply(self, ctx):
        return {"implementation": ctx.install_attention(upcast_attention, label="upcast")}


class StickyAttention:
    """Selects its attention with set_attn_implementation directly: undo never switches back."""

    def __init__(self, config, ctx=None):
        self.config = config

    def apply(self, ctx):
        AttentionInterface.register("lc_sticky_test", sdpa_attention_forward)
        AttentionMaskInterface.register("lc_sticky_test", ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
        ctx.model.set_attn_implementation("lc_sticky_test")
        return {"implementation": "lc_sticky_test"}


# -- kv ------------------------------------------------------------------------------------------------


class _Store:
    layer = DynamicLayer
    info: ClassVar[dict] = {}

    def __init__(self, config, ctx=None):
        self.config = config

    def new_cache(self, model):
        return build_cache(model, lambda _i: self.layer())

    def describe(self):
        return {"technique": type(self).__name__, **self.info}


class NoEvictStore(_Store):
    """Declares a budget of 8 tokens per layer but never evicts."""

    info: ClassVar[dict] = {"evicts": True, "max_tokens_per_layer": 8}


class OffByOneLayer(DynamicLayer):
    def get_seq_length(self):
        n = super().get_seq_length()
        return n - 1 if n > 16 else n  # miscounts once it is past 16 tokens


class OffByOneStore(_Store):
    layer = OffByOneLayer


class StickyResetLayer(DynamicLayer):
    def reset(self):
        pass  # forgets to forget


class StickyResetStore(_Store):
    layer = StickyResetLayer


class SetDescribeStore(_Store):
    info: ClassVar[dict] = {"evicts": False}

    def describe(self):
        return {"technique": "set-describe", "layers": {"full"}}  # a set is not JSON


@hookimpl
def lc_register_positional_encodings(register):
    for name, build in (("nan-rope", NanRope), ("sticky-rope", StickyRope)):
        register(name, config=NoParams, build=build, summary="broken", paper="none", capabilities=("rope",))


@hookimpl
def lc_register_attention(register):
    for name, build in (("upcast", Upcast), ("sticky-attention", StickyAttention)):
        register(name, config=NoParams, build=build, summary="broken", paper="none")


@hookimpl
def lc_register_kv_stores(register):
    stores = (
        ("no-evict", NoEvictStore),
        ("off-by-one", OffByOneStore),
        ("sticky-reset", StickyResetStore),
        ("set-describe", SetDescribeStore),
    )
    for name, build in stores:
        register(name, config=NoParams, build=build, summary="broken", paper="none")


_ = torch  # torch is what the broken attention computes with
