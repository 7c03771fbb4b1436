"""RoPE under bf16 (Wang et al. 2024, arXiv:2411.13476): the drift diagnostic ``longctx.rope_precision``
against transformers' own rotation and a per-position loop, and the ``fp32_rotation`` option of every RoPE
plugin — a bit-exact no-op in float32 models, float32 rotation with q/k/v agreeing at the kernel in bf16
models, closer to the float32 model's logits, undone cleanly."""

from __future__ import annotations

import copy
import json

import attrs
import pytest
import torch
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

from longctx.capabilities import ModelInfo
from longctx.errors import IncompatibleModelError, InputError
from longctx.plugins.yarn import yarn_mscale
from longctx.registry import get_registry
from longctx.rope import (
    LAYER_CHOICES,
    ScaledRope,
    apply_rope,
    default_inv_freq,
    fp32_rotation_field,
    install_fp32_rotation,
    new_rotary,
)
from longctx.rope_precision import MODES, default_rope_inv_freq, relative_drift, rotate
from longctx.runtime import ComposeContext, compose
from longctx.testing import random_ids, rope_reference

# -- the diagnostic ----------------------------------------------------------------------------------------


def test_rotate_is_transformers_rotation_in_each_mode(tiny_llama):
    """``low`` is transformers' rotary + ``apply_rotary_pos_emb`` in a bf16 model, ``low+fp32-rotation`` the
    same with float32 cos/sin and the result cast, ``fp32`` a float32 model: bit for bit."""
    rot = LlamaRotaryEmbedding(tiny_llama.model.config)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 50, 16, generator=g).to(torch.bfloat16)
    k = torch.randn(1, 2, 50, 16, generator=g).to(torch.bfloat16)
    pos = torch.arange(4000, 4050)
    cos16, sin16 = rot(q, pos[None])  # a bf16 activation: cos/sin come back in bf16
    cos32, sin32 = rot(q.float(), pos[None])
    assert cos16.dtype == torch.bfloat16 and cos32.dtype == torch.float32
    q16, k16 = apply_rotary_pos_emb(q, k, cos16, sin16)
    q_fix, k_fix = apply_rotary_pos_emb(q, k, cos32, sin32)  # type promotion: float32
    q32, k32 = apply_rotary_pos_emb(q.float(), k.float(), cos32, sin32)
    inv = rot.inv_freq
    assert torch.equal(rotate(q, pos, inv, "low"), q16) and torch.equal(rotate(k, pos, inv, "low"), k16)
    assert torch.equal(rotate(q, pos, inv, "low+fp32-rotation"), q_fix.to(torch.bfloat16))
    assert torch.equal(rotate(k, pos, inv, "low+fp32-rotation"), k_fix.to(torch.bfloat16))
    assert torch.equal(rotate(q, pos, inv, "fp32"), q32) and torch.equal(rotate(k, pos, inv, "fp32"), k32)
    assert not torch.equal(rotate(q, pos, inv, "low"), rotate(q, pos, inv, "low+fp32-rotation"))
    # partial rotary: only the first 2·len(inv_freq) dimensions turn
    out = rotate(q, pos, inv[:4], "fp32")
    assert torch.equal(out[..., 8:], q[..., 8:].float())
    assert torch.equal(out[..., :8], rope_reference(q[..., :8].float(), pos, inv[:4]))


