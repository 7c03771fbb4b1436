"""The RoPE scaling methods — dynamic-ntk, yarn, llama3, longrope, abf — against transformers' own
``ROPE_INIT_FUNCTIONS`` and models loaded with the equivalent ``rope_parameters``, against the papers'
formulas at chosen points, at their identity points, through undo, and through the conformance kit."""

from __future__ import annotations

import copy
import json
import math
from types import SimpleNamespace

import pytest
import torch
from transformers import ROPE_INIT_FUNCTIONS

from longctx.errors import IncompatibleModelError, ParameterError
from longctx.plugins.abf import abf_inv_freq
from longctx.plugins.dynamic_ntk import ROPE_TYPE as DYNAMIC_TYPE
from longctx.plugins.dynamic_ntk import dynamic_ntk_base, dynamic_ntk_inv_freq
from longctx.plugins.llama3 import llama3_inv_freq
from longctx.plugins.longrope import longrope_attention_factor, longrope_inv_freq
from longctx.plugins.yarn import correction_range, yarn_inv_freq, yarn_mscale
from longctx.rope import layer_inv_freq
from longctx.runtime import compose
from longctx.testing import random_ids as _ids


def supported(*args, **kwargs):
    """compose(), skipping where this transformers' ``dynamic_rope_update`` cannot serve a
    length-dependent method (the plugin refuses it clearly; transformers 5.0 on Gemma 3, for one)."""
    try:
        return compose(*args, **kwargs)
    except IncompatibleModelError as e:
        if "dynamic_rope_update" in str(e):
            pytest.skip(f"refused on this transformers: {e}")
        raise


