"""``truncated-basis`` and ``power-scaling``: Giraffe's two modified RoPE bases.

Pal, Karkhanis, Roberts, Dooley, Sundararajan & Naidu 2023, "Giraffe: Adventures in Expanding Context
Lengths in LLMs", arXiv:2308.10882 (code: github.com/abacusai/Long-Context, ``interpolate.py``).
Both change the frequencies ``θ_i = b^{-2i/d}`` (``i ∈ [0, d/2)``) of RoPE and are meant to be followed
by fine-tuning at the longer length (the paper fine-tunes every variant); no attention temperature.

Power scaling (§"Power Scaling"). Low frequencies are stretched more than high ones:

    θ'_i = θ_i · (1 − 2i/d)^k

``k = 0`` is the identity; the highest frequency (``i = 0``) never changes and the lowest ones are
pushed towards 0. The released code writes the factor as ``(1 − j/(d/2))^k`` over the pair index ``j``,
the same thing. (The repository's README discusses the ``k = 0.5`` run — "power = 0.5 basis" —, the
default here.)

Truncated basis (§"Truncated Basis"). Keep the frequencies fast enough to turn at least once over the
training window, set a middle band to one small fixed frequency ``ρ`` and drop the slowest entirely
(a frequency of 0 is no rotation: those dimensions are position-independent):

    θ'_i = θ_i   if θ_i ≥ b
    θ'_i = ρ     if a < θ_i < b
    θ'_i = 0     if θ_i ≤ a

with cut-offs ``0 ≤ a ≤ b`` on frequency (radians per token). Settings: the released code derives all
three from a length ``T`` as ``b = 2π/T``, ``a = b/8`` and ``ρ = b/16 = a/2`` (``truncate_frequency``
with ``z = 8``) — it uses ``θ < a`` for the zero band, so it differs from the formula above only at
``θ_i = a`` exactly. Our reading: ``T`` is the training window ``L``, so by default ``b = 2π/L`` (the
slowest frequency still completing one turn over ``L``), ``a = b/8``, ``ρ = a/2`` — each parameter left
unset is filled in that way from the layer's ``original_max_position_embeddings`` (else the model's
``max_position_embeddings``). ``a = b = 0`` keeps every θ_i > 0 and is the identity.

Neither method by itself says how long a context the model handles (like ABF), so the usable context is
left as is unless ``window_factor`` declares the extension the fine-tuned model supports:
``max_context = window_factor × max_position_embeddings``. Applied to Gemma 3's full-attention layers by
default.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from longctx.errors import ParameterError
from longctx.hooks import hookimpl
from longctx.params import at_least, non_negative, one_of
from longctx.rope import (
    LAYER_CHOICES,
    ScaledRope,
    apply_rope,
    default_inv_freq,
    fp32_rotation_field,
    rope_params,
    rotary_dim,
)

TRUNCATED_TYPE = "longctx_giraffe_truncated"
POWER_TYPE = "longctx_giraffe_power"

_optional_non_negative = attrs.validators.optional(non_negative)


def _window_factor():
    return attrs.field(
        default=1.0,
        validator=at_least(1.0),
        metadata={"help": "declared usable context, × max_position_embeddings (claims none by itself)"},
    )


def _layers():
    return attrs.field(default="full", validator=one_of(*LAYER_CHOICES), metadata={"help": "layer types to change"})


@attrs.frozen
class TruncatedBasisConfig:
    """Parameters named as in the paper: cut-offs ``a ≤ b`` on frequency and the middle-band value ``ρ``."""

    a: float | None = attrs.field(
        default=None,
        validator=_optional_non_negative,
        metadata={"help": "lower cut-off: θ ≤ a becomes 0 (unset: b/8, as Giraffe's code)"},
    )
    b: float | None = attrs.field(
        default=None,
        validator=_optional_non_negative,
        metadata={"help": "upper cut-off: θ ≥ b is kept (unset: 2π/L, one turn over the window L)"},
    )
    rho: float | None = attrs.field(
        default=None,
        validator=_optional_non_negative,
        metadata={"help": "ρ: the frequency of the band a < θ < b (unset: a/2, as Giraffe's code)"},
    )
    window_factor: float = _window_factor()
    layers: str = _layers()
    fp32_rotation: bool = fp32_rotation_field()

    def __attrs_post_init__(self) -> None:
        if self.a is not None and self.b is not None and self.a > self.b:
            raise ParameterError(f"a must be <= b, got a={self.a!r}, b={self.b!r}")


@attrs.frozen
class PowerScalingConfig:
    """Parameters named as in the paper: the power ``k``."""

    k: float = attrs.field(
        default=0.5,
        validator=non_negative,
        metadata={"help": "k: θ'_i = θ_i·(1 − 2i/d)^k (0 = unchanged; Giraffe's runs: 0.5)"},
    )
    window_factor: float = _window_factor()
    layers: str = _layers()
    fp32_rotation: bool = fp32_rotation_field()


def _window(config: Any, p: Any) -> int:
    return int(p.get("original_max_position_embeddings") or config.max_position_embeddings)


def truncation_cutoffs(
    window: int, a: float | None = None, b: float | None = None, rho: float | None = None
) -> tuple[float, float, float]:
    """``(a, b, ρ)`` with unset ones filled as Giraffe's code does: b = 2π/L, a = b/8, ρ = a/2."""
    b = 2 * math.pi / window if b is None else b
    a = b / 8 if a is None else a
    rho = a / 2 if rho is None else rho
    if a > b:
        raise ParameterError(f"a must be <= b, got a={a!r}, b={b!r}")
    return a, b, rho


