"""``longrope``: LongRoPE — per-dimension rescale factors, one set for short and one for long inputs.

Ding, Zhang, Zhang, Xu, Shang, Xu, Yang & Yang 2024, "LongRoPE: Extending LLM Context Window Beyond 2
Million Tokens", arXiv:2402.13753.

Method (§2–3). Instead of one scale for every dimension (PI) or a fixed rule (NTK, YaRN), each RoPE
dimension pair ``i`` gets its own rescale factor ``λ_i``, found by an evolutionary search over the
perplexity of long documents (§3.2):

    θ'_i = θ_i / λ_i,        θ_i = b^{-2i/|D|},   i = 0 … |D|/2 − 1

Factors that extend far (``long_factor``) hurt short inputs, so a second set (``short_factor``) is
searched for the original window and the set is chosen by the current length (§3.3, "recovering
short context window performance"): ``short_factor`` while the sequence fits the original window
``L``, ``long_factor`` beyond it. The attention logits are scaled by the factor applied to cos and sin,
by default ``√(1 + ln(s) / ln(L))`` for the extension ratio ``s = L'/L`` (1 when ``s ≤ 1``), as in the
released Phi-3 models and transformers' ``longrope``. (The paper's option of leaving the first ``n̂``
positions un-interpolated is not part of that reference and not implemented here.)

The factors are *parameters*: LongRoPE's search is per model, so there are no defaults — pass the
``|D|/2`` values of each set (``;``-separated on the command line), e.g. a released model's
``rope_scaling.short_factor`` / ``long_factor``. Their lengths are checked against the model's rotary
dimension when composing.

How the sets switch. The frequencies are installed through transformers' ``ROPE_INIT_FUNCTIONS`` as
``longctx_longrope``; the rotary module's ``rope_type`` is then labelled ``longrope``, which makes
transformers' ``dynamic_rope_update`` choose per forward between the short set and the long set (that
this plugin precomputes) by ``max(position_ids) + 1 > L`` — exactly transformers' own ``longrope``. A
throw-away rotary module is probed at compose time; a transformers that does not switch is refused.
As with every length-dependent RoPE, keys already cached keep the rotation they were computed with.
Applied to Gemma 3's full-attention layers by default.
"""

from __future__ import annotations

import math
from typing import Any

import attrs
import torch

from longctx.capabilities import rotary_modules, text_config
from longctx.errors import IncompatibleModelError, ParameterError
from longctx.hooks import hookimpl
from longctx.params import at_least, one_of, optional, positive
from longctx.rope import (
    LAYER_CHOICES,
    ScaledRope,
    apply_rope,
    extended_window,
    fp32_rotation_field,
    layer_inv_freq,
    new_rotary,
    rope_params,
    rotary_dim,
    target_layer_types,
)

ROPE_TYPE = "longctx_longrope"
#: The rope type transformers' ``dynamic_rope_update`` switches short/long factors for.
_SWITCHING_TYPE = "longrope"


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _all_positive(_inst: Any, attribute: attrs.Attribute, value: tuple[float, ...]) -> None:
    bad = [v for v in value if not v > 0]
    if bad:
        raise ParameterError(f"{attribute.name} must hold positive numbers, got {bad[0]!r}")


@attrs.frozen
class LongRoPEConfig:
    """The searched per-dimension factors ``λ_i`` (short and long sets), the original window ``L`` and
    the extension ratio ``s`` behind the attention factor."""

    short_factor: tuple[float, ...] = attrs.field(
        default=(),
        converter=_floats,
        validator=_all_positive,
        metadata={"help": "λ_i for inputs within L: |D|/2 values, ';'-separated (required)"},
    )
    long_factor: tuple[float, ...] = attrs.field(
        default=(),
        converter=_floats,
        validator=_all_positive,
        metadata={"help": "λ_i for inputs longer than L: |D|/2 values, ';'-separated (required)"},
    )
    factor: float | None = attrs.field(
        default=None,
        validator=optional(at_least(1.0)),
        metadata={"help": "s = L'/L (none: max_position_embeddings / original_max_position_embeddings)"},
    )
    original_max_position_embeddings: int | None = attrs.field(
        default=None,
        validator=optional(positive),
        metadata={"help": "L: the pre-training window (none: the model's max_position_embeddings)"},
    )
    attention_factor: float | None = attrs.field(
        default=None,
        validator=optional(positive),
        metadata={"help": "scale of cos and sin (none: √(1 + ln(s)/ln(L)))"},
    )
    layers: str = attrs.field(
        default="full", validator=one_of(*LAYER_CHOICES), metadata={"help": "layer types to change"}
    )
    fp32_rotation: bool = fp32_rotation_field()


def longrope_attention_factor(factor: float, original: int) -> float:
    """√(1 + ln(s) / ln(L)), 1 for s ≤ 1 (Phi-3 / transformers' ``longrope``)."""
    if factor <= 1.0:
        return 1.0
    return math.sqrt(1 + math.log(factor) / math.log(original))


def longrope_inv_freq(
    config: Any, device: Any = None, seq_len: int | None = None, layer_type: str | None = None
) -> tuple[torch.Tensor, float]:
    """ROPE_INIT_FUNCTIONS-compatible: θ'_i = θ_i / λ_i with the long set when ``seq_len > L``, the short
    set otherwise (also at construction, ``seq_len=None``)."""
    p = rope_params(config, layer_type)
    base = p["rope_theta"]
    dim = rotary_dim(config, layer_type)
    original = p["original_max_position_embeddings"]
    factor = p.get("factor")
    if factor is None:
        factor = config.max_position_embeddings / original
    attention_factor = p.get("attention_factor")
    if attention_factor is None:
        attention_factor = longrope_attention_factor(factor, original)
    lam = p["long_factor"] if seq_len and seq_len > original else p["short_factor"]
    ext_factors = torch.tensor(lam, dtype=torch.float32, device=device)
    exponents = torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim
    return 1.0 / (ext_factors * base**exponents), attention_factor


