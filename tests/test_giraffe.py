"""Giraffe's two RoPE bases — truncated-basis and power-scaling (Pal et al. 2023, arXiv:2308.10882) —
against the paper's formulas at chosen points, at their identity points, on Gemma 3's layer types, through
undo, and through the conformance kit."""

from __future__ import annotations

import copy
import json
import math
from types import SimpleNamespace

import pytest
import torch

from longctx.errors import ParameterError
from longctx.plugins.giraffe import power_inv_freq, truncate_basis, truncated_inv_freq, truncation_cutoffs
from longctx.runtime import compose
from longctx.testing import random_ids as _ids

ARCHS = ["llama", "qwen2", "gemma3"]
WINDOW = 256  # max_position_embeddings of every tiny model


@torch.no_grad()
def _logits(model, ids):
    return model(ids).logits


def _config(dim: int, window: int = 2048, **rope) -> SimpleNamespace:
    """A minimal config for the init functions: one head of ``dim`` rotary dimensions."""
    return SimpleNamespace(
        head_dim=dim, hidden_size=dim, num_attention_heads=1, max_position_embeddings=window, rope_parameters=rope
    )


def _theta(base: float, dim: int) -> torch.Tensor:
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))


def _rotary(model):
    return model.model.rotary_emb


# -- the formulas ------------------------------------------------------------------------------------------


def test_truncation_bands_at_the_cutoffs():
    a, b, rho = 0.01, 0.1, 0.004
    eps = 1e-4
    theta = torch.tensor(
        [b * (1 + eps), b, b * (1 - eps), math.sqrt(a * b), a * (1 + eps), a, a * (1 - eps)], dtype=torch.float64
    )
    got = truncate_basis(theta, a, b, rho)
    want = torch.tensor([theta[0].item(), b, rho, rho, rho, 0.0, 0.0], dtype=torch.float64)
    assert torch.equal(got, want)


def test_truncated_basis_on_a_llama_head():
    # Llama: d = 128, base 10,000, window L = 2048; cut-offs chosen between two frequencies each
    dim, base = 128, 10000.0
    theta = _theta(base, dim)
    b = math.sqrt(theta[10].item() * theta[11].item())  # θ_0..θ_10 kept
    a = math.sqrt(theta[40].item() * theta[41].item())  # θ_41.. zeroed
    rho = 1e-5
    inv, att = truncated_inv_freq(_config(dim, rope_theta=base, a=a, b=b, rho=rho))
    assert att == 1.0
    assert torch.allclose(inv[:11].double(), theta[:11], rtol=1e-6)
    assert torch.all(inv[11:41] == torch.tensor(rho, dtype=inv.dtype))
    assert torch.all(inv[41:] == 0)


def test_truncated_basis_defaults_follow_giraffes_code():
    # unset: b = 2π/L, a = b/8, ρ = a/2 (Giraffe's truncate_frequency with T = L)
    a, b, rho = truncation_cutoffs(2048)
    assert b == pytest.approx(2 * math.pi / 2048) and a == pytest.approx(b / 8) and rho == pytest.approx(a / 2)
    assert truncation_cutoffs(2048, b=0.5) == pytest.approx((0.5 / 8, 0.5, 0.5 / 16))
    # original_max_position_embeddings, where present, is the window
    dim = 128
    theta = _theta(10000.0, dim)
    inv, _ = truncated_inv_freq(_config(dim, window=8192, rope_theta=10000.0, original_max_position_embeddings=2048))
    assert torch.allclose(inv.double(), truncate_basis(theta, a, b, rho), rtol=1e-6, atol=0)
    # every band is populated on Llama at L = 2048
    assert (inv == 0).any() and (inv == torch.tensor(rho, dtype=inv.dtype)).any() and (inv.double() >= b).any()


def test_power_scaling_values():
    dim, base, k = 128, 10000.0, 2.0
    theta = _theta(base, dim)
    inv, att = power_inv_freq(_config(dim, rope_theta=base, k=k))
    assert att == 1.0
    assert inv[0].item() == pytest.approx(1.0, rel=1e-7)  # i = 0: unchanged
    assert inv[32].item() == pytest.approx(theta[32].item() * 0.5**k, rel=1e-6)  # 2i/d = 1/2
    assert inv[48].item() == pytest.approx(theta[48].item() * 0.25**k, rel=1e-6)  # 2i/d = 3/4
    assert inv[63].item() == pytest.approx(theta[63].item() * (1 / 64) ** k, rel=1e-6)
    i = torch.arange(64, dtype=torch.float64)
    assert torch.allclose(inv.double(), theta * (1 - 2 * i / dim) ** k, rtol=1e-6)
    assert torch.all(inv[1:] < theta[1:].float())
    inv0, _ = power_inv_freq(_config(dim, rope_theta=base, k=0.0))
    assert torch.allclose(inv0.double(), theta, rtol=1e-6)


