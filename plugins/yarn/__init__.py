"""``yarn``: YaRN — NTK-by-parts interpolation plus an attention temperature.

Peng, Quesnelle, Fan & Shippole 2023, "YaRN: Efficient Context Window Extension of Large Language
Models", arXiv:2309.00071 (§3.2 "NTK-by-parts" interpolation, §3.4 YaRN).

Method. RoPE rotates dimension pair ``d`` with frequency ``θ_d = b^{-2d/|D|}``, i.e. wavelength
``λ_d = 2π/θ_d``. Over the original window ``L`` that pair turns ``r(d) = L/λ_d`` times. Pairs that turn
many times (high frequency, local information) are kept — extrapolated; pairs that turn less than once
are interpolated as in PI; a ramp ``γ`` blends the two (eq. 17–18, with ``α = 1``, ``β = 32`` for LLaMA):

    γ(r) = 0 if r < α,   1 if r > β,   (r − α)/(β − α) otherwise
    h(θ_d) = (1 − γ(r(d))) · θ_d / s + γ(r(d)) · θ_d

The reference code (and transformers' ``yarn``), which this plugin reproduces, ramps linearly over the
pair *index* between the pairs where ``r = β`` and ``r = α``: solving ``L/λ_d = n`` for ``d`` gives

    d(n) = |D| · ln(L / (2π n)) / (2 ln b),     d_low = ⌊d(β)⌋,  d_high = ⌈d(α)⌉   (``truncate``)
    γ_d = 1 − clamp((d − d_low) / (d_high − d_low), 0, 1)

so both agree at the boundaries: pairs below ``d_low`` keep ``θ_d``, pairs from ``d_high`` on get
``θ_d / s``. The parameters keep transformers' names: ``beta_fast`` is the paper's ``β`` (rotations above
which a pair is extrapolated) and ``beta_slow`` its ``α``.

Attention temperature (eq. 22): the logits are divided by ``t`` with ``√(1/t) = 0.1·ln(s) + 1``; as in
the paper this is done by scaling both cos and sin of the rotary embedding by ``√(1/t)`` (transformers'
"attention factor"), so ``q·k`` is scaled by ``1/t``. ``attention_factor`` overrides ``√(1/t)``.

Applied to Gemma 3's full-attention layers by default. On models with per-layer-type RoPE parameters
transformers 5.x reads ``truncate`` from the top-level dict (so it always truncates there); this plugin
reads it from the layer type's own parameters, as it does every other parameter.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from longctx.errors import ParameterError
from longctx.hooks import hookimpl
from longctx.params import at_least, one_of, optional, positive
from longctx.rope import (
    LAYER_CHOICES,
    ScaledRope,
    apply_rope,
    extended_window,
    fp32_rotation_field,
    rope_params,
    rotary_dim,
)

ROPE_TYPE = "longctx_yarn"


@attrs.frozen
class YaRNConfig:
    """The scale ``s``, the ramp's rotation bounds ``β`` (``beta_fast``) and ``α`` (``beta_slow``), the
    original window ``L`` and the attention temperature."""

    factor: float = attrs.field(default=2.0, validator=at_least(1.0), metadata={"help": "scale s = L'/L"})
    beta_fast: float = attrs.field(
        default=32.0, validator=positive, metadata={"help": "β: pairs turning more than β times over L are kept"}
    )
    beta_slow: float = attrs.field(
        default=1.0, validator=positive, metadata={"help": "α: pairs turning fewer than α times are divided by s"}
    )
    original_max_position_embeddings: int | None = attrs.field(
        default=None,
        validator=optional(positive),
        metadata={"help": "L: the pre-training window (none: the model's max_position_embeddings)"},
    )
    attention_factor: float | None = attrs.field(
        default=None,
        validator=optional(positive),
        metadata={"help": "√(1/t), scaling cos and sin (none: 0.1·ln(s) + 1)"},
    )
    truncate: bool = attrs.field(
        default=True, metadata={"help": "round the ramp's pair bounds outwards (floor/ceil), as the reference"}
    )
    layers: str = attrs.field(
        default="full", validator=one_of(*LAYER_CHOICES), metadata={"help": "layer types to change"}
    )
    fp32_rotation: bool = fp32_rotation_field()

    def __attrs_post_init__(self) -> None:
        if self.beta_fast <= self.beta_slow:
            raise ParameterError(
                f"beta_fast (β = {self.beta_fast}) must be greater than beta_slow (α = {self.beta_slow})"
            )


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """√(1/t) = 0.1·ln(s) + 1 (YaRN eq. 22; ``mscale`` multiplies the log term, DeepSeek's variant); 1 for s ≤ 1."""
    if factor <= 1:
        return 1.0
    return 0.1 * mscale * math.log(factor) + 1.0


def correction_dim(rotations: float, dim: int, base: float, window: int) -> float:
    """The pair index ``d`` at which pair ``d`` turns ``rotations`` times over ``window`` tokens:
    ``|D| · ln(L / (2π·n)) / (2 ln b)``."""
    return (dim * math.log(window / (rotations * 2 * math.pi))) / (2 * math.log(base))


def correction_range(
    beta_fast: float, beta_slow: float, dim: int, base: float, window: int, truncate: bool
) -> tuple[float, float]:
    """``(d_low, d_high)``: the ramp's bounds, the pairs turning ``β`` and ``α`` times (floor/ceil when
    ``truncate``), clipped to ``[0, |D| − 1]``."""
    low = correction_dim(beta_fast, dim, base, window)
    high = correction_dim(beta_slow, dim, base, window)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, dim - 1)


