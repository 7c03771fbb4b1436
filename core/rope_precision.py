"""RoPE precision diagnostics: how far attention logits drift from relative-position invariance in bf16.

Wang, Liu, Du, Zhu, Du, Kawaguchi & Pang 2024, "When Precision Meets Position: BFloat16 Breaks Down RoPE
in Long-Context Training", arXiv:2411.13476. RoPE (Su et al. 2021, arXiv:2104.09864) is meant to be a
*relative* position encoding: rotating ``q`` to position ``m`` and ``k`` to position ``n`` gives a logit
that depends on ``m − n`` only. Wang et al. observe that with BFloat16 this property breaks — the logits
of the same pair of tokens change when both are moved to other absolute positions —, that the deviation
grows with the context length, and that the first token (position 0) contributes most to it.

What is measured. This module checks that property on the rotary alone, without a model. For seeded random
vectors ``q`` and ``k`` (``N(0, 1)`` entries rounded to the low-precision dtype, so every mode starts from
vectors a bf16 model could hold), a relative distance ``Δ`` and a key position ``p``, the logit

    L(p) = ⟨ R_{p+Δ} q , R_p k ⟩

is computed with the rotation done as transformers' rotary module and ``apply_rotary_pos_emb`` do it
(angles ``p·θ_i`` in float32; ``cos``, ``sin`` in float32 times the attention scaling):

* ``low`` (shown as ``bf16``): the model runs in bf16, so cos and sin are cast to bf16 and every product
  and the sum of ``q·cos + rotate_half(q)·sin`` are rounded to bf16;
* ``low+fp32-rotation`` (``bf16+fp32-rotation``): the fix of ``fp32_rotation=true``
  (:func:`longctx.rope.install_fp32_rotation`): float32 cos and sin, the rotation in float32 and only the
  rotated vector cast to bf16;
* ``fp32``: a float32 model: everything in float32, nothing cast.

The dot product of the two rotated vectors is taken in float64, so only the rotation's error is measured
(attention kernels accumulate the logit in float32 or better; their final rounding does not depend on the
position). In exact arithmetic ``L(p) = L(0)`` for every ``p``; the **drift** is ``|L(p) − L(0)|``, the
deviation from the value with the key at position 0, computed in the same mode. At position 0 the rotation
is the identity (cos 1, sin 0 are exact in every dtype), so the reference key carries no rounding at all
— the first token is the one every other position is compared against, and bf16 treats it differently
from all others. Positions are grouped in buckets (``[1, 1k)``, ``[1k, 2k)``, …); a bucket reports the
maximum and the mean drift over its positions, the distances and the samples, next to the RMS of the
reference logits ``L(0)`` for scale.

What fp32 is not: exact. float32 angles ``p·θ_i`` are rounded to about ``p·θ_i·2⁻²⁴``, so the fp32 drift
grows linearly with ``p`` too, from far below bf16's (which jumps to its level at ``p = 1``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import attrs
import torch

from longctx.capabilities import rotary_modules
from longctx.errors import InputError
from longctx.rope import layer_inv_freq, rotate_half

#: The rotation modes compared (see the module docstring).
MODES = ("low", "low+fp32-rotation", "fp32")
#: Bucket edges of key positions: ``[1, 16)``, ``[16, 256)``, ``[256, 1k)``, ``[1k, 2k)``, … ``[64k, 128k)``.
DEFAULT_EDGES = (1, 16, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
#: Relative distances ``Δ = m − n`` of the query past the key.
DEFAULT_DISTANCES = (1, 16, 256)


def mode_label(mode: str, dtype: torch.dtype = torch.bfloat16) -> str:
    """``low`` → ``bf16``, ``low+fp32-rotation`` → ``bf16+fp32-rotation`` (by ``dtype``), ``fp32`` as is."""
    name = str(dtype).removeprefix("torch.").replace("bfloat16", "bf16").replace("float16", "fp16")
    return mode.replace("low", name)


def default_rope_inv_freq(head_dim: int, base: float) -> torch.Tensor:
    """``θ_i = base^{-2i/d}`` for ``i ∈ [0, d/2)``, computed as transformers' default RoPE does (float32)."""
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(dtype=torch.float) / head_dim))