def _switching(module: Any, layer_types: list[str | None], set_attr: Any) -> None:
    """Label ``module``'s changed layer types ``longrope`` (so transformers' ``dynamic_rope_update``
    switches sets per forward) and hand it this plugin's long set, so transformers' init function is
    not needed for it."""
    if isinstance(module.rope_type, dict):
        set_attr(module, "rope_type", {**module.rope_type, **{lt: _SWITCHING_TYPE for lt in layer_types}})
    else:
        set_attr(module, "rope_type", _SWITCHING_TYPE)
    for lt in layer_types:
        original = rope_params(module.config, lt)["original_max_position_embeddings"]
        device = layer_inv_freq(module, lt).device
        long_inv_freq, _ = longrope_inv_freq(module.config, device, seq_len=original + 1, layer_type=lt)
        set_attr(module, f"{lt}_long_inv_freq" if lt else "long_inv_freq", long_inv_freq)


def _check_switching(module: Any, layer_types: list[str | None], architecture: str) -> None:
    """A throw-away copy of ``module`` must use the long set at ``L + 1`` tokens and the short set at 1."""
    probe = new_rotary(module)
    _switching(probe, layer_types, setattr)
    x = torch.zeros(1, 1, dtype=torch.float32)
    for lt in layer_types:
        original = rope_params(module.config, lt)["original_max_position_embeddings"]
        for n in (original + 1, 1):
            positions = torch.tensor([[n - 1]])
            try:
                with torch.no_grad():
                    probe(x, positions) if lt is None else probe(x, positions, layer_type=lt)
            except Exception as e:  # a transformers whose update cannot handle this module
                raise IncompatibleModelError(
                    f"longrope: this transformers' dynamic_rope_update fails on {type(module).__name__} of "
                    f"{architecture} ({type(e).__name__}: {e})"
                ) from None
            want, _ = longrope_inv_freq(module.config, seq_len=n, layer_type=lt)
            got = layer_inv_freq(probe, lt)
            if got.shape != want.shape or not torch.allclose(got.float().cpu(), want, rtol=1e-6):
                which = "long" if n > original else "short"
                raise IncompatibleModelError(
                    f"longrope: {type(module).__name__} of {architecture} did not switch to the {which} factors "
                    f"for a {n}-token input: this transformers' dynamic_rope_update does not handle it"
                )


class LongRoPE(ScaledRope):
    """Installs LongRoPE's per-dimension factors, switching short/long sets by the current length."""

    rope_type = ROPE_TYPE
    inv_freq = staticmethod(longrope_inv_freq)

    def _validate(self, ctx: Any, targets: list[str | None]) -> None:
        c = self.config
        for lt in targets:
            half = rotary_dim(text_config(ctx.model.config), lt) // 2
            where = f" ({lt} layers)" if lt else ""
            for name in ("short_factor", "long_factor"):
                got = len(getattr(c, name))
                if got == 0:
                    raise ParameterError(
                        f"longrope: {name} is required: LongRoPE's per-dimension factors are searched for each "
                        f"model; give the {half} values (|D|/2) of {ctx.info.architecture}{where}, ';'-separated, "
                        "e.g. from a released model's rope_scaling"
                    )
                if got != half:
                    raise ParameterError(
                        f"longrope: {name} has {got} values, but the rotary dimension |D| = {2 * half} of "
                        f"{ctx.info.architecture}{where} needs |D|/2 = {half}"
                    )

    def apply(self, ctx: Any) -> dict[str, Any]:
        c = self.config
        cfg = text_config(ctx.model.config)
        targets = target_layer_types(cfg, c.layers)
        self._validate(ctx, targets)
        window = ctx.info.max_position_embeddings
        original = c.original_max_position_embeddings or window
        if original is None:
            raise ParameterError(
                f"longrope: {ctx.info.architecture} declares no max_position_embeddings; "
                "set original_max_position_embeddings (the pre-training window L)"
            )
        factor = c.factor if c.factor is not None else window / original
        params = {
            "short_factor": list(c.short_factor),
            "long_factor": list(c.long_factor),
            "factor": factor,
            "original_max_position_embeddings": int(original),
            "attention_factor": c.attention_factor,
        }
        out = apply_rope(ctx, rope_type=self.rope_type, init_fn=longrope_inv_freq, params=params, layers=c.layers)
        for _name, module in rotary_modules(ctx.model):
            _check_switching(module, targets, ctx.info.architecture)
            _switching(module, targets, ctx.set_attr)
        out["attention_factor"] = (
            c.attention_factor if c.attention_factor is not None else longrope_attention_factor(factor, int(original))
        )
        out["long_factor_beyond"] = int(original)
        ctx.max_context = extended_window(ctx.max_context, factor, int(original))
        return out


@hookimpl
def lc_register_positional_encodings(register):
    register(
        "longrope",
        config=LongRoPEConfig,
        build=LongRoPE,
        summary="LongRoPE: searched per-dimension RoPE rescale factors, short set within the window, long beyond",
        paper="Ding et al. 2024, arXiv:2402.13753",
        capabilities=("rope",),
    )
