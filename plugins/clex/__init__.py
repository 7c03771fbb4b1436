"""``clex``: CLEX — RoPE frequencies that follow a learned neural ODE over the length scale factor.

Chen, Li, Meng, Liang & Bing 2023, "CLEX: Continuous Length Extrapolation for Large Language Models",
arXiv:2310.16450 (ICLR 2024); authors' code DAMO-NLP-SG/CLEX (``CLEX/clex_layer.py``), read to learn
the parameterisation and the checkpoint names, not copied.

**CLEX needs fine-tuning to be useful.** Its dynamics are learned. Without ``weights=`` the plugin runs
the *untrained* dynamics (``W_down = 0``, the authors' initialisation), which is exactly NTK-aware
scaling with factor ``α = 2t − 1`` of the model's own base — a length-dependent NTK, not CLEX's learned
frequencies. Train them with :func:`clex_training_step` (or load the authors' learned ``ode_up_proj`` /
``ode_down_proj``) and pass the file as ``weights=PATH``.

Method (§3). PI and NTK scale RoPE's frequencies ``θ`` for one chosen factor. CLEX makes the scale
factor ``t`` continuous and lets the frequencies evolve with it as a dynamical system over ``t``:

    dθ(t)/dt = g(θ(t), t),    θ(1) = θ  (the model's inverse frequencies)

parameterised on ``z = log θ`` by a small network plus an NTK-aware time embedding ``ξ_t``
(:mod:`longctx.plugins.clex.dynamics`)::

    dz/dt = σ((z + log ξ_t)·W_up)·W_down + d log ξ_t/dt,   log ξ_t = −(2i/d) ln b_ξ − (2i/(d−2)) ln(2t − 1)

``W_up ∈ R^{d/2×λd}`` (``ode_up_proj``), ``W_down ∈ R^{λd×d/2}`` (``ode_down_proj``), ``σ`` tanh.
``θ(t)`` is obtained by integrating from 1 to ``t`` with our fixed-step RK4 (or RK4's 3/8 rule, which is
what the authors' ``torchdiffeq`` ``rk4`` computes, or Euler), step ``time_dt`` = 0.01.

Training (§3.3, :mod:`longctx.plugins.clex.training`): per step ``t ~ U{1, …, t_max}``, and the ``n``
training tokens get positions drawn from ``[0, t·n)`` ("position extrapolation"), so short sequences
teach the dynamics for long ones. Inference: the scale follows the current length ``L'`` (``max position
+ 1``) over the training window ``L``: ``t = max(1, L'/L)`` (``scale=continuous``, the paper) or
``t = ⌈L'/L⌉`` (``scale=bucket``, the authors' code, the default), capped at ``t_max`` (``factor``).
Inside the window ``t = 1`` and the frequencies are the model's own, bit for bit: **logits for inputs up
to L tokens are unchanged**.

How it runs. Like the other scaled RoPE methods it installs a fresh rotary module of the model's own
class (rope type ``longctx_clex``, whose init function gives ``θ(1)``), then mixes
:class:`~longctx.plugins.clex.rotary.CLEXRotaryMixin` into it: each call picks ``t`` from the
``position_ids``, integrates (cached per ``t`` when no gradient is needed) and lets the model's own
``forward`` rotate with ``θ(t)``. The ODE parameters live in that module (``rotary_emb.clex``).

Limitation: as with dynamic NTK, keys are cached after RoPE, so a generation that crosses a multiple of
``L`` keeps earlier keys rotated with the previous ``θ(t)`` (the authors cache keys before RoPE and
re-rotate them all every step); one forward pass over the whole sequence is exact.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from longctx.capabilities import rotary_modules, text_config
from longctx.errors import IncompatibleModelError, ParameterError
from longctx.hooks import hookimpl
from longctx.params import at_least, one_of, optional, positive
from longctx.plugins.clex.dynamics import (
    ACTIVATIONS,
    METHODS,
    CLEXDynamics,
    dynamics_from_weights,
    load_clex_weights,
    odeint,
    save_clex_weights,
    untrained_frequencies,
)
from longctx.plugins.clex.rotary import SCALE_MODES, CLEXRotaryMixin, clex_rotaries, make_clex_rotary, scale_for_length
from longctx.plugins.clex.training import (
    clex_lm_loss,
    clex_parameters,
    clex_training_step,
    extrapolated_positions,
    sample_scale,
)
from longctx.rope import (
    LAYER_CHOICES,
    ScaledRope,
    default_inv_freq,
    extended_window,
    fp32_rotation_field,
    rotary_dim,
    target_layer_types,
)

ROPE_TYPE = "longctx_clex"
PAPER = "Chen et al. 2023, CLEX: Continuous Length Extrapolation for LLMs, arXiv:2310.16450 (code: DAMO-NLP-SG/CLEX)"

__all__ = [
    "CLEX",
    "CLEXConfig",
    "CLEXDynamics",
    "CLEXRotaryMixin",
    "clex_dynamics",
    "clex_lm_loss",
    "clex_parameters",
    "clex_rotaries",
    "clex_training_step",
    "extrapolated_positions",
    "load_clex_weights",
    "odeint",
    "sample_scale",
    "save_clex_weights",
    "scale_for_length",
    "untrained_frequencies",
]


@attrs.frozen
class CLEXConfig:
    """CLEX's settings, named after the authors' ``rope_scaling`` keys where they have one."""

    factor: float = attrs.field(
        default=16.0,
        validator=at_least(1.0),
        metadata={"help": "t_max (the authors' max_factor): largest scale; usable window t_max·L"},
    )
    weights: str | None = attrs.field(
        default=None,
        metadata={"help": "safetensors file with the learned ode_up_proj/ode_down_proj (none: untrained = NTK α=2t−1)"},
    )
    scale: str = attrs.field(
        default="bucket",
        validator=one_of(*SCALE_MODES),
        metadata={"help": "t from the length L': bucket ⌈L'/L⌉ (authors' code) or continuous L'/L (paper)"},
    )
    original_max_position_embeddings: int | None = attrs.field(
        default=None,
        validator=optional(positive),
        metadata={"help": "L: the training window (none: the model's max_position_embeddings)"},
    )
    method: str = attrs.field(
        default="rk4", validator=one_of(*METHODS), metadata={"help": "ODE solver: rk4, rk38 (3/8 rule) or euler"}
    )
    time_dt: float = attrs.field(default=0.01, validator=positive, metadata={"help": "ODE step size (authors: 0.01)"})
    act: str = attrs.field(
        default="tanh", validator=one_of(*ACTIVATIONS), metadata={"help": "σ of the ODE network (tanh or silu)"}
    )
    param_factor: int = attrs.field(
        default=1, validator=positive, metadata={"help": "λ: hidden width λ·d of untrained dynamics"}
    )
    time_base: float = attrs.field(
        default=10000.0, validator=positive, metadata={"help": "b_ξ of the NTK time embedding (authors: 10000)"}
    )
    seed: int = attrs.field(default=0, metadata={"help": "seed of the W_up init of untrained dynamics"})
    layers: str = attrs.field(
        default="full", validator=one_of(*LAYER_CHOICES), metadata={"help": "layer types to change"}
    )
    fp32_rotation: bool = fp32_rotation_field()


def clex_initial_inv_freq(
    config: Any, device: Any = None, seq_len: int | None = None, layer_type: str | None = None
) -> tuple[torch.Tensor, float]:
    """ROPE_INIT_FUNCTIONS-compatible: ``θ(1)``, the unscaled frequencies (the ODE's initial condition)."""
    return default_inv_freq(config, layer_type, device), 1.0


def clex_dynamics(model: Any) -> CLEXDynamics:
    """The :class:`CLEXDynamics` installed on ``model`` (to save after training)."""
    from longctx.models import LoadedModel

    mdl = model.model if isinstance(model, LoadedModel) else model
    mods = clex_rotaries(mdl)
    if not mods:
        raise ParameterError("clex: the model has no CLEX rotary module; compose positional=clex first")
    return mods[0].clex


class CLEX(ScaledRope):
    """Installs CLEX: a rotary module of the model's class whose frequencies follow the ODE at ``t(L')``."""

    rope_type = ROPE_TYPE
    inv_freq = staticmethod(clex_initial_inv_freq)

    def __init__(self, config: CLEXConfig, ctx: Any = None) -> None:
        super().__init__(config, ctx)
        if config.weights is not None:
            load_clex_weights(config.weights)  # fail at build time on a missing or malformed file

    def rope_parameters(self) -> dict[str, Any]:
        return {"factor": self.config.factor}

    def _dynamics(self, dim: int) -> tuple[CLEXDynamics, str]:
        c = self.config
        if c.weights is None:
            dyn = CLEXDynamics(dim, act=c.act, time_base=c.time_base, param_factor=c.param_factor, seed=c.seed)
            return dyn, "untrained (W_down = 0: NTK-aware scaling with α = 2t − 1; fine-tune before use)"
        dyn, _meta = dynamics_from_weights(c.weights, dim=dim, act=c.act, time_base=c.time_base)
        return dyn, c.weights

    def apply(self, ctx: Any) -> dict[str, Any]:
        c = self.config
        cfg = text_config(ctx.model.config)
        window = c.original_max_position_embeddings or ctx.info.max_position_embeddings
        if window is None:
            raise ParameterError(
                f"clex: {ctx.info.architecture} declares no max_position_embeddings; "
                "set original_max_position_embeddings (the training window L)"
            )
        targets = target_layer_types(cfg, c.layers)
        dims = {rotary_dim(cfg, lt) for lt in targets}
        if len(dims) > 1:
            raise IncompatibleModelError(
                f"clex: layers={c.layers} selects layer types with different rotary dimensions {sorted(dims)}; "
                "one ODE serves one dimension — use layers=full or layers=sliding"
            )
        dyn, source = self._dynamics(dims.pop() if dims else 0)
        before = ctx.max_context
        out = super().apply(ctx)  # the fresh rotary modules, θ(1) (and whatever ScaledRope adds)
        ctx.max_context = extended_window(before, c.factor, int(window))
        for _name, module in rotary_modules(ctx.model):
            make_clex_rotary(
                module,
                dyn,
                targets=targets,
                window=int(window),
                max_factor=c.factor,
                mode=c.scale,
                step=c.time_dt,
                method=c.method,
            )
        out.update(
            {
                "max_factor": c.factor,
                "window": int(window),
                "scale": c.scale,
                "dynamics": source,
                "hidden": dyn.hidden,
                "method": c.method,
                "time_dt": c.time_dt,
                "recomputed_per_forward": True,
            }
        )
        return out


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance-kit contract of ``clex`` (imported only when asked)."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.plugins.clex.contract import CLEXContract

        return (CLEXContract,)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_positional_encodings(register):
    register(
        "clex",
        config=CLEXConfig,
        build=CLEX,
        summary="CLEX: RoPE frequencies follow a learned neural ODE over the length scale t (needs fine-tuning)",
        paper=PAPER,
        capabilities=("rope",),
    )