def rope_cos_sin(
    positions: torch.Tensor, inv_freq: torch.Tensor, attention_scaling: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 ``cos``, ``sin`` of shape ``(*positions.shape, 2·len(inv_freq))``, exactly as a transformers
    rotary module computes them before casting: ``p.float() * θ``, duplicated halves, times the scaling."""
    freqs = positions[..., None].float() * inv_freq.to(device=positions.device, dtype=torch.float)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * attention_scaling, emb.sin() * attention_scaling


def rotate(
    x: torch.Tensor,
    positions: torch.Tensor,
    inv_freq: torch.Tensor,
    mode: str,
    *,
    dtype: torch.dtype = torch.bfloat16,
    attention_scaling: float = 1.0,
) -> torch.Tensor:
    """RoPE ``x·cos + rotate_half(x)·sin`` at ``positions`` (broadcasting against ``x[..., 0]``) in ``mode``.

    ``x`` is taken in ``dtype`` (``low`` and ``low+fp32-rotation``) or float32 (``fp32``); the result has
    that dtype. Only the first ``2·len(inv_freq)`` dimensions rotate (partial rotary).
    """
    if mode not in MODES:
        raise InputError(f"unknown rotation mode {mode!r}; choose one of {', '.join(MODES)}")
    cos, sin = rope_cos_sin(positions, inv_freq, attention_scaling)
    rot = cos.shape[-1]
    x = x.to(torch.float32 if mode == "fp32" else dtype)
    xr, xp = x[..., :rot], x[..., rot:]
    if mode == "low":  # the model's own path in a bf16 model: cos/sin cast, every op rounded to bf16
        out = (xr * cos.to(dtype)) + (rotate_half(xr) * sin.to(dtype))
    elif mode == "low+fp32-rotation":  # bf16 x times float32 cos/sin promotes to float32; cast the result
        out = ((xr * cos) + (rotate_half(xr) * sin)).to(dtype)
    else:
        out = (xr * cos) + (rotate_half(xr) * sin)
    return torch.cat((out, xp), dim=-1) if xp.shape[-1] else out


def _rotary_of(
    rotary: Any, layer_type: str | None, attention_scaling: float | None
) -> tuple[torch.Tensor, float, str | None]:
    """``(inv_freq, attention scaling, layer type)`` of a rotary module, or of a model's first one."""
    module = rotary
    if not hasattr(module, "rope_type"):
        found = rotary_modules(module)
        if not found:
            raise InputError(f"{type(rotary).__name__} has no rotary embedding module")
        module = found[0][1]
    if layer_type is None and not hasattr(module, "inv_freq"):
        layer_type = "full_attention" if hasattr(module, "full_attention_inv_freq") else None
        if layer_type is None:
            raise InputError(f"{type(module).__name__} holds one RoPE per layer type: pass layer_type")
    inv_freq = layer_inv_freq(module, layer_type)
    if attention_scaling is None:
        name = f"{layer_type}_attention_scaling" if layer_type else "attention_scaling"
        attention_scaling = float(getattr(module, name, 1.0))
    return inv_freq.detach().to(device="cpu", dtype=torch.float32), attention_scaling, layer_type


@attrs.frozen
class DriftBucket:
    """The drift ``|L(p) − L(0)|`` over the key positions ``lo ≤ p < hi`` of one mode."""

    lo: int
    hi: int
    positions: int
    max_abs: float
    mean_abs: float


@attrs.frozen
class RopeDriftReport:
    """The drift per mode and bucket; see :func:`relative_drift` for what each figure is."""

    dtype: str
    head_dim: int
    rotary_dims: int
    attention_scaling: float
    distances: tuple[int, ...]
    samples: int
    seed: int
    #: RMS of the exact logits ``L(0)`` (float64) over samples and distances: the scale of the drift.
    logit_rms: float
    #: mode -> one :class:`DriftBucket` per bucket.
    drift: dict[str, tuple[DriftBucket, ...]]
    description: str = ""

    def label(self, mode: str) -> str:
        return mode_label(mode, getattr(torch, self.dtype))

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["drift"] = {self.label(m): [attrs.asdict(b) for b in rows] for m, rows in self.drift.items()}
        return d

    def table(self) -> str:
        """A Markdown table: one row per bucket, mean and max drift per mode."""
        modes = list(self.drift)
        head = "| key positions | " + " | ".join(f"{self.label(m)} mean | {self.label(m)} max" for m in modes) + " |"
        sep = "|---|" + "---|---|" * len(modes)
        rows = []
        for i, b in enumerate(self.drift[modes[0]]):
            cells = []
            for m in modes:
                r = self.drift[m][i]
                cells += [f"{r.mean_abs:.2e}", f"{r.max_abs:.2e}"]
            rows.append(f"| {_k(b.lo)}–{_k(b.hi)} | " + " | ".join(cells) + " |")
        return "\n".join([head, sep, *rows])


def _k(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else str(n)


def bucket_positions(lo: int, hi: int, per_bucket: int) -> torch.Tensor:
    """Up to ``per_bucket`` key positions spread evenly over ``[lo, hi)``, both ends included."""
    if hi <= lo:
        raise InputError(f"empty position bucket [{lo}, {hi})")
    return torch.linspace(lo, hi - 1, min(per_bucket, hi - lo), dtype=torch.float64).round().long().unique()


@torch.no_grad()
def relative_drift(
    rotary: Any = None,
    *,
    inv_freq: torch.Tensor | None = None,
    head_dim: int | None = None,
    base: float | None = None,
    layer_type: str | None = None,
    attention_scaling: float | None = None,
    edges: Sequence[int] = DEFAULT_EDGES,
    per_bucket: int = 64,
    distances: Sequence[int] = DEFAULT_DISTANCES,
    samples: int = 16,
    seed: int = 0,
    q: torch.Tensor | None = None,
    k: torch.Tensor | None = None,
    dtype: torch.dtype = torch.bfloat16,
    modes: Sequence[str] = MODES,
) -> RopeDriftReport:
    """Measure the drift ``|L(p) − L(0)|`` of ``L(p) = ⟨R_{p+Δ} q, R_p k⟩`` per bucket of key positions.

    The rotary configuration comes from ``rotary`` (a model's rotary module, or a model: its first one;
    ``layer_type`` picks Gemma 3's per-layer-type RoPE, full attention by default), or from ``inv_freq``,
    or from ``head_dim`` and ``base`` (default RoPE). ``head_dim`` defaults to the rotary dimensions.

    :param edges: bucket edges of the key position ``p``; buckets are ``[edges[i], edges[i+1])``.
    :param per_bucket: key positions per bucket, spread evenly (both ends included).
    :param distances: the relative distances ``Δ`` (the query sits at ``p + Δ``).
    :param samples: random ``(q, k)`` pairs, drawn from ``seed``.
    :param q: instead, given query vectors ``(samples, head_dim)`` (e.g. a model's), with ``k`` alike; they
        are rounded to ``dtype`` first, as the random ones are.
    :param dtype: the low-precision activation dtype (bf16 or fp16).
    """
    if dtype not in (torch.bfloat16, torch.float16):
        raise InputError(f"dtype must be torch.bfloat16 or torch.float16, got {dtype}")
    if rotary is not None:
        inv_freq, scaling, layer_type = _rotary_of(rotary, layer_type, attention_scaling)
        desc = f"{type(rotary).__name__}" + (f" ({layer_type})" if layer_type else "")
    elif inv_freq is not None:
        inv_freq, scaling = inv_freq.detach().to(device="cpu", dtype=torch.float32), attention_scaling or 1.0
        desc = f"inv_freq of {2 * inv_freq.numel()} rotary dimensions"
    elif head_dim is not None and base is not None:
        inv_freq, scaling = default_rope_inv_freq(head_dim, float(base)), attention_scaling or 1.0
        desc = f"default RoPE, θ = {base:g}, head_dim {head_dim}"
    else:
        raise InputError("relative_drift needs a rotary module, inv_freq, or head_dim and base")
    rot = 2 * inv_freq.numel()
    d = head_dim or (q.shape[-1] if q is not None else rot)
    if d < rot:
        raise InputError(f"head_dim {d} is smaller than the {rot} rotary dimensions")
    if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)) or edges[0] < 0:
        raise InputError(f"edges must be increasing non-negative positions, got {tuple(edges)}")
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise InputError(f"unknown rotation mode {bad[0]!r}; choose among {', '.join(MODES)}")

    if (q is None) != (k is None):
        raise InputError("pass both q and k, or neither (then they are drawn from seed)")
    if q is None or k is None:
        g = torch.Generator().manual_seed(seed)
        q, k = torch.randn(samples, d, generator=g), torch.randn(samples, d, generator=g)
    elif q.dim() != 2 or q.shape != k.shape or q.shape[-1] != d:
        raise InputError(f"q and k must both be (samples, {d}), got {tuple(q.shape)} and {tuple(k.shape)}")
    samples = q.shape[0]
    q = q.detach().cpu().to(dtype)[:, None, :]  # (S, 1, d): one vector per sample, rotated to each position
    k = k.detach().cpu().to(dtype)[:, None, :]
    buckets = [bucket_positions(lo, hi, per_bucket) for lo, hi in itertools.pairwise(edges)]
    pos = torch.cat(buckets)
    zero = torch.zeros(1, dtype=torch.long)

    def logits(mode: str, p: torch.Tensor, delta: int) -> torch.Tensor:
        kw = {"dtype": dtype, "attention_scaling": scaling}
        qr = rotate(q, p + delta, inv_freq, mode, **kw).double()
        kr = rotate(k, p, inv_freq, mode, **kw).double()
        return (qr * kr).sum(-1)  # (S, len(p))

    drift: dict[str, tuple[DriftBucket, ...]] = {}
    for mode in modes:
        per_delta = []
        for delta in distances:
            ref = logits(mode, zero, delta)  # (S, 1): key at position 0
            per_delta.append((logits(mode, pos, delta) - ref).abs())
        dev = torch.stack(per_delta)  # (Δ, S, positions)
        rows, start = [], 0
        for (lo, hi), b in zip(itertools.pairwise(edges), buckets, strict=True):
            chunk = dev[..., start : start + b.numel()]
            start += b.numel()
            rows.append(DriftBucket(lo, hi, b.numel(), float(chunk.max()), float(chunk.mean())))
        drift[mode] = tuple(rows)
    # the scale: L(0) = ⟨R_Δ q, k⟩ in float64 (the key at position 0 is not rotated)
    exact = []
    for delta in distances:
        ang = float(delta) * inv_freq.double()
        cos, sin = torch.cat((ang, ang)).cos() * scaling, torch.cat((ang, ang)).sin() * scaling
        q64, k64 = q[:, 0].double(), k[:, 0].double()
        qr = torch.cat((q64[:, :rot] * cos + rotate_half(q64[:, :rot]) * sin, q64[:, rot:]), dim=-1)
        exact.append((qr * k64 * torch.cat((torch.full((rot,), scaling), torch.ones(d - rot))).double()).sum(-1))
    rms = float(torch.cat(exact).pow(2).mean().sqrt())
    return RopeDriftReport(
        dtype=str(dtype).removeprefix("torch."),
        head_dim=d,
        rotary_dims=rot,
        attention_scaling=scaling,
        distances=tuple(int(x) for x in distances),
        samples=samples,
        seed=seed,
        logit_rms=rms,
        drift=drift,
        description=desc,
    )