ARCHS = ["llama", "qwen2", "gemma3"]
WINDOW = 256  # max_position_embeddings of every tiny model
SHORT = (1.0, 1.0, 1.1, 1.2, 1.5, 1.8, 2.0, 2.0)  # |D|/2 = 8 LongRoPE factors for the tiny models
LONG = (1.0, 1.2, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


@torch.no_grad()
def _logits(model, ids):
    return model(ids).logits


def _floats(xs) -> str:
    return ";".join(str(x) for x in xs)


#: method -> (our spec, transformers' rope_parameters for the same thing, our init function, theirs)
CASES = {
    "dynamic-ntk": (
        "dynamic-ntk:factor=2",
        {"rope_type": "dynamic", "factor": 2.0},
        dynamic_ntk_inv_freq,
        "dynamic",
    ),
    "yarn": (
        "yarn:factor=4",
        {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": WINDOW},
        yarn_inv_freq,
        "yarn",
    ),
    "yarn-tuned": (  # every parameter away from its default (truncate: see test_yarn_truncate_false…)
        "yarn:factor=8,beta_fast=16,beta_slow=2,original_max_position_embeddings=128,attention_factor=1.1",
        {
            "rope_type": "yarn",
            "factor": 8.0,
            "beta_fast": 16.0,
            "beta_slow": 2.0,
            "original_max_position_embeddings": 128,
            "attention_factor": 1.1,
        },
        yarn_inv_freq,
        "yarn",
    ),
    "llama3": (  # Llama 3.1's values; on the tiny models the bands fall inside the 16-dim head
        "llama3",
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        llama3_inv_freq,
        "llama3",
    ),
    "llama3-small-window": (
        "llama3:factor=4,low_freq_factor=1,high_freq_factor=8,original_max_position_embeddings=256",
        {
            "rope_type": "llama3",
            "factor": 4.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 8.0,
            "original_max_position_embeddings": 256,
        },
        llama3_inv_freq,
        "llama3",
    ),
    "longrope": (
        f"longrope:short_factor={_floats(SHORT)},long_factor={_floats(LONG)},factor=4",
        {
            "rope_type": "longrope",
            "short_factor": list(SHORT),
            "long_factor": list(LONG),
            "factor": 4.0,
            "original_max_position_embeddings": WINDOW,
        },
        longrope_inv_freq,
        "longrope",
    ),
}


def _reference(lm, rope_parameters):
    """A model of the same class and weights, loaded with transformers' own rope type (Gemma 3: nested
    per layer type, on the full-attention layers only)."""
    cfg = copy.deepcopy(lm.model.config)
    rp = copy.deepcopy(cfg.rope_parameters)
    if "full_attention" in rp:
        rp["full_attention"] = {**rp["full_attention"], **copy.deepcopy(rope_parameters)}
    else:
        rp = {**rp, **copy.deepcopy(rope_parameters)}
    cfg.rope_parameters = rp
    ref = type(lm.model)(cfg).eval()
    ref.load_state_dict(lm.model.state_dict())
    return ref


def _layer_type(lm):
    return "full_attention" if "full_attention" in lm.model.config.rope_parameters else None


def _rotary(model):
    return model.model.rotary_emb


def _attention_scaling(rot, layer_type):
    if layer_type is None:
        return rot.attention_scaling
    return getattr(rot, f"{layer_type}_attention_scaling")


# -- identical to transformers: frequencies, attention factor, logits -----------------------------------


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("arch", ARCHS)
def test_inv_freq_and_attention_factor_equal_transformers(tiny, arch, case):
    spec, tf_params, ours, theirs = CASES[case]
    lm = tiny(arch)
    ref = _reference(lm, tf_params)
    lt = _layer_type(lm)
    with supported(lm, f"positional={spec}"):
        rot = _rotary(lm.model)
        ref_rot = _rotary(ref)
        # the installed module, at construction
        assert torch.equal(layer_inv_freq(rot, lt), layer_inv_freq(ref_rot, lt))
        assert _attention_scaling(rot, lt) == _attention_scaling(ref_rot, lt)
        # the init functions at several lengths: inside, at and beyond the (original) window
        for seq_len in (None, 1, 100, WINDOW, WINDOW + 1, 300, 1000, torch.tensor(700)):
            inv, att = ours(rot.config, seq_len=seq_len, layer_type=lt)
            inv_ref, att_ref = ROPE_INIT_FUNCTIONS[theirs](ref.config, seq_len=seq_len, layer_type=lt)
            assert torch.equal(inv, inv_ref), f"{case} at seq_len={seq_len}"
            assert att == att_ref
        # the sliding layers of Gemma 3 are untouched
        if lt is not None:
            assert torch.equal(rot.sliding_attention_inv_freq, ref_rot.sliding_attention_inv_freq)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("arch", ARCHS)
def test_logits_equal_a_model_loaded_with_transformers_rope_type(tiny, arch, case):
    spec, tf_params, _ours, _theirs = CASES[case]
    lm = tiny(arch)
    ref = _reference(lm, tf_params)
    base = _logits(lm.model, _ids(300))
    with supported(lm, f"positional={spec}"):
        # inside and beyond the window, in an order that exercises the length-dependent methods' growth and
        # reset (dynamic NTK) and short/long switching (LongRoPE) — both models see the same calls
        for n, seed in ((100, 1), (300, 2), (60, 3), (400, 4), (280, 5), (WINDOW, 6)):
            ids = _ids(n, seed)
            out, want = _logits(lm.model, ids), _logits(ref, ids)
            assert torch.allclose(out, want, atol=1e-6, rtol=0), f"{case} on tiny-{arch}, {n} tokens"
        assert not torch.allclose(_logits(lm.model, _ids(300)), base, atol=1e-4), "the method changed nothing"


def test_dynamic_ntk_is_recomputed_by_transformers(tiny_llama):
    # transformers' dynamic_rope_update triggers on the substring "dynamic" in rope_type
    assert "dynamic" in DYNAMIC_TYPE
    with supported(tiny_llama, "positional=dynamic-ntk:factor=2"):
        rot = _rotary(tiny_llama.model)
        original = rot.inv_freq.clone()
        _logits(tiny_llama.model, _ids(400))
        assert not torch.equal(rot.inv_freq, original)  # grown
        _logits(tiny_llama.model, _ids(50))
        assert torch.equal(rot.inv_freq, original)  # reset inside the window


def test_dynamic_ntk_on_gemma3_updates_the_full_layers_only(tiny_gemma3):
    with supported(tiny_gemma3, "positional=dynamic-ntk:factor=2"):
        rot = _rotary(tiny_gemma3.model)
        full, sliding = rot.full_attention_inv_freq.clone(), rot.sliding_attention_inv_freq.clone()
        _logits(tiny_gemma3.model, _ids(400))
        assert not torch.equal(rot.full_attention_inv_freq, full)
        assert torch.equal(rot.sliding_attention_inv_freq, sliding)


@pytest.mark.parametrize("technique", ["dynamic-ntk", "longrope"])
def test_length_dependent_methods_refuse_a_rotary_that_is_not_updated(tiny_gemma3, monkeypatch, technique):
    """A transformers whose ``dynamic_rope_update`` does not handle a rotary module (here: Gemma 3's
    ``forward`` without the decorator) is refused instead of silently running plain RoPE."""
    cls = type(_rotary(tiny_gemma3.model))
    monkeypatch.setattr(cls, "forward", cls.forward.__wrapped__)
    ids = _ids(40)
    before = _logits(tiny_gemma3.model, ids)
    spec = {
        "dynamic-ntk": "dynamic-ntk:factor=2",
        "longrope": f"longrope:short_factor={_floats(SHORT)},long_factor={_floats(LONG)}",
    }[technique]
    refused = r"Gemma3RotaryEmbedding.*dynamic_rope_update|dynamic_rope_update.*Gemma3RotaryEmbedding"
    with pytest.raises(IncompatibleModelError, match=refused):
        compose(tiny_gemma3, f"positional={spec}")
    assert torch.equal(_logits(tiny_gemma3.model, ids), before)  # nothing left applied


def test_yarn_truncate_false_equals_transformers(tiny_llama):
    """``truncate=false`` keeps the ramp's fractional bounds. (Compared on Llama: on per-layer-type configs
    transformers 5.x reads ``truncate`` from the top-level dict, so it always truncates there.)"""
    ref = _reference(tiny_llama, {"rope_type": "yarn", "factor": 4.0, "truncate": False})
    ref.config.rope_parameters["original_max_position_embeddings"] = WINDOW
    with supported(tiny_llama, "positional=yarn:factor=4,truncate=false"):
        rot = _rotary(tiny_llama.model)
        inv_ref, _ = ROPE_INIT_FUNCTIONS["yarn"](ref.config)
        assert torch.equal(rot.inv_freq, inv_ref)
        truncated, _ = yarn_inv_freq(
            SimpleNamespace(**{**vars(rot.config), "rope_parameters": {**rot.config.rope_parameters, "truncate": True}})
        )
        assert not torch.equal(rot.inv_freq, truncated)
        ids = _ids(300)
        assert torch.allclose(_logits(tiny_llama.model, ids), _logits(ref, ids), atol=1e-6, rtol=0)


# -- the papers' formulas at chosen points ---------------------------------------------------------------


def _config(dim: int, **rope) -> SimpleNamespace:
    """A minimal config for the init functions: one head of ``dim`` rotary dimensions."""
    return SimpleNamespace(head_dim=dim, hidden_size=dim, num_attention_heads=1, rope_parameters=rope)


def _theta(base: float, dim: int) -> torch.Tensor:
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))


