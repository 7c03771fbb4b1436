"""``abf``: Adjusted Base Frequency — raise the RoPE base θ, then train at the longer length.

Xiong et al. 2023, "Effective Long-Context Scaling of Foundation Models" (Llama 2 Long),
arXiv:2309.16039: continual pre-training of Llama 2 at 32K tokens with the rotary base raised from
θ = 10,000 to θ = 500,000, which reduces RoPE's decay of attention with distance so long-range tokens
stay distinguishable. The same knob is CNNSum's "base scaling" of extrapolation (Wei et al. 2024,
arXiv:2412.02819) and the θ = 500,000 of Llama 3.

Method. RoPE rotates dimension pair ``i`` with ``θ_i = b^{-2i/|D|}``. ABF sets ``b' = k·b``:

    θ'_i = (k·b)^{-2i/|D|}

(Xiong et al.: ``k = 50``.) The highest frequency (``i = 0``) is unchanged and the lower ones slow
down — unlike NTK-aware scaling, ``k`` is chosen directly rather than derived from a target length.
No attention temperature.

Design. The parameter is the *factor* ``base_factor = k``, not an absolute θ: it is relative to each
layer type's own base (Gemma 3: 10k on sliding and 1M on full layers; one absolute value could not
serve both with ``layers=all``, and Gemma 3's full layers are already above 500,000), and
``base_factor = 1`` is the identity on every model. For the paper's 10,000 → 500,000 on a θ = 10k
model, use the default ``k = 50``.

ABF is meant to be followed by continued training at the longer length (the paper fine-tunes); used
zero-shot it mostly shifts the model's behaviour. It does not by itself say how long a context the
model handles, so the usable context is left as is unless ``window_factor`` declares the extension
the (fine-tuned) model supports: ``max_context = window_factor × max_position_embeddings``.
Applied to Gemma 3's full-attention layers by default.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from longctx.hooks import hookimpl
from longctx.params import at_least, one_of
from longctx.rope import LAYER_CHOICES, ScaledRope, apply_rope, fp32_rotation_field, rope_params, rotary_dim

ROPE_TYPE = "longctx_abf"


@attrs.frozen
class ABFConfig:
    """The base multiplier ``k`` (θ' = k·θ) and the window the adapted model is declared to handle."""

    base_factor: float = attrs.field(
        default=50.0,
        validator=at_least(1.0),
        metadata={"help": "k: the RoPE base becomes k·θ (Xiong et al.: 10,000 → 500,000, k = 50)"},
    )
    window_factor: float = attrs.field(
        default=1.0,
        validator=at_least(1.0),
        metadata={"help": "declared usable context, × max_position_embeddings (ABF claims none by itself)"},
    )
    layers: str = attrs.field(
        default="full", validator=one_of(*LAYER_CHOICES), metadata={"help": "layer types to change"}
    )
    fp32_rotation: bool = fp32_rotation_field()


def abf_base(base: float, base_factor: float) -> float:
    """b' = k·b."""
    return base * base_factor


def abf_inv_freq(
    config: Any, device: Any = None, seq_len: int | None = None, layer_type: str | None = None
) -> tuple[torch.Tensor, float]:
    """ROPE_INIT_FUNCTIONS-compatible: θ'_i = (k·b)^{-2i/|D|}, attention factor 1."""
    p = rope_params(config, layer_type)
    dim = rotary_dim(config, layer_type)
    base = abf_base(float(p["rope_theta"]), float(p["base_factor"]))
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
    return 1.0 / (base**exponents), 1.0


class AdjustedBaseFrequency(ScaledRope):
    """Installs ABF on the model's rotary embedding."""

    rope_type = ROPE_TYPE
    inv_freq = staticmethod(abf_inv_freq)

    def rope_parameters(self) -> dict[str, Any]:
        return {"base_factor": self.config.base_factor}

    def apply(self, ctx: Any) -> dict[str, Any]:
        c = self.config
        out = apply_rope(
            ctx, rope_type=self.rope_type, init_fn=abf_inv_freq, params=self.rope_parameters(), layers=c.layers
        )
        out["rope_theta"] = {
            lt: abf_base(float(entry["rope_theta"]), c.base_factor) for lt, entry in out["rope_parameters"].items()
        }
        if ctx.max_context is not None:
            ctx.max_context = int(ctx.max_context * c.window_factor)
        return out


@hookimpl
def lc_register_positional_encodings(register):
    register(
        "abf",
        config=ABFConfig,
        build=AdjustedBaseFrequency,
        summary="Adjusted base frequency: raise the RoPE base θ by a factor (meant with continued training)",
        paper="Xiong et al. 2023, arXiv:2309.16039; CNNSum (Wei et al. 2024), arXiv:2412.02819",
        capabilities=("rope",),
    )
