"""SelfExtend (attention=self-extend) against an explicit dense oracle.

Jin et al. 2024, arXiv:2401.01325. The oracle is fp32 eager attention over repeated k/v with a boolean
causal mask and a per-(query, key) position map built by a Python loop: neighbour pairs (i − j < W) at
(i, j), grouped pairs at (⌊i/G⌋ + W − ⌊W/G⌋, ⌊j/G⌋). Pre-RoPE q/k are rotated at exactly those positions;
the function under test receives q/k rotated at absolute positions (as transformers gives them).
"""

from __future__ import annotations

import types

import pytest
import torch
from transformers import AttentionInterface
from transformers.cache_utils import DynamicCache

import longctx.plugins.self_extend as se
from longctx.contrib.conformance import check_technique
from longctx.errors import CompositionError, LongctxError
from longctx.kvcache import cache_kwarg
from longctx.plugins.self_extend import (
    CONTEXT_KEY,
    SelfExtendLayer,
    SelfExtendUnsupportedError,
    extended_context,
    grouped_key_position,
    grouped_query_position,
    self_extend_attention,
)
from longctx.runtime import compose
from longctx.testing import random_ids as _ids
from longctx.testing import random_qkv as _qkv
from longctx.testing import rope_reference as _rope


def position_map(n: int, group: int, window: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-(i, j) loop: causal ``visible``, the query's position ``qpos[i, j]`` and the key's ``kpos[i, j]``."""
    visible = torch.zeros(n, n, dtype=torch.bool)
    qpos = torch.zeros(n, n, dtype=torch.long)
    kpos = torch.zeros(n, n, dtype=torch.long)
    for i in range(n):
        for j in range(i + 1):
            visible[i, j] = True
            if i - j < window:
                qpos[i, j], kpos[i, j] = i, j
            else:
                qpos[i, j], kpos[i, j] = i // group + window - window // group, j // group
    return visible, qpos, kpos


def dense_oracle(q0, k0, v, visible, qpos, kpos, inv_freq, scaling, softcap=None):
    b, h, n, d = q0.shape
    groups = h // k0.shape[1]
    k_rep = k0.float().repeat_interleave(groups, dim=1)
    v_rep = v.float().repeat_interleave(groups, dim=1)
    out = torch.zeros(b, n, h, d)
    for i in range(n):
        qi = _rope(q0[:, :, i : i + 1].float().expand(b, h, n, d), qpos[i], inv_freq)
        ki = _rope(k_rep, kpos[i], inv_freq)
        s = (qi * ki).sum(-1) * scaling
        if softcap:
            s = torch.tanh(s / softcap) * softcap
        s = s.masked_fill(~visible[i], float("-inf"))
        out[:, i] = torch.einsum("bhn,bhnd->bhd", torch.softmax(s, dim=-1), v_rep)
    return out


@pytest.fixture(scope="module")
def inv_freq():
    from longctx.models import tiny_model

    return tiny_model("llama").model.model.rotary_emb.inv_freq.clone()


def _module(group, window, inv_freq, *, chunk=se.PREFILL_CHUNK, softcap=None):
    return types.SimpleNamespace(
        _lc={CONTEXT_KEY: SelfExtendLayer(group, window, lambda: inv_freq, chunk)},
        config=types.SimpleNamespace(attn_logit_softcapping=softcap),
        training=False,
        layer_idx=0,
    )


def test_grouped_positions_follow_the_paper():
    # G = 4, W = 16: query i = 50 -> ⌊50/4⌋ + 16 − 4 = 24; key j = 10 -> 2; grouped distance 22
    assert grouped_query_position(50, 4, 16) == 24
    assert grouped_key_position(10, 4) == 2
    # G = 3, W = 8: shift 8 − 2 = 6; i = 20 -> 12; j = 11 -> 3
    assert grouped_query_position(20, 3, 8) == 12 and grouped_key_position(11, 3) == 3
    # the regimes meet at the boundary: at i − j = W the grouped distance is within G of W
    for i in range(16, 200):
        j = i - 16
        assert 16 - 4 <= grouped_query_position(i, 4, 16) - grouped_key_position(j, 4) <= 16
    assert extended_context(256, 2, 16) == 496 and extended_context(256, 4, 512) == 256
    assert extended_context(None, 4, 16) is None


CASES = [(4, 16, 96, se.PREFILL_CHUNK), (4, 16, 96, 7), (3, 5, 60, 16), (2, 1, 40, 8)]


@pytest.mark.parametrize(("group", "window", "n", "chunk"), CASES)
@pytest.mark.parametrize("softcap", [None, 5.0])
def test_prefill_matches_dense_oracle(inv_freq, group, window, n, chunk, softcap):
    q0, k0, v = _qkv(n)
    pos = torch.arange(n)
    q, k = _rope(q0, pos, inv_freq), _rope(k0, pos, inv_freq)
    module = _module(group, window, inv_freq, chunk=chunk, softcap=softcap)
    out, w = self_extend_attention(module, q, k, v, None, scaling=0.25, position_ids=pos[None])
    assert w is None and out.shape == (2, n, 4, 16)
    visible, qpos, kpos = position_map(n, group, window)
    ref = dense_oracle(q0, k0, v, visible, qpos, kpos, inv_freq, 0.25, softcap)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    # the grouped positions matter: absolute positions everywhere differ
    dense = dense_oracle(q0, k0, v, visible, pos.expand(n, n), pos.expand(n, n), inv_freq, 0.25, softcap)
    assert (dense - ref).abs().max() > 1e-3


@pytest.mark.parametrize("feed", [1, 11])
def test_decoding_with_dynamic_cache_matches_oracle(inv_freq, feed):
    n, group, window = 90, 4, 12
    q0, k0, v = _qkv(n, seed=1)
    pos = torch.arange(n)
    q, k = _rope(q0, pos, inv_freq), _rope(k0, pos, inv_freq)
    cache = DynamicCache()
    module = _module(group, window, inv_freq, chunk=5)
    starts = [0, 30, *range(30 + feed, n, feed)]
    outs = []
    for a, z in zip(starts, [*starts[1:], n]):
        keys, values = cache.update(k[:, :, a:z], v[:, :, a:z], 0)
        out, _ = self_extend_attention(
            module, q[:, :, a:z], keys, values, None, scaling=0.25, position_ids=pos[None, a:z]
        )
        outs.append(out)
    visible, qpos, kpos = position_map(n, group, window)
    ref = dense_oracle(q0, k0, v, visible, qpos, kpos, inv_freq, 0.25)
    torch.testing.assert_close(torch.cat(outs, dim=1), ref, atol=1e-5, rtol=1e-5)


def test_attention_refuses_inconsistent_inputs(inv_freq):
    q0, k0, v = _qkv(10)
    module = _module(2, 4, inv_freq)
    with pytest.raises(SelfExtendUnsupportedError, match="4D"):
        self_extend_attention(module, q0, k0, v, torch.ones(2, 1, 10, 10, dtype=torch.bool))
    per_row = torch.stack([torch.arange(10), torch.arange(10) + 1])
    with pytest.raises(SelfExtendUnsupportedError, match="padded"):
        self_extend_attention(module, q0, k0, v, None, position_ids=per_row)
    with pytest.raises(SelfExtendUnsupportedError, match="evicts"):  # keys missing (an evicting cache)
        self_extend_attention(module, q0[:, :, :1], k0, v, None, position_ids=torch.tensor([[20]]))
    with pytest.raises(CompositionError, match="no self-extend context"):
        self_extend_attention(types.SimpleNamespace(), q0, k0, v, None)


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_identity_when_window_covers_sequence(tiny, arch):
    lm = tiny(arch)
    ids = _ids(60)
    with torch.no_grad():
        base = lm.model(ids).logits
        with compose(lm, "attention=self-extend:group_size=4,neighbor_window=60") as pipe:
            torch.testing.assert_close(pipe.forward(ids).logits, base, atol=1e-5, rtol=1e-5)
        with compose(lm, "attention=self-extend:group_size=4,neighbor_window=20") as pipe:
            assert (pipe.forward(ids).logits - base).abs().max() > 1e-3


def test_model_prefill_equals_token_by_token(tiny_llama):
    model = tiny_llama.model
    ids = _ids(70, seed=3)
    with torch.no_grad(), compose(tiny_llama, "attention=self-extend:group_size=3,neighbor_window=10") as pipe:
        prefill = pipe.forward(ids).logits
        cache = DynamicCache(config=model.config)
        steps = [model(ids[:, t : t + 1], use_cache=True, **{cache_kwarg(model): cache}).logits for t in range(70)]
    torch.testing.assert_close(prefill, torch.cat(steps, dim=1), atol=1e-5, rtol=1e-5)


def test_padding_refused(tiny_llama):
    ids = torch.cat([_ids(30, seed=1), _ids(30, seed=2)])
    mask = torch.ones_like(ids)
    mask[1, :5] = 0
    with torch.no_grad(), compose(tiny_llama, "attention=self-extend:group_size=2,neighbor_window=8") as pipe:
        with pytest.raises(SelfExtendUnsupportedError, match="padded"):
            pipe.forward(ids, attention_mask=mask)


def test_gemma3_sliding_layers_untouched(tiny_gemma3):
    model = tiny_gemma3.model
    ids = _ids(80, seed=7)
    attn = [layer.self_attn for layer in model.model.layers]

    def run(store):
        hooks = [m.register_forward_hook(lambda m, a, o, i=i: store.__setitem__(i, o[0])) for i, m in enumerate(attn)]
        try:
            return model(ids).logits
        finally:
            for hk in hooks:
                hk.remove()

    with torch.no_grad():
        base_out: dict[int, torch.Tensor] = {}
        run(base_out)
        with compose(tiny_gemma3, "attention=self-extend:group_size=4,neighbor_window=16") as pipe:
            change = pipe.describe()["changes"]["attention"]
            assert change["extended_layers"] == [3] and change["unchanged_layers"] == [0, 1, 2]
            out: dict[int, torch.Tensor] = {}
            run(out)
            for i in range(3):
                assert torch.equal(out[i], base_out[i])
            assert (out[3] - base_out[3]).abs().max() > 1e-3


def test_kv_that_evicts_is_refused(tiny_llama):
    with pytest.raises(CompositionError):
        compose(tiny_llama, "attention=self-extend kv=sink-window")
    assert tiny_llama.model.config._attn_implementation == "sdpa"


def test_undo_restores_logits_and_attention(tiny_llama):
    model = tiny_llama.model
    ids = _ids(70)
    with torch.no_grad():
        base = model(ids).logits
        pipe = compose(tiny_llama, "attention=self-extend:group_size=4,neighbor_window=16")
        key = pipe.describe()["changes"]["attention"]["implementation"]
        assert model.config._attn_implementation == key
        assert pipe.describe()["max_context"] == extended_context(256, 4, 16)
        assert (model(ids).logits - base).abs().max() > 1e-3
        pipe.undo()
        assert model.config._attn_implementation == "sdpa"
        assert key not in AttentionInterface()
        assert all("_lc" not in layer.self_attn.__dict__ for layer in model.model.layers)
        assert torch.equal(model(ids).logits, base)
        with pytest.raises(LongctxError, match="undone"):
            pipe.forward(ids)


def test_conformance():
    report = check_technique("attention", "self-extend")
    assert report.ok, report
