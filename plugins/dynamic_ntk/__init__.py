"""``dynamic-ntk``: Dynamic NTK scaling — NTK-aware scaling whose scale grows with the current length.

emozilla 2023, "Dynamically Scaled RoPE further increases performance of long context LLaMA with zero
fine-tuning" (r/LocalLLaMA); described as "Dynamic Scaling" in Peng, Quesnelle, Fan & Shippole 2023,
"YaRN: Efficient Context Window Extension of Large Language Models", arXiv:2309.00071, §3.3.

Method. NTK-aware scaling (YaRN §3.1, eq. 16) with a fixed scale ``s`` changes the model even on short
inputs. Dynamic scaling picks the scale from the current sequence length ``L'`` (the largest position
+ 1) instead, so that inside the original window ``L`` the model is exactly unchanged and beyond it the
base rises just enough for ``L'``. With emozilla's factor ``s`` (the slope of the growth):

    b' = b                                            for L' ≤ L
    b' = b · ((s·L'/L) − (s − 1))^{|D|/(|D|−2)}      for L' > L

and ``θ'_i = b'^{-2i/|D|}``. The effective NTK scale ``s·L'/L − (s − 1)`` is 1 at ``L' = L`` and grows
linearly with ``L'`` (``s = 1`` gives YaRN §3.3's ``max(1, L'/L)``). No attention temperature.

How it runs. The method is an init function in transformers' ``ROPE_INIT_FUNCTIONS`` format taking
``seq_len``; it is registered as ``longctx_dynamic_ntk``: transformers' ``dynamic_rope_update``
decorator of every rotary ``forward`` recomputes the frequencies for any ``rope_type`` *containing*
"dynamic", exactly as for its own ``dynamic`` type: it grows them when a longer sequence arrives and
resets them when a sequence fits the original window again (so a call's frequencies also depend on the
longest sequence seen since the last reset — transformers' behaviour, kept). On models whose rotary
module holds one RoPE per layer type (Gemma 3) the decorator updates the chosen layer types
(``layers=full`` by default). At compose time a throw-away rotary module is probed at ``2L`` positions;
if this transformers does not recompute the frequencies there, the technique refuses the model rather
than silently acting as plain RoPE.

Limitation (transformers issue #25104). Keys are cached *after* RoPE: during generation past ``L`` the
base changes at every step while the cached keys keep the rotation of the base they were computed
with, so incremental decoding differs from one forward pass over the same tokens (re-encoding the
whole prefix, or caching keys before RoPE, would avoid it).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from longctx.capabilities import rotary_modules, text_config
from longctx.errors import IncompatibleModelError
from longctx.hooks import hookimpl
from longctx.params import at_least, one_of
from longctx.rope import (
    LAYER_CHOICES,
    ScaledRope,
    fp32_rotation_field,
    layer_inv_freq,
    new_rotary,
    rope_params,
    rotary_dim,
    target_layer_types,
)

#: Contains "dynamic": transformers' ``dynamic_rope_update`` recomputes the frequencies per forward.
ROPE_TYPE = "longctx_dynamic_ntk"


@attrs.frozen
class DynamicNTKConfig:
    """emozilla's factor ``s``: how fast the NTK scale grows past the original window."""

    factor: float = attrs.field(
        default=2.0,
        validator=at_least(1.0),
        metadata={"help": "s: the scale grows as s·L'/L − (s−1) past the window L (unchanged inside it)"},
    )
    layers: str = attrs.field(
        default="full", validator=one_of(*LAYER_CHOICES), metadata={"help": "layer types to change"}
    )
    fp32_rotation: bool = fp32_rotation_field()


def dynamic_ntk_base(base: Any, factor: float, seq_len: Any, window: int, dim: int) -> Any:
    """b' = b · ((s·L'/L) − (s − 1))^{|D|/(|D|−2)} with L' = max(seq_len, L) (emozilla 2023).

    ``seq_len`` may be a tensor (transformers passes ``max(position_ids) + 1``); the arithmetic is
    transformers' own, in the same order, so the frequencies agree bit for bit.
    """
    if isinstance(seq_len, torch.Tensor):
        seq_len = torch.maximum(seq_len, torch.tensor(window, dtype=seq_len.dtype, device=seq_len.device))
    else:
        seq_len = max(seq_len, window)
    return base * ((factor * seq_len / window) - (factor - 1)) ** (dim / (dim - 2))


