"""Shared RoPE machinery for positional plugins.

Plugins express a method as an *init function* in transformers' public ``ROPE_INIT_FUNCTIONS`` format
(``fn(config, device=None, seq_len=None, layer_type=None) -> (inv_freq, attention_factor)``), and
:func:`apply_rope` installs it on a loaded model without touching any model class: it copies the
config with new ``rope_parameters`` for the chosen layer types (Gemma 3 nests them per layer type),
builds a fresh rotary module of the model's own class from it, and swaps the instance in. Every change
goes through the compose context, so undo restores the original module and config.

Every RoPE plugin also carries ``fp32_rotation`` (:func:`fp32_rotation_field`), implemented once here by
:func:`install_fp32_rotation`: in a bf16/fp16 model the rotation ``q·cos + rotate_half(q)·sin`` is then
computed in float32 and only its result is cast back to the activation dtype — the precision fix for
RoPE's broken relative property under BFloat16 (Wang et al. 2024, "When Precision Meets Position:
BFloat16 Breaks Down RoPE in Long-Context Training", arXiv:2411.13476; measured by
:mod:`longctx.rope_precision`).
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import torch
from transformers import modeling_rope_utils

from longctx.attn import original_attention
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


# -- fp32 rotation (Wang et al. 2024) ----------------------------------------------------------------

#: Activation dtypes in which transformers rotates q and k with rounded cos/sin and rounded products.
LOW_PRECISION = (torch.bfloat16, torch.float16)

FP32_ROTATION_HELP = (
    "bf16/fp16 models: compute the RoPE rotation q·cos + rotate_half(q)·sin in float32 and cast only the "
    "result back (Wang et al. 2024, arXiv:2411.13476: bf16 breaks RoPE's relative positions); "
    "no-op in float32 models"
)


def fp32_rotation_field() -> Any:
    """The ``fp32_rotation`` option of a RoPE plugin's config (off by default); declare it as
    ``fp32_rotation: bool = fp32_rotation_field()``. Subclasses of :class:`ScaledRope` then need nothing
    else: the base installs :func:`install_fp32_rotation` when it is true."""
    return attrs.field(default=False, metadata={"help": FP32_ROTATION_HELP})


def _fp32_cos_sin(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Forward pre-hook of a rotary module: give it a float32 stand-in for its activation ``x``.

    transformers' rotary ``forward(x, position_ids, …)`` computes cos and sin in float32 and returns them
    cast to ``x.dtype``; ``x`` serves only for its dtype and device. A zero-stride float32 view of ``x``'s
    shape (no memory) makes it return float32 cos and sin, and the attention modules' own
    ``q·cos + rotate_half(q)·sin`` then runs in float32 by type promotion (bf16 → fp32 is exact)."""
    x = args[0] if args else kwargs.get("x")
    if not isinstance(x, torch.Tensor) or x.dtype not in LOW_PRECISION:
        return None
    proxy = x.new_zeros((), dtype=torch.float32).expand(x.shape)
    if args:
        return (proxy, *args[1:]), kwargs
    return args, {**kwargs, "x": proxy}


def cast_back_attention(implementation: str) -> Callable[..., Any]:
    """An attention function that casts float32-rotated ``query``/``key`` back to the dtype of ``value``
    (the activation dtype) and calls the model's attention ``implementation`` with them, so q, k and v
    reaching sdpa/eager agree. Inputs that already agree pass through untouched."""

    def attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, *args: Any, **kwargs: Any):
        if query.dtype != value.dtype:
            query = query.to(value.dtype)
        if key.dtype != value.dtype:
            key = key.to(value.dtype)
        fn = original_attention(module, implementation)
        return fn(module, query, key, value, attention_mask, *args, **kwargs)

    return attention