def test_drift_matches_a_per_position_loop_and_is_zero_at_position_zero():
    inv = default_rope_inv_freq(8, 10000.0)
    g = torch.Generator().manual_seed(3)
    q, k = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    r = relative_drift(inv_freq=inv, q=q, k=k, edges=(0, 1, 5, 40), per_bucket=8, distances=(2, 7))
    for mode in MODES:
        assert r.drift[mode][0].max_abs == 0.0  # the key at position 0 is the reference itself
    # fp32: an independent loop with longctx.testing's reference rotation and a float64 dot product
    qb, kb = q.to(torch.bfloat16).float(), k.to(torch.bfloat16).float()
    for b, (lo, hi) in zip(r.drift["fp32"][1:], ((1, 5), (5, 40)), strict=True):
        devs = []
        for delta in (2, 7):
            ref = (
                rope_reference(qb, torch.tensor(delta), inv).double() * rope_reference(kb, torch.tensor(0), inv)
            ).sum(-1)
            for p in sorted({int(x) for x in torch.linspace(lo, hi - 1, 8).round()}):
                lp = rope_reference(qb, torch.tensor(p + delta), inv).double()
                lp = (lp * rope_reference(kb, torch.tensor(p), inv).double()).sum(-1)
                devs.append((lp - ref).abs())
        devs = torch.cat(devs)
        assert (b.lo, b.hi, b.positions) == (lo, hi, len(devs) // 6)
        assert b.max_abs == pytest.approx(float(devs.max()), abs=1e-12)
        assert b.mean_abs == pytest.approx(float(devs.mean()), abs=1e-12)
    # one pair turning one radian per token, q = k = (1, 0): L(p) = cos Δ at every p
    one = relative_drift(
        inv_freq=torch.tensor([1.0]), q=torch.tensor([[1.0, 0.0]]), k=torch.tensor([[1.0, 0.0]]), edges=(1, 200)
    )
    assert one.logit_rms == pytest.approx(float(torch.tensor([1.0, 16.0, 256.0]).cos().pow(2).mean().sqrt()), abs=1e-6)
    assert one.drift["fp32"][0].max_abs < 1e-5 < one.drift["low"][0].max_abs


def test_bf16_drift_grows_with_position_and_fp32_stays_near_zero():
    """Gemma 3's full-attention RoPE (θ = 1M): bf16 drifts from position 1 on and more at long positions;
    float32 stays orders of magnitude below; the fp32-rotation fix sits between them."""
    r = relative_drift(
        head_dim=128, base=1e6, edges=(1, 16, 256, 1024, 8192, 32768), per_bucket=24, distances=(1, 16), samples=16
    )
    low, fix, fp32 = (r.drift[m] for m in MODES)
    assert low[0].mean_abs < 0.85 * low[-1].mean_abs  # grows with position
    assert low[0].mean_abs < low[2].mean_abs < low[-1].mean_abs
    assert low[0].mean_abs > 1e-3 * r.logit_rms  # …and is already there at position 1
    for a, b, c in zip(low, fix, fp32, strict=True):
        assert c.mean_abs < a.mean_abs / 20  # ~0 next to bf16
        assert c.mean_abs < b.mean_abs < 0.85 * a.mean_abs  # the fix removes part of the drift
    assert all(c.max_abs < 1e-4 * r.logit_rms for c in fp32[:3])  # below 1k: float32 is invariant to 1e-4


def test_drift_reads_a_models_rotary(tiny_gemma3, tiny_llama):
    kw = dict(edges=(1, 64, 512), per_bucket=8, samples=4, distances=(3,))
    # Gemma 3: the full-attention RoPE (θ = 1M) by default, the sliding one (θ = 10k) on request
    assert relative_drift(tiny_gemma3.model, **kw) == attrs.evolve(
        relative_drift(inv_freq=default_rope_inv_freq(16, 1e6), **kw), description="Gemma3ForCausalLM (full_attention)"
    )
    sliding = relative_drift(tiny_gemma3.model.model.rotary_emb, layer_type="sliding_attention", **kw)
    assert sliding.drift == relative_drift(head_dim=16, base=1e4, **kw).drift
    # YaRN's attention factor scales cos and sin, hence the logits by its square
    with compose(tiny_llama, "positional=yarn:factor=4"):
        r = relative_drift(tiny_llama.model, **kw)
    assert r.attention_scaling == pytest.approx(yarn_mscale(4.0))
    table = r.table()
    assert table.count("\n") == 3 and "bf16+fp32-rotation mean" in table and "| 1–64 |" in table
    json.dumps(r.to_json())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "needs a rotary module, inv_freq, or head_dim and base"),
        ({"head_dim": 8, "base": 1e4, "modes": ("bf8",)}, "unknown rotation mode 'bf8'"),
        ({"head_dim": 8, "base": 1e4, "dtype": torch.float32}, "dtype must be"),
        ({"head_dim": 8, "base": 1e4, "edges": (5, 5)}, "edges must be increasing"),
        ({"head_dim": 8, "base": 1e4, "q": torch.ones(2, 8)}, "pass both q and k"),
        ({"head_dim": 8, "base": 1e4, "q": torch.ones(2, 6), "k": torch.ones(2, 6)}, r"must both be \(samples, 8\)"),
    ],
)
def test_drift_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        relative_drift(**kwargs)


