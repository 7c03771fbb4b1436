"""``ntk``: NTK-aware RoPE scaling — raise the rotary base instead of interpolating positions.

bloc97 2023, "NTK-Aware Scaled RoPE allows LLaMA models to have extended (8k+) context size without
any fine-tuning" (r/LocalLLaMA); formalised in Peng, Quesnelle, Fan & Shippole 2023, "YaRN: Efficient
Context Window Extension of Large Language Models", arXiv:2309.00071, §3.1 ("NTK-aware"
interpolation).

Method (YaRN §3.1, eq. 16): for a scale factor ``s`` and rotary dimension ``|D|``, the base ``b`` becomes

    b' = b · s^{|D| / (|D| − 2)}

so the highest frequency (i = 0) is unchanged — high-frequency, local information is extrapolated —
while the lowest frequency is interpolated by exactly ``s``: ``θ'_{|D|/2−1} = θ_{|D|/2−1} / s``. No
attention temperature is applied. Applied to Gemma 3's full-attention layers by default.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from longctx.hooks import hookimpl
from longctx.params import at_least, one_of
from longctx.rope import LAYER_CHOICES, ScaledRope, fp32_rotation_field, rope_params, rotary_dim

ROPE_TYPE = "longctx_ntk"


@attrs.frozen
class NTKConfig:
    """The scale factor ``s``; the new base follows from it."""

    factor: float = attrs.field(default=2.0, validator=at_least(1.0), metadata={"help": "scale s (1 = unchanged)"})
    layers: str = attrs.field(
        default="full", validator=one_of(*LAYER_CHOICES), metadata={"help": "layer types to change"}
    )
    fp32_rotation: bool = fp32_rotation_field()


def ntk_base(base: float, factor: float, dim: int) -> float:
    """b' = b · s^{|D|/(|D|−2)} (YaRN eq. 16)."""
    return base * factor ** (dim / (dim - 2))


def ntk_inv_freq(config: Any, device: Any = None, seq_len: int | None = None, layer_type: str | None = None):
    """ROPE_INIT_FUNCTIONS-compatible: θ'_i = b'^{-2i/|D|}, attention factor 1."""
    p = rope_params(config, layer_type)
    dim = rotary_dim(config, layer_type)
    base = ntk_base(float(p["rope_theta"]), float(p["factor"]), dim)
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
    return 1.0 / (base**exponents), 1.0


class NTKAwareScaling(ScaledRope):
    """Installs NTK-aware scaling on the model's rotary embedding."""

    rope_type = ROPE_TYPE
    inv_freq = staticmethod(ntk_inv_freq)


@hookimpl
def lc_register_positional_encodings(register):
    register(
        "ntk",
        config=NTKConfig,
        build=NTKAwareScaling,
        summary="NTK-aware scaling: raise the RoPE base to b·s^(d/(d-2))",
        paper="bloc97 2023; Peng et al. 2023 (YaRN §3.1), arXiv:2309.00071",
        capabilities=("rope",),
    )