def install_fp32_rotation(ctx: ComposeContext) -> dict[str, Any]:
    """Make ``ctx.model`` rotate q and k in float32 when it runs in bf16/fp16 (Wang et al. 2024).

    Three recorded changes, all undone with the pipeline, none touching a model class:

    1. a rotary module whose frequency buffers were cast to a low-precision dtype with the model
       (``model.to(torch.bfloat16)`` rounds ``inv_freq``) is rebuilt from its config, in float32;
    2. a forward pre-hook on every rotary module makes it return float32 cos/sin (:func:`_fp32_cos_sin`),
       so the attention modules compute ``q·cos + rotate_half(q)·sin`` in float32;
    3. the attention implementation is wrapped to cast q and k back to the activation dtype before the
       model's own kernel (:func:`cast_back_attention`). Flash-attention implementations need no wrapper:
       transformers casts float32 inputs back to the weights' dtype there itself.

    Keys are cached after RoPE, so a cache holds them in float32 (twice the key memory of a bf16 cache) and
    they are cast back at every attention call; attention techniques that replace the kernel (self-extend,
    streaming-llm) get float32 q and k and compute their logits from them. In a float32 model every step
    is a no-op: the logits are bit-identical. Idempotent within one composition.
    """
    done = ctx.__dict__.get("_lc_fp32_rotation")
    if done is not None:
        return done
    model = ctx.model
    rotaries = rotary_modules(model)
    if not rotaries:
        raise IncompatibleModelError(
            f"fp32_rotation: {ctx.info.architecture} has no rotary position embedding to rotate in float32"
        )
    restored = []
    for name, module in rotaries:
        if any(b.is_floating_point() and b.dtype in LOW_PRECISION for b in module.buffers()):
            device = next((b.device for b in module.buffers()), None)
            fresh = new_rotary(module, device=device)
            parent_name, _, attr = name.rpartition(".")
            ctx.set_attr(model.get_submodule(parent_name) if parent_name else model, attr, fresh)
            module = fresh
            restored.append(name)
        handle = module.register_forward_pre_hook(_fp32_cos_sin, with_kwargs=True)
        ctx.on_undo(handle.remove)
    previous = text_config(model.config)._attn_implementation or "eager"
    if "flash" in previous:  # transformers' flash path casts float32 q/k/v to the weights' dtype itself
        implementation = previous
    else:
        implementation = ctx.install_attention(cast_back_attention(previous), label="fp32-rotation")
    desc = {
        "rotary_modules": [name for name, _ in rotaries],
        "float32_frequencies_restored": restored,
        "attention_implementation": implementation,
        "original_implementation": previous,
    }
    ctx.set_attr(ctx, "_lc_fp32_rotation", desc)
    return desc


def with_fp32_rotation(apply: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Decorate a positional component's ``apply(self, ctx)``: once it has run, install
    :func:`install_fp32_rotation` if ``self.config.fp32_rotation`` is true and report it under
    ``"fp32_rotation"``. :class:`ScaledRope` applies it to every subclass's ``apply`` by itself."""

    @functools.wraps(apply)
    def wrapper(self: Any, ctx: Any) -> Any:
        out = apply(self, ctx)
        if getattr(self.config, "fp32_rotation", False):
            out = dict(out or {})
            out["fp32_rotation"] = install_fp32_rotation(ctx)
        return out

    wrapper._lc_fp32_rotation = True  # type: ignore[attr-defined]
    return wrapper


class ScaledRope:
    """Base of RoPE methods parametrised by a scale factor ``s`` that stretch the window to ``s·L``.

    A subclass names its ``rope_type`` and gives its frequencies as a static ``inv_freq`` in
    ``ROPE_INIT_FUNCTIONS`` format (reading ``factor`` from the layer's rope parameters); its config has
    ``factor`` and ``layers``. :meth:`apply` installs it with :func:`apply_rope` and scales the usable
    context by ``s``.

    The ``fp32_rotation`` option lives here: every subclass's own ``apply`` is wrapped with
    :func:`with_fp32_rotation` when the class is defined, so a subclass only declares the field
    (:func:`fp32_rotation_field`) in its config; configs without it are unaffected.
    """

    rope_type: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("apply")
        if own is not None and not getattr(own, "_lc_fp32_rotation", False):
            cls.apply = with_fp32_rotation(own)  # type: ignore[method-assign]

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

    @with_fp32_rotation
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
