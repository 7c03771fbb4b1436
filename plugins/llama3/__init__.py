"""``llama3``: Llama 3.1 frequency scaling — interpolate long wavelengths, keep short ones, blend between.

Meta 2024, "The Llama 3 Herd of Models", arXiv:2407.21783. The paper describes the long-context
pre-training stage (RoPE base θ = 500,000, the window grown in stages to 128K tokens) but not the
scaling formula itself; that is specified by Meta's released reference code for Llama 3.1
(``apply_scaling`` in meta-llama/llama-models), which transformers' ``llama3`` rope type reproduces —
and this plugin with it, bit for bit.

Method. With the frequencies ``θ_i = b^{-2i/|D|}`` and wavelengths ``λ_i = 2π/θ_i``, an original window
``L`` (8192 for Llama 3) and the band edges ``λ_high = L / high_freq_factor`` and
``λ_low = L / low_freq_factor``:

    θ'_i = θ_i                          if λ_i < λ_high      (high frequencies: kept)
    θ'_i = θ_i / s                      if λ_i > λ_low       (low frequencies: interpolated as PI)
    θ'_i = (1 − σ_i)·θ_i/s + σ_i·θ_i    otherwise, with
    σ_i  = (L/λ_i − low_freq_factor) / (high_freq_factor − low_freq_factor)

with Llama 3.1's ``s = 8``, ``low_freq_factor = 1``, ``high_freq_factor = 4``: wavelengths shorter than
L/4 are untouched, those longer than L are divided by 8, and ``σ`` (the number of turns over ``L``,
shifted and normalised) blends linearly in between — a wavelength-banded relative of YaRN's ramp. No
attention temperature.

Applied to Gemma 3's full-attention layers by default. Set ``original_max_position_embeddings`` to the
model's pre-training window when it is not Llama 3's 8192 (the bands are defined by it). The usable
context becomes ``s`` times the original window (taken as at most the model's own window).
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from longctx.errors import ParameterError
from longctx.hooks import hookimpl
from longctx.params import at_least, one_of, positive
from longctx.rope import (
    LAYER_CHOICES,
    ScaledRope,
    apply_rope,
    extended_window,
    fp32_rotation_field,
    rope_params,
    rotary_dim,
)

ROPE_TYPE = "longctx_llama3"


@attrs.frozen
class Llama3Config:
    """Llama 3.1's released values as defaults: ``s = 8``, bands at ``L/1`` and ``L/4``, ``L = 8192``."""

    factor: float = attrs.field(
        default=8.0, validator=at_least(1.0), metadata={"help": "s: low frequencies are divided by s"}
    )
    low_freq_factor: float = attrs.field(
        default=1.0, validator=positive, metadata={"help": "wavelengths above L/low_freq_factor are divided by s"}
    )
    high_freq_factor: float = attrs.field(
        default=4.0, validator=positive, metadata={"help": "wavelengths below L/high_freq_factor are kept"}
    )
    original_max_position_embeddings: int = attrs.field(
        default=8192, validator=positive, metadata={"help": "L: the pre-training window that defines the bands"}
    )
    layers: str = attrs.field(
        default="full", validator=one_of(*LAYER_CHOICES), metadata={"help": "layer types to change"}
    )
    fp32_rotation: bool = fp32_rotation_field()

    def __attrs_post_init__(self) -> None:
        if self.high_freq_factor <= self.low_freq_factor:
            raise ParameterError(
                f"high_freq_factor ({self.high_freq_factor}) must be greater than low_freq_factor "
                f"({self.low_freq_factor})"
            )


def llama3_inv_freq(
    config: Any, device: Any = None, seq_len: int | None = None, layer_type: str | None = None
) -> tuple[torch.Tensor, float]:
    """ROPE_INIT_FUNCTIONS-compatible: the banded θ'_i above, attention factor 1."""
    p = rope_params(config, layer_type)
    base = p["rope_theta"]
    dim = rotary_dim(config, layer_type)
    theta = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim))
    s = p["factor"]
    low, high = p["low_freq_factor"], p["high_freq_factor"]
    window = p["original_max_position_embeddings"]

    low_freq_wavelen = window / low  # λ_low
    high_freq_wavelen = window / high  # λ_high
    wavelen = 2 * math.pi / theta  # λ_i
    scaled = torch.where(wavelen > low_freq_wavelen, theta / s, theta)
    sigma = (window / wavelen - low) / (high - low)
    smoothed = (1 - sigma) * scaled / s + sigma * scaled
    medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(medium, smoothed, scaled), 1.0


class Llama3Scaling(ScaledRope):
    """Installs Llama 3.1 frequency scaling on the model's rotary embedding."""

    rope_type = ROPE_TYPE
    inv_freq = staticmethod(llama3_inv_freq)

    def rope_parameters(self) -> dict[str, Any]:
        c = self.config
        return {
            "factor": c.factor,
            "low_freq_factor": c.low_freq_factor,
            "high_freq_factor": c.high_freq_factor,
            "original_max_position_embeddings": c.original_max_position_embeddings,
        }

    def apply(self, ctx: Any) -> dict[str, Any]:
        c = self.config
        out = apply_rope(
            ctx, rope_type=self.rope_type, init_fn=llama3_inv_freq, params=self.rope_parameters(), layers=c.layers
        )
        ctx.max_context = extended_window(ctx.max_context, c.factor, c.original_max_position_embeddings)
        return out


@hookimpl
def lc_register_positional_encodings(register):
    register(
        "llama3",
        config=Llama3Config,
        build=Llama3Scaling,
        summary="Llama 3.1 RoPE scaling: long wavelengths divided by s, short kept, linear blend between",
        paper="Meta 2024, The Llama 3 Herd of Models, arXiv:2407.21783 (scaling: Llama 3.1 reference code)",
        capabilities=("rope",),
    )