def yarn_gamma(low: float, high: float, pairs: int, device: Any = None) -> torch.Tensor:
    """γ_d = 1 − clamp((d − d_low)/(d_high − d_low), 0, 1): 1 keeps θ_d (extrapolation), 0 gives θ_d/s."""
    if low == high:
        high += 0.001  # no singularity (the reference's guard)
    ramp = torch.clamp((torch.arange(pairs, dtype=torch.float32) - low) / (high - low), 0, 1)
    return 1 - ramp.to(device=device, dtype=torch.float)


def yarn_inv_freq(
    config: Any, device: Any = None, seq_len: int | None = None, layer_type: str | None = None
) -> tuple[torch.Tensor, float]:
    """ROPE_INIT_FUNCTIONS-compatible: h(θ_d) = (1 − γ_d)·θ_d/s + γ_d·θ_d, attention factor √(1/t)."""
    p = rope_params(config, layer_type)
    base = p["rope_theta"]
    dim = rotary_dim(config, layer_type)
    s = p["factor"]
    window = p["original_max_position_embeddings"]
    attention_factor = p.get("attention_factor")
    if attention_factor is None:
        mscale, mscale_all_dim = p.get("mscale"), p.get("mscale_all_dim")
        if mscale and mscale_all_dim:
            attention_factor = float(yarn_mscale(s, mscale) / yarn_mscale(s, mscale_all_dim))
        else:
            attention_factor = yarn_mscale(s)
    beta_fast = p.get("beta_fast") or 32
    beta_slow = p.get("beta_slow") or 1

    pos_freqs = base ** (torch.arange(0, dim, 2).to(device=device, dtype=torch.float) / dim)  # 1/θ_d
    extrapolated = 1.0 / pos_freqs  # θ_d
    interpolated = 1.0 / (s * pos_freqs)  # θ_d / s
    low, high = correction_range(beta_fast, beta_slow, dim, base, window, p.get("truncate", True))
    gamma = yarn_gamma(low, high, dim // 2, device)
    return interpolated * (1 - gamma) + extrapolated * gamma, attention_factor


class YaRN(ScaledRope):
    """Installs YaRN on the model's rotary embedding."""

    rope_type = ROPE_TYPE
    inv_freq = staticmethod(yarn_inv_freq)

    def apply(self, ctx: Any) -> dict[str, Any]:
        c = self.config
        original = c.original_max_position_embeddings or ctx.info.max_position_embeddings
        if original is None:
            raise ParameterError(
                f"yarn: {ctx.info.architecture} declares no max_position_embeddings; "
                "set original_max_position_embeddings (the pre-training window L)"
            )
        params = {
            "factor": c.factor,
            "beta_fast": c.beta_fast,
            "beta_slow": c.beta_slow,
            "original_max_position_embeddings": int(original),
            "truncate": c.truncate,
            "attention_factor": c.attention_factor,
        }
        out = apply_rope(ctx, rope_type=self.rope_type, init_fn=yarn_inv_freq, params=params, layers=c.layers)
        out["attention_factor"] = c.attention_factor if c.attention_factor is not None else yarn_mscale(c.factor)
        ctx.max_context = extended_window(ctx.max_context, c.factor, int(original))
        return out


@hookimpl
def lc_register_positional_encodings(register):
    register(
        "yarn",
        config=YaRNConfig,
        build=YaRN,
        summary="YaRN: NTK-by-parts ramp between extrapolation and interpolation, with attention temperature",
        paper="Peng, Quesnelle, Fan & Shippole 2023, arXiv:2309.00071",
        capabilities=("rope",),
    )
