"""An attention that leaks the future: it runs dense attention *without* the causal mask."""

import attrs
import torch

from longctx.hooks import hookimpl


@attrs.frozen
class LeakyConfig:
    pass


def leaky_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    groups = query.shape[1] // key.shape[1]
    key = key.repeat_interleave(groups, dim=1)
    value = value.repeat_interleave(groups, dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, is_causal=False, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


class Leaky:
    def __init__(self, config, ctx=None):
        self.config = config

    def apply(self, ctx):
        return {"changed": True, "implementation": ctx.install_attention(leaky_attention, label="leaky")}


@hookimpl
def lc_register_attention(register):
    register("leaky", config=LeakyConfig, build=Leaky, summary="Attention without the causal mask", paper="none")
