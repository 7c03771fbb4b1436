"""The length-dependent rotary module CLEX installs: the model's own rotary class, with ``θ(t)`` per call.

Chen et al. 2023, arXiv:2310.16450. The module is a fresh rotary module of the model's class (built by
:func:`longctx.rope.apply_rope` like every scaled RoPE method) whose class is swapped for a subclass that
mixes in :class:`CLEXRotaryMixin`: on each call it picks the scale factor ``t`` from the sequence length,
integrates the ODE (cached per ``t`` while no gradient is needed), and lets the model's own ``forward``
rotate with ``θ(t)`` in place of ``θ(1)`` — so attention scaling, dtype handling and per-layer-type RoPE
stay transformers' own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from longctx.plugins.clex.dynamics import CLEXDynamics
from longctx.rope import default_inv_freq

SCALE_MODES = ("bucket", "continuous")
_CLASSES: dict[type, type] = {}


def scale_for_length(length: int, window: int, max_factor: float, mode: str = "bucket") -> float:
    """The scale factor ``t`` for a sequence of ``length`` tokens over a training window ``L`` (``window``).

    ``continuous`` (the paper): ``t = max(1, L'/L)``; ``bucket`` (the authors' code): ``t = ⌈L'/L⌉``, so
    the frequencies change only at multiples of ``L``. Both are capped at ``max_factor`` (``t_max``): longer
    inputs keep ``θ(t_max)``.
    """
    if mode == "bucket":
        t = float(max(1, math.ceil(length / window)))
    elif mode == "continuous":
        t = max(1.0, length / window)
    else:
        raise ValueError(f"unknown scale mode {mode!r}; choose one of {', '.join(SCALE_MODES)}")
    return min(t, float(max_factor))


def _buffer_name(layer_type: str | None) -> str:
    return "inv_freq" if layer_type is None else f"{layer_type}_inv_freq"


class CLEXRotaryMixin:
    """Turns a transformers rotary module into CLEX's: ``θ(t)`` with ``t`` from the current length.

    Attributes set by :func:`make_clex_rotary`: ``clex`` (the :class:`CLEXDynamics`, a submodule),
    ``clex_targets`` (layer types using CLEX; ``None`` = the model's only RoPE), ``clex_window`` (``L``),
    ``clex_max_factor`` (``t_max``), ``clex_mode``, ``clex_step``, ``clex_method``, ``clex_t`` (forced
    ``t``, for training), ``clex_last`` (``t`` of the last call per layer type) and two caches.
    """

    clex: CLEXDynamics

    def clex_scale(self, position_ids: torch.Tensor) -> float:
        """``t`` for a call with ``position_ids``: forced (training) or from ``max(position_ids) + 1``."""
        if self.clex_t is not None:
            return float(self.clex_t)
        length = math.floor(float(position_ids.max())) + 1
        return scale_for_length(length, self.clex_window, self.clex_max_factor, self.clex_mode)

    def clex_theta1(self, layer_type: str | None = None, device: Any = None) -> torch.Tensor:
        """``θ(1)`` of ``layer_type`` in float32, recomputed from the config (so a model cast to bf16 does
        not round the ODE's initial condition), cached per device."""
        key = (layer_type, str(device))
        hit = self.clex_theta1_cache.get(key)
        if hit is None:
            hit = default_inv_freq(self.config, layer_type, device).to(torch.float32)
            self.clex_theta1_cache[key] = hit
        return hit

    def clex_frequencies(self, t: float, layer_type: str | None = None, device: Any = None) -> torch.Tensor:
        """``θ(t)`` of ``layer_type``; cached per ``t`` unless a gradient must flow to the ODE parameters."""
        theta1 = self.clex_theta1(layer_type, device if device is not None else self.clex.ode_up_proj.device)
        if t == 1.0:
            return theta1
        params = list(self.clex.parameters())
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in params)
        if needs_grad:
            return self.clex.frequencies(theta1, [t], step=self.clex_step, method=self.clex_method)[0]
        key = (layer_type, t, str(theta1.device), tuple(p._version for p in params), tuple(id(p) for p in params))
        hit = self.clex_cache.get(key)
        if hit is None:
            with torch.no_grad():
                hit = self.clex.frequencies(theta1, [t], step=self.clex_step, method=self.clex_method)[0]
            self.clex_cache = {k: v for k, v in self.clex_cache.items() if k[3:] == key[3:]}
            self.clex_cache[key] = hit
        return hit

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        layer_type = kwargs.get("layer_type", args[0] if args else None)
        if layer_type not in self.clex_targets:
            return super().forward(x, position_ids, *args, **kwargs)  # type: ignore[misc]
        t = self.clex_scale(position_ids)
        self.clex_last[layer_type] = t
        if t == 1.0:  # θ(1): the module's own frequencies, untouched (bit-identical to the model's)
            return super().forward(x, position_ids, *args, **kwargs)  # type: ignore[misc]
        name = _buffer_name(layer_type)
        buffers = self._buffers  # type: ignore[attr-defined]
        saved = buffers[name]
        buffers[name] = self.clex_frequencies(t, layer_type, saved.device)
        try:
            return super().forward(x, position_ids, *args, **kwargs)  # type: ignore[misc]
        finally:
            buffers[name] = saved


def make_clex_rotary(
    module: nn.Module,
    dynamics: CLEXDynamics,
    *,
    targets: list[str | None],
    window: int,
    max_factor: float,
    mode: str,
    step: float,
    method: str,
) -> nn.Module:
    """Turn ``module`` (a fresh rotary module of the model's class, whose frequencies are ``θ(1)``) into a
    CLEX rotary module in place, sharing ``dynamics``; returns it."""
    base = type(module)
    cls = _CLASSES.get(base)
    if cls is None:
        cls = type(f"CLEX{base.__name__}", (CLEXRotaryMixin, base), {"__module__": __name__})
        _CLASSES[base] = cls
    device = next((b.device for b in module.buffers()), None)
    module.__class__ = cls
    module.clex = dynamics.to(device) if device is not None else dynamics
    module.clex_targets = list(targets)
    module.clex_window = int(window)
    module.clex_max_factor = float(max_factor)
    module.clex_mode = mode
    module.clex_step = float(step)
    module.clex_method = method
    module.clex_t = None
    module.clex_last = {}
    module.clex_cache = {}
    module.clex_theta1_cache = {}
    return module


def clex_rotaries(model: nn.Module) -> list[nn.Module]:
    """The CLEX rotary modules installed in ``model``."""
    return [m for m in model.modules() if isinstance(m, CLEXRotaryMixin)]


@contextmanager
def forced_scale(model: nn.Module, t: float) -> Iterator[list[nn.Module]]:
    """Every CLEX rotary module of ``model`` uses scale ``t`` (whatever the length) inside the block."""
    mods = clex_rotaries(model)
    saved = [m.clex_t for m in mods]
    for m in mods:
        m.clex_t = float(t)
    try:
        yield mods
    finally:
        for m, s in zip(mods, saved):
            m.clex_t = s
