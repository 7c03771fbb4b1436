"""Shared RoPE machinery for positional plugins.

Plugins express a method as an *init function* in transformers' public ``ROPE_INIT_FUNCTIONS`` format
(``fn(config, device=None, seq_len=None, layer_type=None) -> (inv_freq, attention_factor)``), and
:func:`apply_rope` installs it on a loaded model without touching any model class: it copies the
config with new ``rope_parameters`` for the chosen layer types (Gemma 3 nests them per layer type),
builds a fresh rotary module of the model's own class from it, and swaps the instance in. Every change
goes through the compose context, so undo restores the original module and config.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from transformers import modeling_rope_utils

from longctx.capabilities import rotary_modules, text_config
from longctx.errors import IncompatibleModelError

if TYPE_CHECKING:
    from longctx.runtime import ComposeContext

InitFn = Callable[..., tuple[torch.Tensor, float]]

#: Which layer types a positional method is applied to (``layers=`` parameter of RoPE plugins).
LAYER_CHOICES = ("full", "sliding", "all")


def register_rope_type(name: str, fn: InitFn) -> None:
    """Make ``fn`` available to transformers as ``rope_type=name`` (public dict, no patching)."""
    modeling_rope_utils.ROPE_INIT_FUNCTIONS[name] = fn


def rope_params(config: Any, layer_type: str | None) -> Mapping[str, Any]:
    """The RoPE parameter dict of one layer type (or the model's, when not nested)."""
    rp = config.rope_parameters
    if layer_type is not None and isinstance(rp, Mapping) and layer_type in rp:
        return rp[layer_type]
    return rp


def rotary_dim(config: Any, layer_type: str | None = None) -> int:
    """The number of rotated dimensions (head_dim × partial_rotary_factor)."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    factor = rope_params(config, layer_type).get("partial_rotary_factor", 1.0) or 1.0
    return int(head_dim * factor)


def default_inv_freq(config: Any, layer_type: str | None = None, device: Any = None) -> torch.Tensor:
    """θ_i = base^(-2i/d) for i in [0, d/2): the unscaled RoPE frequencies (Su et al. 2021)."""
    base = float(rope_params(config, layer_type)["rope_theta"])
    dim = rotary_dim(config, layer_type)
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim))


def _nested(config: Any) -> bool:
    rp = config.rope_parameters
    types = getattr(config, "layer_types", None) or ()
    return isinstance(rp, Mapping) and bool(types) and all(t in rp for t in set(types))


def target_layer_types(config: Any, layers: str) -> list[str | None]:
    """The layer types a method applies to. ``None`` stands for "the model's only RoPE"."""
    if not _nested(config):
        return [None]
    types = sorted(set(config.layer_types))
    if layers == "all":
        return types
    want = "sliding_attention" if layers == "sliding" else "full_attention"
    return [t for t in types if t == want]


def apply_rope(
    ctx: ComposeContext,
    *,
    rope_type: str,
    init_fn: InitFn,
    params: Mapping[str, Any],
    layers: str = "full",
) -> dict[str, Any]:
    """Install RoPE method ``rope_type`` (computed by ``init_fn``) with ``params`` on ``ctx.model``.

    Returns the description: which layer types changed and their new parameters.
    """
    model = ctx.model
    rotaries = rotary_modules(model)
    if not rotaries:
        raise IncompatibleModelError(f"{ctx.info.architecture} has no rotary position embedding")
    register_rope_type(rope_type, init_fn)
    cfg = text_config(model.config)
    targets = target_layer_types(cfg, layers)
    if not targets:
        raise IncompatibleModelError(
            f"layers={layers!r} selects no layer of {ctx.info.architecture} "
            f"(layer types: {', '.join(sorted(set(ctx.info.layer_types)))})"
        )
    new_rp = copy.deepcopy(dict(cfg.rope_parameters))
    changed = {}
    for lt in targets:
        base = dict(rope_params(cfg, lt))
        entry = {**base, **params, "rope_type": rope_type}
        if lt is None:
            new_rp = entry
            changed["all"] = entry
        else:
            new_rp[lt] = entry
            changed[lt] = entry
    new_cfg = copy.deepcopy(cfg)
    new_cfg.rope_parameters = new_rp
    for name, mod in rotaries:
        device = next((b.device for b in mod.buffers()), None)
        fresh = new_rotary(mod, new_cfg, device=device)
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        ctx.set_attr(parent, attr, fresh)
    ctx.set_attr(cfg, "rope_parameters", new_rp)
    return {"rope_type": rope_type, "layers": layers, "rope_parameters": _jsonable(changed)}


def new_rotary(module: Any, config: Any = None, *, device: Any = None) -> Any:
    """A fresh rotary module of ``module``'s own class, built from ``config`` (default: its own).

    The constructor takes ``device`` on some models and not others (detected by signature)."""
    config = module.config if config is None else config
    accepts_device = "device" in inspect.signature(type(module).__init__).parameters
    fresh = type(module)(config, device=device) if accepts_device else type(module)(config)
    return fresh.to(device) if device is not None else fresh


def extended_window(current: int | None, factor: float, original: int) -> int | None:
    """The usable context after scaling by ``factor`` from an ``original`` training window: ``s`` times
    the original window (a model is not assumed to work beyond its own window), never less than the
    model's window; ``None`` (unbounded) stays unbounded."""
    if current is None:
        return None
    return max(current, int(factor * min(original, current)))


def _jsonable(d: Any) -> Any:
    if isinstance(d, Mapping):
        return {str(k): _jsonable(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_jsonable(v) for v in d]
    if isinstance(d, torch.Tensor):
        return d.tolist()
    return d


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def rerotate(x: torch.Tensor, delta: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Move already-rotated vectors by ``delta`` positions: ``Rot(x, δ) = x·cos(δθ) + rotate_half(x)·sin(δθ)``.

    Exact for any RoPE with a fixed ``inv_freq``; angles are computed in float32 (float64 for
    |δ| > 2²⁰), since the relative property breaks in bf16. ``delta`` broadcasts against ``x[..., 0]``.
    Only the first ``2·len(inv_freq)`` dimensions rotate (partial rotary).
    """
    big = delta.abs().max().item() > 2**20 if delta.numel() else False
    dt = torch.float64 if big else torch.float32
    ang = delta.to(dt)[..., None] * inv_freq.to(device=x.device, dtype=dt)
    emb = torch.cat((ang, ang), dim=-1)
    rot = emb.shape[-1]
    xr, xp = x[..., :rot], x[..., rot:]
    out = xr.to(dt) * emb.cos() + rotate_half(xr.to(dt)) * emb.sin()
    out = out.to(x.dtype)
    return torch.cat((out, xp), dim=-1) if xp.shape[-1] else out


def layer_inv_freq(module: Any, layer_type: str | None) -> torch.Tensor:
    """The ``inv_freq`` a rotary module uses for ``layer_type`` (public buffer names of transformers)."""
    if layer_type is not None and hasattr(module, f"{layer_type}_inv_freq"):
        return getattr(module, f"{layer_type}_inv_freq")
    return module.inv_freq


class ScaledRope:
    """Base of RoPE methods parametrised by a scale factor ``s`` that stretch the window to ``s·L``.

    A subclass names its ``rope_type`` and gives its frequencies as a static ``inv_freq`` in
    ``ROPE_INIT_FUNCTIONS`` format (reading ``factor`` from the layer's rope parameters); its config has
    ``factor`` and ``layers``. :meth:`apply` installs it with :func:`apply_rope` and scales the usable
    context by ``s``.
    """

    rope_type: str = ""

    def __init__(self, config: Any, ctx: Any = None) -> None:
        self.config = config

    @staticmethod
    def inv_freq(
        config: Any, device: Any = None, seq_len: int | None = None, layer_type: str | None = None
    ) -> tuple[torch.Tensor, float]:
        raise NotImplementedError

    def rope_parameters(self) -> dict[str, Any]:
        """The entries this method adds to the layer's ``rope_parameters``."""
        return {"factor": self.config.factor}

    def apply(self, ctx: ComposeContext) -> dict[str, Any]:
        out = apply_rope(
            ctx,
            rope_type=self.rope_type,
            init_fn=type(self).inv_freq,
            params=self.rope_parameters(),
            layers=self.config.layers,
        )
        if ctx.max_context is not None:
            ctx.max_context = int(ctx.max_context * self.config.factor)
        return out