def test_parameter_errors(tiny_llama):
    with pytest.raises(ParameterError, match="a must be <= b"):
        compose(tiny_llama, "positional=truncated-basis:a=0.5,b=0.1")
    with pytest.raises(ParameterError, match="a must be <= b"):
        compose(tiny_llama, "positional=truncated-basis:a=0.5")  # b defaults to 2π/256 ≈ 0.025
    with pytest.raises(ParameterError, match="k must be >= 0"):
        compose(tiny_llama, "positional=power-scaling:k=-1")
    with pytest.raises(ParameterError, match="rho must be >= 0"):
        compose(tiny_llama, "positional=truncated-basis:rho=-1")
    with pytest.raises(ParameterError, match="window_factor"):
        compose(tiny_llama, "positional=power-scaling:window_factor=0.5")


# -- on the models -----------------------------------------------------------------------------------------

IDENTITY = {"truncated-basis": "truncated-basis:a=0,b=0", "power-scaling": "power-scaling:k=0"}
CHANGING = {"truncated-basis": "truncated-basis:layers=all", "power-scaling": "power-scaling:k=2,layers=all"}


@pytest.mark.parametrize("technique", list(IDENTITY))
@pytest.mark.parametrize("arch", ARCHS)
def test_identity_points_reproduce_untouched_logits(tiny, arch, technique):
    lm = tiny(arch)
    ids = _ids(200)
    before = _logits(lm.model, ids)
    with compose(lm, f"positional={IDENTITY[technique]}"):
        assert torch.allclose(_logits(lm.model, ids), before, atol=1e-6, rtol=0)


@pytest.mark.parametrize("technique", list(IDENTITY))
def test_gemma3_sliding_layers_untouched_by_default(tiny_gemma3, technique):
    rot = _rotary(tiny_gemma3.model)
    full, sliding = rot.full_attention_inv_freq.clone(), rot.sliding_attention_inv_freq.clone()
    spec = "truncated-basis" if technique == "truncated-basis" else "power-scaling:k=2"
    with compose(tiny_gemma3, f"positional={spec}") as pipe:
        new = _rotary(tiny_gemma3.model)
        assert torch.equal(new.sliding_attention_inv_freq, sliding)
        assert not torch.equal(new.full_attention_inv_freq, full)
        assert set(pipe.describe()["changes"]["positional"]["rope_parameters"]) == {"full_attention"}


def test_truncated_basis_on_the_tiny_llama(tiny_llama):
    theta = _rotary(tiny_llama.model).inv_freq.clone().double()
    a, b, rho = truncation_cutoffs(WINDOW)
    with compose(tiny_llama, "positional=truncated-basis") as pipe:
        inv = _rotary(tiny_llama.model).inv_freq.double()
        assert torch.allclose(inv, truncate_basis(theta, a, b, rho), rtol=1e-6, atol=0)
        assert (inv == 0).any()
        cutoffs = pipe.describe()["changes"]["positional"]["cutoffs"]["all"]
        assert cutoffs == pytest.approx({"a": a, "b": b, "rho": rho})
        json.dumps(pipe.describe())


@pytest.mark.parametrize(
    ("spec", "window"),
    [
        ("truncated-basis", WINDOW),
        ("power-scaling", WINDOW),
        ("truncated-basis:window_factor=4", 4 * WINDOW),
        ("power-scaling:window_factor=8", 8 * WINDOW),
    ],
)
def test_max_context(tiny_llama, spec, window):
    with compose(tiny_llama, f"positional={spec}") as pipe:
        assert pipe.max_context == window


@pytest.mark.parametrize("technique", list(CHANGING))
@pytest.mark.parametrize("arch", ARCHS)
def test_undo_restores(tiny, arch, technique):
    lm = tiny(arch)
    ids = _ids(300)
    before = _logits(lm.model, ids)
    rotary, rope_parameters = _rotary(lm.model), copy.deepcopy(lm.model.config.rope_parameters)
    with compose(lm, f"positional={CHANGING[technique]}"):
        assert not torch.allclose(_logits(lm.model, ids), before, atol=1e-4)
    assert _rotary(lm.model) is rotary
    assert lm.model.config.rope_parameters == rope_parameters
    assert torch.equal(_logits(lm.model, ids), before)


@pytest.mark.parametrize("technique", list(CHANGING))
@pytest.mark.parametrize("arch", ARCHS)
def test_finite_logits_beyond_the_window(tiny, arch, technique):
    lm = tiny(arch)
    with compose(lm, f"positional={CHANGING[technique]},window_factor=4"):
        out = _logits(lm.model, _ids(3 * WINDOW))
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("technique", list(IDENTITY))
def test_conformance_kit_passes(technique):
    from longctx.contrib.conformance import check_technique

    report = check_technique("positional", technique)
    assert report.ok, str(report)
    assert not report.failed