def dynamic_ntk_inv_freq(
    config: Any, device: Any = None, seq_len: int | None = None, layer_type: str | None = None
) -> tuple[torch.Tensor, float]:
    """ROPE_INIT_FUNCTIONS-compatible: θ'_i = b'^{-2i/|D|} for the current length, attention factor 1.

    ``seq_len=None`` (at construction) means the original window ``L = max_position_embeddings``, where
    ``b' = b``.
    """
    p = rope_params(config, layer_type)
    dim = rotary_dim(config, layer_type)
    window = int(config.max_position_embeddings)
    base = dynamic_ntk_base(
        float(p["rope_theta"]), float(p["factor"]), window if seq_len is None else seq_len, window, dim
    )
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
    return 1.0 / (base**exponents), 1.0


def check_dynamic_update(model: Any, layer_types: list[str | None], architecture: str) -> None:
    """Refuse models whose rotary ``forward`` does not recompute the frequencies of a ``*dynamic*`` type.

    A throw-away rotary module of the model's class is run at ``2L`` positions for each changed layer
    type; its frequencies must then be the init function's at ``seq_len = 2L``.
    """
    for _name, module in rotary_modules(model):
        window = int(module.config.max_position_embeddings)
        for lt in layer_types:
            where = f" for {lt} layers" if lt else ""
            probe = new_rotary(module)
            x = torch.zeros(1, 1, dtype=torch.float32)
            # grown beyond the window, then reset inside it (as transformers' own ``dynamic`` does)
            for n in (2 * window, 1):
                try:
                    with torch.no_grad():
                        positions = torch.tensor([[n - 1]])
                        probe(x, positions) if lt is None else probe(x, positions, layer_type=lt)
                except Exception as e:  # a transformers whose update cannot handle this module
                    raise IncompatibleModelError(
                        f"dynamic-ntk: this transformers' dynamic_rope_update fails on {type(module).__name__} "
                        f"of {architecture}{where} ({type(e).__name__}: {e}); use ntk (fixed scale) or yarn"
                    ) from None
                want, _ = dynamic_ntk_inv_freq(module.config, seq_len=max(n, window), layer_type=lt)
                got = layer_inv_freq(probe, lt)
                if got.shape != want.shape or not torch.allclose(got.float().cpu(), want, rtol=1e-5):
                    raise IncompatibleModelError(
                        f"dynamic-ntk: {type(module).__name__} of {architecture} did not "
                        f"{'recompute' if n > window else 'reset'} its RoPE frequencies{where} for a {n}-token "
                        "input: this transformers' dynamic_rope_update does not handle this rotary module, so "
                        "dynamic NTK would silently act differently; use ntk (fixed scale) or yarn instead"
                    )


class DynamicNTKScaling(ScaledRope):
    """Installs dynamic NTK scaling; transformers' ``dynamic_rope_update`` recomputes it per forward."""

    rope_type = ROPE_TYPE
    inv_freq = staticmethod(dynamic_ntk_inv_freq)

    def apply(self, ctx: Any) -> dict[str, Any]:
        out = super().apply(ctx)  # usable context: s × L, as for the other scaled methods
        targets = target_layer_types(text_config(ctx.model.config), self.config.layers)
        check_dynamic_update(ctx.model, targets, ctx.info.architecture)
        out["recomputed_per_forward"] = True
        return out


@hookimpl
def lc_register_positional_encodings(register):
    register(
        "dynamic-ntk",
        config=DynamicNTKConfig,
        build=DynamicNTKScaling,
        summary="Dynamic NTK scaling: the RoPE base grows with the current length beyond the window",
        paper="emozilla 2023; Peng et al. 2023 (YaRN §3.3), arXiv:2309.00071",
        capabilities=("rope",),
    )
