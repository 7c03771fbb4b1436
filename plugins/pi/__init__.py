"""``pi``: Position Interpolation — linear down-scaling of position indices.

Chen, Wong, Chen & Tian 2023, "Extending Context Window of Large Language Models via Positional
Interpolation", arXiv:2306.15595; the same "linear scaling" is Giraffe's (Pal et al. 2023,
arXiv:2308.10882).

Method (Chen et al., §2.2): to extend a window of length ``L`` to ``L' = s·L``, a position ``m`` is
mapped to ``m / s`` before rotation, ``f'(x, m) = f(x, m·L/L')``. Since RoPE rotates dimension pair
``i`` by ``m·θ_i`` with ``θ_i = b^{-2i/d}``, this equals keeping positions and dividing every frequency
by the scale factor: ``θ'_i = θ_i / s``. No attention temperature is applied.

For models with several layer types (Gemma 3: sliding-window layers with θ=10k, full layers with
θ=1M) it is applied to the full-attention layers by default — the sliding layers never see distances
beyond their window.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from longctx.hooks import hookimpl
from longctx.params import at_least, one_of
from longctx.rope import LAYER_CHOICES, ScaledRope, default_inv_freq, fp32_rotation_field, rope_params

ROPE_TYPE = "longctx_pi"


@attrs.frozen
class PIConfig:
    """Parameters named as in the paper: the scale factor ``s = L'/L``."""

    factor: float = attrs.field(
        default=2.0, validator=at_least(1.0), metadata={"help": "scale s = L'/L (1 = unchanged)"}
    )
    layers: str = attrs.field(
        default="full", validator=one_of(*LAYER_CHOICES), metadata={"help": "layer types to change"}
    )
    fp32_rotation: bool = fp32_rotation_field()


def pi_inv_freq(config: Any, device: Any = None, seq_len: int | None = None, layer_type: str | None = None):
    """ROPE_INIT_FUNCTIONS-compatible: θ'_i = θ_i / s, attention factor 1."""
    s = float(rope_params(config, layer_type)["factor"])
    inv_freq: torch.Tensor = default_inv_freq(config, layer_type, device) / s
    return inv_freq, 1.0


class PositionInterpolation(ScaledRope):
    """Installs PI on the model's rotary embedding."""

    rope_type = ROPE_TYPE
    inv_freq = staticmethod(pi_inv_freq)


@hookimpl
def lc_register_positional_encodings(register):
    register(
        "pi",
        config=PIConfig,
        build=PositionInterpolation,
        summary="Position interpolation: divide RoPE frequencies by the scale factor (linear scaling)",
        paper="Chen et al. 2023, arXiv:2306.15595; Pal et al. 2023 (Giraffe), arXiv:2308.10882",
        capabilities=("rope",),
    )
