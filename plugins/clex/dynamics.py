"""CLEX's neural ODE over the length scaling factor: the dynamics, our fixed-step integrators, weights I/O.

Chen, Li, Meng, Liang & Bing 2023, "CLEX: Continuous Length Extrapolation for Large Language Models",
arXiv:2310.16450 (§3.2–3.3); parameterisation and names as in the authors' ``CLEX/clex_layer.py``
(``ODELinear``, ``CLEXScalingRotaryEmbedding``) of DAMO-NLP-SG/CLEX, read to learn them, written anew.

The state is the log-frequency vector ``z(t) = log θ(t)`` (``d/2`` entries, ``d`` the rotary dimension),
with ``z(1) = log θ`` (the model's own inverse frequencies). Its dynamics is a one-hidden-layer network
plus the NTK-aware "time embedding" ``ξ_t``:

    α(t)     = 2t − 1
    log ξ_t  = −(2i/d)·ln b_ξ − (2i/(d−2))·ln α(t)          (NTK-aware frequencies at scale α)
    dz/dt    = σ((z + log ξ_t) · W_up) · W_down + d log ξ_t/dt,   d log ξ_t/dt = −2·(2i)/((d−2)·α(t))

with ``W_up ∈ R^{d/2 × λd}`` (``ode_up_proj``, Kaiming-uniform), ``W_down ∈ R^{λd × d/2}``
(``ode_down_proj``, zeros), ``σ`` tanh or SiLU, ``λ`` the ``param_factor``. The authors' code takes
``b_ξ = 10 000`` whatever the model's RoPE base (their last "fix" commit reverted passing the model's
θ base), so ``time_base`` defaults to it.

Untrained dynamics. ``W_down = 0`` leaves ``dz/dt = d log ξ_t/dt``, whose solution is known in closed
form: ``θ_i(t) = θ_i · (2t − 1)^{−2i/(d−2)}``, i.e. NTK-aware scaling with factor ``α = 2t − 1`` of the
model's own base (the ratio ``ξ_t/ξ_1`` does not depend on ``b_ξ``). This is what a fresh CLEX does.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from longctx.errors import ParameterError

#: The integration schemes of :func:`odeint`: classic RK4, RK4's 3/8 rule (what torchdiffeq's ``rk4``
#: fixed-grid solver, used by the authors, computes) and explicit Euler.
METHODS = ("rk4", "rk38", "euler")
ACTIVATIONS = ("tanh", "silu")
#: ``format`` metadata of the safetensors files :func:`save_clex_weights` writes.
WEIGHTS_FORMAT = "longctx-clex/1"
UP, DOWN = "ode_up_proj", "ode_down_proj"

OdeFn = Callable[[float, torch.Tensor], torch.Tensor]


# -- fixed-step integration ---------------------------------------------------------------------------


def _step(f: OdeFn, t: float, y: torch.Tensor, h: float, method: str) -> torch.Tensor:
    """One step of size ``h`` from ``(t, y)``."""
    if method == "euler":
        return y + h * f(t, y)
    if method == "rk4":
        k1 = f(t, y)
        k2 = f(t + h / 2, y + (h / 2) * k1)
        k3 = f(t + h / 2, y + (h / 2) * k2)
        k4 = f(t + h, y + h * k3)
        return y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)
    if method == "rk38":
        k1 = f(t, y)
        k2 = f(t + h / 3, y + (h / 3) * k1)
        k3 = f(t + 2 * h / 3, y + h * (k2 - k1 / 3))
        k4 = f(t + h, y + h * (k1 - k2 + k3))
        return y + (h / 8) * (k1 + 3 * (k2 + k3) + k4)
    raise ParameterError(f"unknown ODE method {method!r}; choose one of {', '.join(METHODS)}")


def odeint(f: OdeFn, y0: torch.Tensor, times: Sequence[float], *, step: float, method: str = "rk4") -> torch.Tensor:
    """Solve ``dy/dt = f(t, y)``, ``y(times[0]) = y0``, with a fixed step; ``y`` at every time of ``times``.

    Between consecutive times ``a < b`` it takes ``n = ⌈(b − a)/step⌉`` equal steps of ``(b − a)/n`` (never
    longer than ``step``), so every requested time is hit exactly. Differentiable (plain autograd through
    the steps, as the authors backpropagate through ``torchdiffeq.odeint``). Returns ``(len(times), *y0.shape)``.
    """
    if step <= 0:
        raise ParameterError(f"the ODE step must be > 0, got {step}")
    if method not in METHODS:
        raise ParameterError(f"unknown ODE method {method!r}; choose one of {', '.join(METHODS)}")
    times = [float(t) for t in times]
    if not times:
        raise ValueError("odeint needs at least one time")
    if any(b < a for a, b in itertools.pairwise(times)):
        raise ValueError(f"odeint needs ascending times, got {times}")
    out = [y0]
    y = y0
    for a, b in itertools.pairwise(times):
        n = max(1, math.ceil((b - a) / step - 1e-9)) if b > a else 0
        h = (b - a) / n if n else 0.0
        for k in range(n):
            y = _step(f, a + k * h, y, h, method)
        out.append(y)
    return torch.stack(out)


# -- the dynamics ---------------------------------------------------------------------------------------


class CLEXDynamics(nn.Module):
    """``dz/dt = g(z, t)`` for ``z = log θ(t)``: CLEX's up/down projection plus the NTK time embedding.

    :param dim: the rotary dimension ``d`` (``d/2`` frequencies); at least 4.
    :param hidden: width of the hidden layer (``λ·d``); default ``param_factor · dim``.
    :param act: ``tanh`` (the authors' default) or ``silu``.
    :param time_base: ``b_ξ`` of the time embedding (10 000 in the authors' code).
    :param seed: seeds the Kaiming-uniform init of ``W_up`` (``W_down`` starts at zero).
    """

    def __init__(
        self,
        dim: int,
        hidden: int | None = None,
        *,
        act: str = "tanh",
        time_base: float = 10000.0,
        param_factor: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if dim < 4 or dim % 2:
            raise ParameterError(f"clex needs an even rotary dimension of at least 4, got {dim}")
        if act not in ACTIVATIONS:
            raise ParameterError(f"act must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
        hidden = int(hidden if hidden is not None else param_factor * dim)
        self.dim = dim
        self.act = act
        self.time_base = float(time_base)
        self.ode_up_proj = nn.Parameter(torch.empty(dim // 2, hidden, dtype=torch.float32))
        self.ode_down_proj = nn.Parameter(torch.zeros(hidden, dim // 2, dtype=torch.float32))
        gen = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.ode_up_proj, a=math.sqrt(5), generator=gen)
        # 2i for i in [0, d/2): the exponents of the time embedding
        self.register_buffer("two_i", torch.arange(0, dim, 2, dtype=torch.float32), persistent=False)

    @property
    def hidden(self) -> int:
        return int(self.ode_up_proj.shape[1])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}, act={self.act}, time_base={self.time_base:g}"

    def time_embedding(self, t: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log ξ_t, d log ξ_t/dt)``: the NTK-aware log-frequencies at ``α = 2t − 1`` and their rate."""
        alpha = 2.0 * t - 1.0 if t >= 1 else 1.0
        d = self.dim
        log_xi = -(self.two_i / d) * math.log(self.time_base) - (self.two_i / (d - 2)) * math.log(alpha)
        rate = -2.0 * self.two_i / ((d - 2) * alpha)
        return log_xi, rate

    def forward(self, t: float, z: torch.Tensor) -> torch.Tensor:
        """``g(z, t) = σ((z + log ξ_t)·W_up)·W_down + d log ξ_t/dt``."""
        log_xi, rate = self.time_embedding(float(t))
        h = (z + log_xi.to(z)) @ self.ode_up_proj.to(z)
        h = torch.tanh(h) if self.act == "tanh" else nn.functional.silu(h)
        return h @ self.ode_down_proj.to(z) + rate.to(z)

    def frequencies(
        self, inv_freq: torch.Tensor, times: Sequence[float], *, step: float = 0.01, method: str = "rk4"
    ) -> torch.Tensor:
        """``θ(t)`` for each ``t ≥ 1`` of ``times`` (ascending), from ``θ(1) = inv_freq``: ``(len(times), d/2)``.

        ``t = 1`` gives ``inv_freq`` itself, bit for bit (no ``exp(log θ)`` round trip), as in the authors'
        code. Computed in float32 (as the authors), or float64 when the module was made ``.double()``.
        """
        times = [float(t) for t in times]
        if any(t < 1 for t in times):
            raise ValueError(f"CLEX scale factors are ≥ 1, got {times}")
        if inv_freq.shape[-1] != self.dim // 2:
            raise ParameterError(
                f"clex: the dynamics were made for a rotary dimension of {self.dim} ({self.dim // 2} frequencies), "
                f"the model's layer has {inv_freq.shape[-1]} frequencies"
            )
        dtype = torch.float64 if self.ode_up_proj.dtype == torch.float64 else torch.float32
        theta1 = inv_freq.to(self.ode_up_proj.device, dtype)
        grid = [1.0, *times] if times[0] > 1 else times
        z = odeint(self, theta1.log(), grid, step=step, method=method)
        z = z[1:] if times[0] > 1 else z
        out = torch.exp(z)
        ones = torch.tensor([t == 1.0 for t in times], device=out.device)
        return torch.where(ones[:, None], theta1.expand_as(out), out)


def untrained_frequencies(inv_freq: torch.Tensor, t: float) -> torch.Tensor:
    """The closed-form ``θ(t)`` of the untrained dynamics (``W_down = 0``): ``θ_i · (2t − 1)^{−2i/(d−2)}``."""
    d = 2 * inv_freq.shape[-1]
    two_i = torch.arange(0, d, 2, dtype=torch.float64, device=inv_freq.device)
    return (inv_freq.to(torch.float64) * (2.0 * t - 1.0) ** (-two_i / (d - 2))).to(inv_freq.dtype)


# -- weights ----------------------------------------------------------------------------------------------


def save_clex_weights(path: str | Path, dynamics: CLEXDynamics, *, metadata: dict[str, str] | None = None) -> Path:
    """Write the learned ``ode_up_proj`` / ``ode_down_proj`` (float32) to a safetensors file, with the
    settings needed to use them again (``act``, ``time_base``, ``rotary_dim``) as metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = {
        "format": WEIGHTS_FORMAT,
        "act": dynamics.act,
        "time_base": repr(dynamics.time_base),
        "rotary_dim": str(dynamics.dim),
        **(metadata or {}),
    }
    tensors = {
        UP: dynamics.ode_up_proj.detach().to("cpu", torch.float32).contiguous(),
        DOWN: dynamics.ode_down_proj.detach().to("cpu", torch.float32).contiguous(),
    }
    save_file(tensors, str(path), metadata=meta)
    return path


def load_clex_weights(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, dict[str, str]]:
    """``(W_up, W_down, metadata)`` from a safetensors file.

    Accepts our files and any file holding exactly one tensor named ``…ode_up_proj`` and one
    ``…ode_down_proj`` — e.g. a safetensors shard of an authors' checkpoint, where they are
    ``model.clex_layer.proj_func.ode_up_proj`` / ``…ode_down_proj``; other tensors are ignored.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"clex: weights file {str(path)!r} does not exist")
    try:
        handle = safe_open(str(path), framework="pt")
    except Exception as e:
        raise ParameterError(f"clex: cannot read {str(path)!r} as safetensors ({type(e).__name__}: {e})") from None
    with handle as f:
        keys = list(f.keys())
        found = {}
        for want in (UP, DOWN):
            hits = [k for k in keys if k == want or k.endswith("." + want)]
            if len(hits) != 1:
                what = "no tensor" if not hits else f"{len(hits)} tensors ({', '.join(hits[:4])})"
                raise ParameterError(
                    f"clex: {str(path)!r} holds {what} named …{want}; it needs exactly one "
                    f"{UP} and one {DOWN} (as save_clex_weights writes, or model.clex_layer.proj_func.* "
                    "in the authors' checkpoints)"
                )
            found[want] = f.get_tensor(hits[0]).to(torch.float32)
        meta = dict(f.metadata() or {})
    up, down = found[UP], found[DOWN]
    if up.ndim != 2 or down.ndim != 2 or up.shape[1] != down.shape[0] or up.shape[0] != down.shape[1]:
        raise ParameterError(
            f"clex: {str(path)!r} has {UP} {tuple(up.shape)} and {DOWN} {tuple(down.shape)}; expected "
            "(d/2, h) and (h, d/2)"
        )
    return up, down, meta


def dynamics_from_weights(
    path: str | Path, *, dim: int, act: str, time_base: float
) -> tuple[CLEXDynamics, dict[str, str]]:
    """A :class:`CLEXDynamics` for rotary dimension ``dim`` holding the weights of ``path``.

    :raises ParameterError: when the file's shapes do not fit ``dim``, or its metadata names another
        activation or time base than the config's.
    """
    up, down, meta = load_clex_weights(path)
    if up.shape[0] != dim // 2:
        raise ParameterError(
            f"clex: the weights in {str(path)!r} are for {up.shape[0]} frequencies (rotary dimension "
            f"{2 * up.shape[0]}); this model's layers rotate {dim} dimensions"
        )
    if "act" in meta and meta["act"] != act:
        raise ParameterError(f"clex: {str(path)!r} was trained with act={meta['act']}; set act={meta['act']}")
    if "time_base" in meta and float(meta["time_base"]) != float(time_base):
        raise ParameterError(
            f"clex: {str(path)!r} was trained with time_base={meta['time_base']}; set time_base={meta['time_base']}"
        )
    dyn = CLEXDynamics(dim, up.shape[1], act=act, time_base=time_base)
    with torch.no_grad():
        dyn.ode_up_proj.copy_(up)
        dyn.ode_down_proj.copy_(down)
    return dyn, meta


def parameters_of(dynamics: Sequence[CLEXDynamics]) -> list[nn.Parameter]:
    """The distinct ODE parameters of ``dynamics`` (one module may serve several rotary modules)."""
    seen: dict[int, nn.Parameter] = {}
    for d in dynamics:
        for p in d.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def describe_weights(meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON-friendly part of a weights file's metadata."""
    return {str(k): str(v) for k, v in meta.items()}