def test_yarn_ramp_boundaries_and_temperature():
    # Llama 2: |D| = 128, b = 10,000, L = 4096; the paper's α = 1, β = 32 and s = 16
    dim, b, window, s = 128, 10000.0, 4096, 16.0
    cfg = _config(dim, rope_theta=b, factor=s, original_max_position_embeddings=window, beta_fast=32.0, beta_slow=1.0)
    inv, att = yarn_inv_freq(cfg)
    theta = _theta(b, dim)
    # the pair turning n times over L: d(n) = |D|·ln(L/(2πn)) / (2 ln b)
    d_beta = dim * math.log(window / (2 * math.pi * 32)) / (2 * math.log(b))
    d_alpha = dim * math.log(window / (2 * math.pi * 1)) / (2 * math.log(b))
    assert (math.floor(d_beta), math.ceil(d_alpha)) == (20, 46) == correction_range(32, 1, dim, b, window, True)
    low, high = 20, 46
    turns = window * theta / (2 * math.pi)  # r(d) = L/λ_d
    for d in range(dim // 2):
        if d <= low:  # γ = 1: extrapolated, θ_d unchanged
            assert turns[d] > 32 or d == low
            assert torch.isclose(inv[d].double(), theta[d], rtol=1e-6), d
        elif d >= high:  # γ = 0: interpolated, θ_d / s
            assert turns[d] < 1
            assert torch.isclose(inv[d].double(), theta[d] / s, rtol=1e-6), d
    # the ramp is linear in the pair index between the bounds: at the midpoint, half of each
    mid = (low + high) // 2
    assert torch.isclose(inv[mid].double(), 0.5 * theta[mid] / s + 0.5 * theta[mid], rtol=1e-6)
    gamma = 1 - (27 - low) / (high - low)
    assert torch.isclose(inv[27].double(), (1 - gamma) * theta[27] / s + gamma * theta[27], rtol=1e-6)
    # every pair turning more than β times is kept, every pair turning less than α times is divided by s
    assert torch.allclose(inv.double()[turns > 32], theta[turns > 32], rtol=1e-6)
    assert torch.allclose(inv.double()[turns < 1], theta[turns < 1] / s, rtol=1e-6)
    # √(1/t) = 0.1·ln(s) + 1
    assert att == pytest.approx(0.1 * math.log(16) + 1) == pytest.approx(1.2772588722)
    assert yarn_mscale(1.0) == 1.0
    # without truncation the bounds are the fractional pairs themselves
    assert correction_range(32, 1, dim, b, window, False) == pytest.approx((d_beta, d_alpha))


def test_yarn_temperature_scales_the_logits_by_one_over_t(tiny_llama):
    with supported(tiny_llama, "positional=yarn:factor=16") as pipe:
        rot = _rotary(tiny_llama.model)
        x = torch.zeros(1, 1)
        cos, sin = rot(x, torch.arange(50)[None])
        # cos and sin are both scaled by √(1/t), so q·k (rotated on both sides) is scaled by 1/t
        assert torch.allclose(cos**2 + sin**2, torch.full_like(cos, yarn_mscale(16.0) ** 2), atol=1e-6)
        assert pipe.describe()["changes"]["positional"]["attention_factor"] == pytest.approx(yarn_mscale(16.0))


def test_llama3_wavelength_bands():
    # Llama 3.1: |D| = 128, θ = 500,000, L = 8192, s = 8, low_freq_factor = 1, high_freq_factor = 4
    dim, b, window, s, lo, hi = 128, 500000.0, 8192, 8.0, 1.0, 4.0
    cfg = _config(
        dim, rope_theta=b, factor=s, low_freq_factor=lo, high_freq_factor=hi, original_max_position_embeddings=window
    )
    inv, att = llama3_inv_freq(cfg)
    assert att == 1.0
    theta = _theta(b, dim)
    wavelen = 2 * math.pi / theta
    bands = {"kept": 0, "interpolated": 0, "blended": 0}
    for i in range(dim // 2):
        if wavelen[i] < window / hi:  # λ < 2048: high frequency, kept
            want, band = theta[i], "kept"
        elif wavelen[i] > window / lo:  # λ > 8192: low frequency, divided by s
            want, band = theta[i] / s, "interpolated"
        else:
            sigma = (window / wavelen[i] - lo) / (hi - lo)
            want, band = (1 - sigma) * theta[i] / s + sigma * theta[i], "blended"
        bands[band] += 1
        assert torch.isclose(inv[i].double(), want, rtol=1e-5), (i, band)
    assert all(bands.values()), bands  # the chosen config has pairs in every band
    # the blend is continuous at both edges: σ = 1 at λ = L/high_freq_factor (kept) and σ = 0 at
    # λ = L/low_freq_factor (divided by s); a one-pair head (θ_0 = 1, λ_0 = 2π) with L put on each edge
    for window_edge, want_ratio in ((2 * math.pi * hi, 1.0), (2 * math.pi * lo, 1 / s)):
        one = _config(
            2,
            rope_theta=b,
            factor=s,
            low_freq_factor=lo,
            high_freq_factor=hi,
            original_max_position_embeddings=window_edge,
        )
        inv0, _ = llama3_inv_freq(one)
        assert inv0[0].item() == pytest.approx(want_ratio, rel=1e-6)


def test_abf_is_rope_with_the_new_base(tiny_llama, tiny_gemma3):
    dim = 16
    cfg = _config(dim, rope_theta=10000.0, base_factor=50.0)
    inv, att = abf_inv_freq(cfg)
    # Xiong et al.: θ 10,000 → 500,000
    assert torch.allclose(inv.double(), _theta(500000.0, dim), rtol=1e-6) and att == 1.0
    # identical logits to a model loaded with rope_theta = 500,000 (transformers' default RoPE)
    ref = _reference(tiny_llama, {"rope_theta": 500000.0})
    ids = _ids(120)
    with supported(tiny_llama, "positional=abf:base_factor=50") as pipe:
        assert torch.equal(_rotary(tiny_llama.model).inv_freq, _rotary(ref).inv_freq)
        assert torch.allclose(_logits(tiny_llama.model, ids), _logits(ref, ids), atol=1e-6, rtol=0)
        assert pipe.max_context == WINDOW  # ABF claims no longer window by itself
        assert pipe.describe()["changes"]["positional"]["rope_theta"] == {"all": 500000.0}
    # Gemma 3: relative to each layer type's own base; full layers by default (1M → 4M)
    ref = _reference(tiny_gemma3, {"rope_theta": 4_000_000.0})
    with supported(tiny_gemma3, "positional=abf:base_factor=4,window_factor=2") as pipe:
        rot = _rotary(tiny_gemma3.model)
        assert torch.equal(rot.full_attention_inv_freq, _rotary(ref).full_attention_inv_freq)
        assert torch.equal(rot.sliding_attention_inv_freq, _rotary(ref).sliding_attention_inv_freq)
        assert torch.allclose(_logits(tiny_gemma3.model, ids), _logits(ref, ids), atol=1e-6, rtol=0)
        assert pipe.max_context == 2 * WINDOW
    with supported(tiny_gemma3, "positional=abf:base_factor=4,layers=all") as pipe:
        assert pipe.describe()["changes"]["positional"]["rope_theta"] == {
            "full_attention": 4_000_000.0,
            "sliding_attention": 40_000.0,
        }


def test_dynamic_ntk_base_at_a_given_length(tiny_llama):
    dim, b, s = 16, 10000.0, 2.0
    # b' = b · ((s·L'/L) − (s − 1))^{|D|/(|D|−2)}, and b inside the window
    assert dynamic_ntk_base(b, s, 300, WINDOW, dim) == pytest.approx(b * (2 * 300 / 256 - 1) ** (16 / 14))
    assert dynamic_ntk_base(b, s, 100, WINDOW, dim) == b
    assert dynamic_ntk_base(b, s, WINDOW, WINDOW, dim) == b
    assert dynamic_ntk_base(b, 1.0, 512, WINDOW, dim) == pytest.approx(b * 2 ** (16 / 14))  # YaRN §3.3: L'/L
    with supported(tiny_llama, "positional=dynamic-ntk:factor=2") as pipe:
        assert pipe.max_context == 2 * WINDOW
        _logits(tiny_llama.model, _ids(300))
        inv = _rotary(tiny_llama.model).inv_freq
        want = _theta(b * (2 * 300 / 256 - 1) ** (16 / 14), dim)
        assert torch.allclose(inv.double(), want, rtol=1e-6)
        # the highest frequency is kept, the lowest is divided by exactly the effective scale 2·300/256 − 1
        assert inv[0] == 1.0
        assert torch.isclose(inv[-1].double(), _theta(b, dim)[-1] / (2 * 300 / 256 - 1), rtol=1e-5)


def test_longrope_factors_attention_factor_and_switch():
    dim, b, window = 16, 10000.0, 256
    cfg = _config(
        dim,
        rope_theta=b,
        short_factor=list(SHORT),
        long_factor=list(LONG),
        factor=4.0,
        original_max_position_embeddings=window,
    )
    theta = _theta(b, dim)
    short, att = longrope_inv_freq(cfg)
    assert torch.allclose(short.double(), theta / torch.tensor(SHORT, dtype=torch.float64), rtol=1e-6)
    assert longrope_inv_freq(cfg, seq_len=window)[0].equal(short)  # the short set up to L inclusive
    long, _ = longrope_inv_freq(cfg, seq_len=window + 1)
    assert torch.allclose(long.double(), theta / torch.tensor(LONG, dtype=torch.float64), rtol=1e-6)
    # √(1 + ln s / ln L)
    assert att == pytest.approx(math.sqrt(1 + math.log(4) / math.log(256)))
    assert longrope_attention_factor(1.0, 4096) == 1.0


# -- LongRoPE's parameters, checked against the model when composing -------------------------------------


@pytest.mark.parametrize(
    "spec, match",
    [
        ("longrope", r"short_factor is required.*8 values \(\|D\|/2\)"),
        (f"longrope:short_factor=1;2;3;4,long_factor={_floats(LONG)}", r"short_factor has 4 values.*\|D\|/2 = 8"),
        (
            f"longrope:short_factor={_floats(SHORT)},long_factor={_floats((*LONG, 9.0))}",
            r"long_factor has 9 values.*\|D\| = 16",
        ),
    ],
)
@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_longrope_factor_lengths_are_validated_against_the_model(tiny, arch, spec, match):
    lm = tiny(arch)
    ids = _ids(30)
    before = _logits(lm.model, ids)
    rotary = _rotary(lm.model)
    with pytest.raises(ParameterError, match=match):
        compose(lm, f"positional={spec}")
    assert _rotary(lm.model) is rotary and torch.equal(_logits(lm.model, ids), before)


def test_longrope_config_reads_lists_from_the_cli_and_python():
    from longctx.params import make_config
    from longctx.plugins.longrope import LongRoPEConfig

    cfg = make_config(LongRoPEConfig, {"short_factor": "1;1.5; 2", "long_factor": "2;4"}, technique="longrope")
    assert cfg.short_factor == (1.0, 1.5, 2.0) and cfg.long_factor == (2.0, 4.0)
    assert LongRoPEConfig(short_factor=[1, 2]).short_factor == (1.0, 2.0)  # lists become tuples of floats
    with pytest.raises(ParameterError, match="short_factor must hold positive numbers"):
        make_config(LongRoPEConfig, {"short_factor": "1;0"}, technique="longrope")


def test_other_parameter_errors():
    from longctx.params import make_config
    from longctx.plugins.llama3 import Llama3Config
    from longctx.plugins.yarn import YaRNConfig

    with pytest.raises(ParameterError, match=r"yarn: beta_fast .* must be greater than beta_slow"):
        make_config(YaRNConfig, {"beta_fast": "1", "beta_slow": "2"}, technique="yarn")
    with pytest.raises(ParameterError, match=r"llama3: high_freq_factor .* must be greater than low_freq_factor"):
        make_config(Llama3Config, {"high_freq_factor": "1"}, technique="llama3")


# -- usable context claimed ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, window",
    [
        ("yarn:factor=4", 4 * WINDOW),
        ("yarn:factor=4,original_max_position_embeddings=128", 2 * WINDOW),  # s·L_orig = 512
        ("llama3", 8 * WINDOW),  # L_orig = 8192 is longer than the model's window: s × the model's window
        ("llama3:factor=1", WINDOW),
        (f"longrope:short_factor={_floats(SHORT)},long_factor={_floats(LONG)},factor=4", 4 * WINDOW),
        (f"longrope:short_factor={_floats(SHORT)},long_factor={_floats(LONG)}", WINDOW),  # s = 256/256
        ("abf", WINDOW),
        ("abf:window_factor=8", 8 * WINDOW),
    ],
)
def test_max_context(tiny_llama, spec, window):
    with supported(tiny_llama, f"positional={spec}") as pipe:
        assert pipe.max_context == window
        json.dumps(pipe.describe())


# -- identity points and undo ----------------------------------------------------------------------------

IDENTITY = {
    "dynamic-ntk": "dynamic-ntk:factor=4",  # any factor, inside the window
    "yarn": "yarn:factor=1",
    "llama3": "llama3:factor=1",
    "longrope": f"longrope:short_factor={_floats((1.0,) * 8)},long_factor={_floats((1.0,) * 8)},factor=1",
    "abf": "abf:base_factor=1",
}


@pytest.mark.parametrize("technique", list(IDENTITY))
@pytest.mark.parametrize("arch", ARCHS)
def test_identity_points_reproduce_untouched_logits(tiny, arch, technique):
    lm = tiny(arch)
    ids = _ids(200)
    before = _logits(lm.model, ids)
    with supported(lm, f"positional={IDENTITY[technique]}"):
        assert torch.allclose(_logits(lm.model, ids), before, atol=1e-6, rtol=0)


CHANGING = {
    "dynamic-ntk": CASES["dynamic-ntk"][0],
    "yarn": CASES["yarn-tuned"][0],
    "llama3": CASES["llama3-small-window"][0],
    "longrope": CASES["longrope"][0],
    "abf": "abf:base_factor=50,layers=all",
}


@pytest.mark.parametrize("technique", list(CHANGING))
@pytest.mark.parametrize("arch", ARCHS)
def test_undo_restores(tiny, arch, technique):
    lm = tiny(arch)
    ids = _ids(300)
    before = _logits(lm.model, ids)
    rotary, rope_parameters = _rotary(lm.model), copy.deepcopy(lm.model.config.rope_parameters)
    with supported(lm, f"positional={CHANGING[technique]}"):
        assert not torch.allclose(_logits(lm.model, ids), before, atol=1e-4)
    assert _rotary(lm.model) is rotary
    assert lm.model.config.rope_parameters == rope_parameters
    assert torch.equal(_logits(lm.model, ids), before)


@pytest.mark.parametrize("technique", list(IDENTITY))
def test_conformance_kit_passes(technique):
    from longctx.contrib.conformance import check_technique

    report = check_technique("positional", technique)
    assert report.ok, str(report)
    assert not report.failed