def test_drift_of_a_model_without_rope(tiny_bert):
    with pytest.raises(InputError, match="no rotary embedding"):
        relative_drift(tiny_bert.model)


# -- the fp32_rotation option --------------------------------------------------------------------------------

#: every RoPE technique with the option (family, name), with a spec that changes the model
SPECS = {
    "native": "positional=native",
    "pi": "positional=pi:factor=2",
    "ntk": "positional=ntk:factor=2",
    "dynamic-ntk": "positional=dynamic-ntk:factor=2",
    "yarn": "positional=yarn:factor=4",
    "llama3": "positional=llama3:factor=4,original_max_position_embeddings=128",
    "longrope": "positional=longrope:short_factor=1;1;1;1;1;1;1;1,long_factor=1;1;2;2;3;3;4;4,factor=4",
    "abf": "positional=abf:base_factor=4",
    "truncated-basis": "positional=truncated-basis",
    "power-scaling": "positional=power-scaling",
    "self-extend": "attention=self-extend:group_size=4,neighbor_window=64",
}


def _with_option(spec: str) -> str:
    return spec + (",fp32_rotation=true" if ":" in spec else ":fp32_rotation=true")


@pytest.mark.parametrize("name", list(SPECS))
def test_every_rope_plugin_has_the_option(name):
    family = "attention" if name == "self-extend" else "positional"
    params = {p.name: p for p in get_registry().get(family, name).params}
    assert params["fp32_rotation"].default is False
    assert "arXiv:2411.13476" in params["fp32_rotation"].help


@torch.no_grad()
@pytest.mark.parametrize("name", list(SPECS))
def test_float32_model_is_bit_identical(tiny_llama, name):
    ids = random_ids(300)
    with compose(tiny_llama, SPECS[name]):
        want = tiny_llama.model(ids).logits
    with compose(tiny_llama, _with_option(SPECS[name])) as pipe:
        assert torch.equal(tiny_llama.model(ids).logits, want)
        slot = "attention" if name == "self-extend" else "positional"
        assert pipe.describe()["changes"][slot]["fp32_rotation"]["rotary_modules"] == ["model.rotary_emb"]


@torch.no_grad()
@pytest.mark.parametrize("arch", ["gemma3", "qwen2"])
def test_float32_model_is_bit_identical_on_other_architectures(tiny, arch):
    lm = tiny(arch)
    ids = random_ids(200)
    for spec in (SPECS["native"], SPECS["yarn"]):
        with compose(lm, spec):
            want = lm.model(ids).logits
        with compose(lm, _with_option(spec)):
            assert torch.equal(lm.model(ids).logits, want), spec


def _bf16(lm, *, qk_scale: float = 1.0, bf16_frequencies: bool = False):
    """``(float32 model, the same in bf16)``; q/k weights scaled so attention depends on position; the rotary
    keeps float32 frequencies (as ``from_pretrained(dtype=bfloat16)`` gives) unless ``bf16_frequencies``
    (as ``model.to(torch.bfloat16)`` gives)."""
    with torch.no_grad():
        for layer in lm.model.model.layers:
            layer.self_attn.q_proj.weight.mul_(qk_scale)
            layer.self_attn.k_proj.weight.mul_(qk_scale)
    m32 = copy.deepcopy(lm.model)
    lm.model.to(torch.bfloat16)
    if not bf16_frequencies:
        lm.model.model.rotary_emb = new_rotary(lm.model.model.rotary_emb)
    return m32, lm