def truncate_basis(theta: torch.Tensor, a: float, b: float, rho: float) -> torch.Tensor:
    """θ' = θ (θ ≥ b), ρ (a < θ < b), 0 (θ ≤ a)."""
    out = torch.where(theta >= b, theta, torch.full_like(theta, rho))
    return torch.where(theta <= a, torch.zeros_like(theta), out)


def truncated_inv_freq(
    config: Any, device: Any = None, seq_len: int | None = None, layer_type: str | None = None
) -> tuple[torch.Tensor, float]:
    """ROPE_INIT_FUNCTIONS-compatible: the truncated basis, attention factor 1."""
    p = rope_params(config, layer_type)
    a, b, rho = truncation_cutoffs(_window(config, p), p.get("a"), p.get("b"), p.get("rho"))
    theta = default_inv_freq(config, layer_type, device)
    return truncate_basis(theta, a, b, rho), 1.0


def power_factors(dim: int, k: float, device: Any = None) -> torch.Tensor:
    """(1 − 2i/d)^k for i in [0, d/2)."""
    two_i = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float)
    return (1.0 - two_i / dim) ** k


def power_inv_freq(
    config: Any, device: Any = None, seq_len: int | None = None, layer_type: str | None = None
) -> tuple[torch.Tensor, float]:
    """ROPE_INIT_FUNCTIONS-compatible: θ'_i = θ_i·(1 − 2i/d)^k, attention factor 1."""
    k = float(rope_params(config, layer_type)["k"])
    theta = default_inv_freq(config, layer_type, device)
    return theta * power_factors(rotary_dim(config, layer_type), k, device), 1.0


class _GiraffeRope(ScaledRope):
    """Installs the basis; the usable context changes only by the declared ``window_factor``."""

    def apply(self, ctx: Any) -> dict[str, Any]:
        c = self.config
        out = apply_rope(
            ctx, rope_type=self.rope_type, init_fn=type(self).inv_freq, params=self.rope_parameters(), layers=c.layers
        )
        if ctx.max_context is not None:
            ctx.max_context = int(ctx.max_context * c.window_factor)
        return out


class TruncatedBasis(_GiraffeRope):
    """Installs Giraffe's truncated basis on the model's rotary embedding."""

    rope_type = TRUNCATED_TYPE
    inv_freq = staticmethod(truncated_inv_freq)

    def rope_parameters(self) -> dict[str, Any]:
        c = self.config
        return {"a": c.a, "b": c.b, "rho": c.rho}

    def apply(self, ctx: Any) -> dict[str, Any]:
        out = super().apply(ctx)
        c = self.config
        out["cutoffs"] = {
            lt: dict(
                zip(
                    ("a", "b", "rho"),
                    truncation_cutoffs(
                        int(entry.get("original_max_position_embeddings") or ctx.info.max_position_embeddings),
                        c.a,
                        c.b,
                        c.rho,
                    ),
                    strict=True,
                )
            )
            for lt, entry in out["rope_parameters"].items()
        }
        return out


class PowerScaling(_GiraffeRope):
    """Installs Giraffe's power-scaled basis on the model's rotary embedding."""

    rope_type = POWER_TYPE
    inv_freq = staticmethod(power_inv_freq)

    def rope_parameters(self) -> dict[str, Any]:
        return {"k": self.config.k}


@hookimpl
def lc_register_positional_encodings(register):
    paper = "Pal et al. 2023 (Giraffe), arXiv:2308.10882"
    register(
        "truncated-basis",
        config=TruncatedBasisConfig,
        build=TruncatedBasis,
        summary="Giraffe's truncated RoPE basis: keep θ ≥ b, set a < θ < b to ρ, zero θ ≤ a",
        paper=paper,
        capabilities=("rope",),
    )
    register(
        "power-scaling",
        config=PowerScalingConfig,
        build=PowerScaling,
        summary="Giraffe's power-scaled RoPE basis: θ'_i = θ_i·(1 − 2i/d)^k",
        paper=paper,
        capabilities=("rope",),
    )