@pytest.fixture
def spy_attention():
    """A registered attention implementation recording the q/k/v it gets, then running sdpa."""
    seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    sdpa = AttentionInterface()["sdpa"]

    def spy(module, query, key, value, attention_mask, **kwargs):
        seen.append((query, key, value))
        return sdpa(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("lc_test_spy", spy)
    AttentionMaskInterface.register("lc_test_spy", ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    yield seen
    for mapping in (AttentionInterface._global_mapping, AttentionMaskInterface._global_mapping):
        mapping.pop("lc_test_spy", None)


@torch.no_grad()
def test_bf16_rotation_is_float32_and_q_k_v_agree_at_the_kernel(tiny_llama, spy_attention):
    _m32, lm = _bf16(tiny_llama)
    model = lm.model
    model.set_attn_implementation("lc_test_spy")
    attn = model.model.layers[0].self_attn
    pre: dict[str, torch.Tensor] = {}
    hooks = [
        getattr(attn, f"{n}_proj").register_forward_hook(lambda m, a, out, n=n: pre.__setitem__(n, out))
        for n in ("q", "k")
    ]
    ids = random_ids(120)
    n = ids.shape[1]
    with compose(lm, "positional=native:fp32_rotation=true") as pipe:
        rot = model.model.rotary_emb
        cos, sin = rot(torch.zeros(1, n, 64, dtype=torch.bfloat16), torch.arange(n)[None])
        assert cos.dtype == sin.dtype == torch.float32
        model(ids, use_cache=False)
        assert pipe.describe()["changes"]["positional"]["fp32_rotation"]["original_implementation"] == "lc_test_spy"
    for h in hooks:
        h.remove()
    q, k, v = spy_attention[0]
    assert q.dtype == k.dtype == v.dtype == torch.bfloat16
    # the q and k reaching the kernel are the float32 rotation of the projections, cast once
    pos, inv = torch.arange(n), rot.inv_freq
    want_q = rotate(pre["q"].view(1, n, -1, 16).transpose(1, 2), pos, inv, "low+fp32-rotation")
    want_k = rotate(pre["k"].view(1, n, -1, 16).transpose(1, 2), pos, inv, "low+fp32-rotation")
    assert torch.equal(q, want_q) and torch.equal(k, want_k)
    assert not torch.equal(q, rotate(pre["q"].view(1, n, -1, 16).transpose(1, 2), pos, inv, "low"))
    # undone: bf16 cos/sin again, the spy is the implementation again, no hook left
    assert model.model.rotary_emb is rot and not rot._forward_pre_hooks
    assert rot(torch.zeros(1, 1, 64, dtype=torch.bfloat16), torch.arange(1)[None])[0].dtype == torch.bfloat16
    assert model.config._attn_implementation == "lc_test_spy"


@torch.no_grad()
def test_bf16_logits_get_closer_to_the_float32_model(tiny_llama):
    """A bf16 Llama whose attention depends on position (q/k weights × 10): with fp32 rotation its logits are
    closer to the float32 model's than without — the rotation's share of the bf16 error is removed."""
    m32, lm = _bf16(tiny_llama, qk_scale=10.0)
    ids = random_ids(384, b=2)
    ref = m32(ids).logits.double()
    err_bf16 = (lm.model(ids).logits.double() - ref).abs().mean()
    with compose(lm, "positional=native:fp32_rotation=true") as pipe:
        err_fix = (lm.model(ids).logits.double() - ref).abs().mean()
        assert pipe.describe()["changes"]["positional"]["fp32_rotation"]["float32_frequencies_restored"] == []
    assert err_fix < 0.97 * err_bf16, (float(err_fix), float(err_bf16))
    # and with cached decoding: the cache holds the float32-rotated keys, cast back at each step
    with compose(lm, "positional=native:fp32_rotation=true") as pipe:
        out = pipe.generate("The RoPE", max_new_tokens=4)
        assert out.new_tokens == 4


@torch.no_grad()
def test_frequencies_cast_to_bf16_with_the_model_are_restored(tiny_llama):
    """``model.to(bfloat16)`` rounds ``inv_freq``: the option rebuilds the rotary from its config in float32."""
    m32, lm = _bf16(tiny_llama, qk_scale=10.0, bf16_frequencies=True)
    rotary = lm.model.model.rotary_emb
    assert rotary.inv_freq.dtype == torch.bfloat16
    ids = random_ids(256)
    ref = m32(ids).logits.double()
    err_bf16 = (lm.model(ids).logits.double() - ref).abs().mean()
    with compose(lm, "positional=native:fp32_rotation=true") as pipe:
        fresh = lm.model.model.rotary_emb
        assert fresh is not rotary and torch.equal(fresh.inv_freq, m32.model.rotary_emb.inv_freq)
        assert pipe.describe()["changes"]["positional"]["fp32_rotation"]["float32_frequencies_restored"] == [
            "model.rotary_emb"
        ]
        err_fix = (lm.model(ids).logits.double() - ref).abs().mean()
    assert err_fix < 0.97 * err_bf16, (float(err_fix), float(err_bf16))
    assert lm.model.model.rotary_emb is rotary and rotary.inv_freq.dtype == torch.bfloat16


@torch.no_grad()
def test_bf16_with_attention_techniques(tiny_llama):
    """Attention techniques that replace the kernel get float32 q and k (self-extend's own option, or the
    positional one, installed first) and still return finite bf16 outputs."""
    _m32, lm = _bf16(tiny_llama)
    ids = random_ids(200)
    for spec in (
        _with_option(SPECS["self-extend"]),
        f"{_with_option(SPECS['yarn'])} {SPECS['self-extend']}",
        "positional=native:fp32_rotation=true attention=streaming-llm:sinks=4,window=64",
    ):
        with compose(lm, spec):
            logits = lm.model(ids).logits
            assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all(), spec


def test_refused_without_rope(tiny_bert):
    with pytest.raises(IncompatibleModelError, match="fp32_rotation: BertModel has no rotary position embedding"):
        compose(tiny_bert, "positional=native:fp32_rotation=true")


@attrs.frozen
class _ToyConfig:
    factor: float = 2.0
    layers: str = attrs.field(default="full", validator=attrs.validators.in_(LAYER_CHOICES))
    fp32_rotation: bool = fp32_rotation_field()


@attrs.frozen
class _OldToyConfig:  # a plugin written before the option existed
    factor: float = 2.0
    layers: str = "full"


def _toy_inv_freq(config, device=None, seq_len=None, layer_type=None):
    return default_inv_freq(config, layer_type, device) / 2.0, 1.0


class _Toy(ScaledRope):
    """A third-party-style subclass overriding ``apply`` without knowing about the option."""

    rope_type = "longctx_test_toy"
    inv_freq = staticmethod(_toy_inv_freq)

    def apply(self, ctx):
        return apply_rope(ctx, rope_type=self.rope_type, init_fn=_toy_inv_freq, params={}, layers="full")


def test_scaled_rope_subclasses_inherit_the_option(tiny_llama):
    model = tiny_llama.model
    ctx = ComposeContext(model, None, ModelInfo.of(model), get_registry())
    out = _Toy(_ToyConfig(fp32_rotation=True)).apply(ctx)
    key = out["fp32_rotation"]["attention_implementation"]
    assert model.config._attn_implementation == key
    assert install_fp32_rotation(ctx) is out["fp32_rotation"]  # idempotent: installed once
    assert len(model.model.rotary_emb._forward_pre_hooks) == 1
    ctx.undo()
    assert model.config._attn_implementation == "sdpa"
    # configs without the field, and the option left off, change nothing beyond the method itself
    for cfg in (_OldToyConfig(), _ToyConfig()):
        ctx = ComposeContext(model, None, ModelInfo.of(model), get_registry())
        assert "fp32_rotation" not in _Toy(cfg).apply(ctx)
        assert model.config._attn_implementation == "sdpa" and not model.model.rotary_emb._forward_pre_hooks
        ctx.undo()
