"""StreamingLLM (attention=streaming-llm + kv=sink-window) against an explicit dense oracle.

Xiao et al. 2023, arXiv:2309.17453. The oracle is fp32 eager attention over repeated k/v with a boolean
mask and a per-(query, key) position map built by a per-query Python loop: sinks at cache positions j,
window keys at t − e_i, the query at i − e_i. Pre-RoPE q/k are rotated at exactly those positions; the
function under test instead receives q/k rotated at absolute positions (as transformers gives them).
"""

from __future__ import annotations

import json
import math
import types

import pytest
import torch
from transformers import AttentionInterface, LogitsProcessor, LogitsProcessorList
from transformers.cache_utils import DynamicSlidingWindowLayer

import longctx.plugins.streaming_llm as sl
from longctx.errors import CompositionError, IncompatibleModelError, LongctxError, ParameterError
from longctx.hooks import hookimpl
from longctx.kvcache import cache_kwarg, cache_nbytes
from longctx.plugins.sink_window import SinkWindowLayer
from longctx.plugins.streaming_llm import (
    CONTEXT_KEY,
    StreamingLayer,
    StreamingUnsupportedError,
    streaming_llm_attention,
)
from longctx.registry import load_registry
from longctx.runtime import compose
from longctx.testing import random_ids as _ids
from longctx.testing import random_qkv as _qkv
from longctx.testing import rope_reference as _rope

# -- the oracle ------------------------------------------------------------------------------------


def streaming_layout(n: int, sinks: int, window: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-query loop: ``visible[i, t]``, the query's cache position ``qpos[i]`` and each key's cache
    position ``kpos[i, t]`` as the paper assigns them."""
    visible = torch.zeros(n, n, dtype=torch.bool)
    qpos = torch.zeros(n, dtype=torch.long)
    kpos = torch.zeros(n, n, dtype=torch.long)
    for i in range(n):
        e = max(0, i - (sinks + window - 1))
        qpos[i] = i - e
        for j in range(min(sinks, i + 1)):
            visible[i, j] = True
            kpos[i, j] = j
        for t in range(max(sinks, i - window + 1), i + 1):
            visible[i, t] = True
            kpos[i, t] = t - e
    return visible, qpos, kpos


def dense_oracle(q0, k0, v, visible, qpos, kpos, inv_freq, scaling, softcap=None):
    """fp32 eager attention over repeated k/v; q0/k0 are *pre-RoPE* and rotated per (query, key)."""
    b, h, n, d = q0.shape
    groups = h // k0.shape[1]
    k_rep = k0.float().repeat_interleave(groups, dim=1)
    v_rep = v.float().repeat_interleave(groups, dim=1)
    out = torch.zeros(b, n, h, d)
    for i in range(n):
        qi = _rope(q0[:, :, i].float(), qpos[i], inv_freq)  # (b, h, d)
        ki = _rope(k_rep, kpos[i], inv_freq)  # (b, h, n, d)
        s = torch.einsum("bhd,bhnd->bhn", qi, ki) * scaling
        if softcap:
            s = torch.tanh(s / softcap) * softcap
        s = s.masked_fill(~visible[i], float("-inf"))
        out[:, i] = torch.einsum("bhn,bhnd->bhd", torch.softmax(s, dim=-1), v_rep)
    return out


# -- fixtures and helpers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inv_freq():
    """The RoPE frequencies of the tiny Llama (θ = 10k, head_dim 16)."""
    from longctx.models import tiny_model

    return tiny_model("llama").model.model.rotary_emb.inv_freq.clone()


def _fake_module(sinks, window, inv_freq, *, chunk=sl.PREFILL_CHUNK, softcap=None, groups=2):
    return types.SimpleNamespace(
        _lc={CONTEXT_KEY: StreamingLayer(sinks, window, lambda: inv_freq, chunk)},
        config=types.SimpleNamespace(attn_logit_softcapping=softcap),
        num_key_value_groups=groups,
        training=False,
        layer_idx=0,
    )


@torch.no_grad()
def _step_by_step(model, ids, cache):
    """Feed ``ids`` one token at a time through ``cache`` (default positions) and stack the logits."""
    out = []
    for t in range(ids.shape[1]):
        mask = torch.ones(ids.shape[0], t + 1, dtype=torch.long)
        out.append(model(ids[:, t : t + 1], attention_mask=mask, use_cache=True, **{cache_kwarg(model): cache}).logits)
    return torch.cat(out, dim=1)


# -- attention function vs the oracle ----------------------------------------------------------------

CASES = [
    # sinks, window, n, chunk
    (4, 16, 100, sl.PREFILL_CHUNK),  # one chunk, eviction from token 20 on
    (4, 16, 100, 7),  # chunked prefill, chunks straddling the window
    (0, 24, 90, 16),  # no sinks: plain window attention
    (2, 1, 40, 8),  # window of one token: the query sees the sinks and itself
    (4, 200, 100, 32),  # nothing evicted: dense causal attention
]


@pytest.mark.parametrize(("sinks", "window", "n", "chunk"), CASES)
@pytest.mark.parametrize("softcap", [None, 5.0])
def test_prefill_matches_dense_oracle(inv_freq, sinks, window, n, chunk, softcap):
    q0, k0, v = _qkv(n)
    pos = torch.arange(n)
    q, k = _rope(q0, pos, inv_freq), _rope(k0, pos, inv_freq)
    scaling = 0.25
    module = _fake_module(sinks, window, inv_freq, chunk=chunk, softcap=softcap)
    out, weights = streaming_llm_attention(module, q, k, v, None, scaling=scaling, position_ids=pos[None])
    assert weights is None and out.shape == (2, n, 4, 16) and out.dtype == q.dtype
    visible, qpos, kpos = streaming_layout(n, sinks, window)
    ref = dense_oracle(q0, k0, v, visible, qpos, kpos, inv_freq, scaling, softcap)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    if sinks and n > sinks + window:
        # the oracle is sensitive to the sinks' cache positions: absolute sink positions differ
        absolute = dense_oracle(q0, k0, v, visible, pos, pos.expand(n, n), inv_freq, scaling, softcap)
        assert (absolute - ref).abs().max() > 1e-3


@pytest.mark.parametrize(("sinks", "window"), [(4, 16), (0, 9), (3, 1)])
@pytest.mark.parametrize("feed", [1, 13])
def test_decoding_through_sink_window_layer_matches_oracle(inv_freq, sinks, window, feed):
    """Keys go through a SinkWindowLayer ``feed`` tokens at a time (after a 37-token prefill)."""
    n, scaling = 110, 0.25
    q0, k0, v = _qkv(n, seed=1)
    pos = torch.arange(n)
    q, k = _rope(q0, pos, inv_freq), _rope(k0, pos, inv_freq)
    layer = SinkWindowLayer(sinks, window)
    module = _fake_module(sinks, window, inv_freq, chunk=5)
    outs = []
    starts = [0, 37, *range(37 + feed, n, feed)]
    for a, z in zip(starts, [*starts[1:], n]):
        keys, values = layer.update(k[:, :, a:z], v[:, :, a:z])
        assert keys.shape[-2] <= sinks + window + (z - a) - 1
        assert layer.held <= sinks + window - 1
        assert layer.get_seq_length() == z
        assert layer.get_mask_sizes(1)[0] == layer.held + 1
        out, _ = streaming_llm_attention(
            module, q[:, :, a:z], keys, values, None, scaling=scaling, position_ids=pos[None, a:z]
        )
        outs.append(out)
    assert layer.held == sinks + window - 1 and layer.evicted == n - layer.held
    visible, qpos, kpos = streaming_layout(n, sinks, window)
    ref = dense_oracle(q0, k0, v, visible, qpos, kpos, inv_freq, scaling)
    torch.testing.assert_close(torch.cat(outs, dim=1), ref, atol=1e-5, rtol=1e-5)


def test_long_prefill_is_chunked_and_linear(inv_freq, monkeypatch):
    """A long prompt never scores a query chunk against more than sinks + chunk + window − 1 keys."""
    sinks, window, chunk, n = 4, 32, 64, 2000
    q0, k0, v = _qkv(n, b=1)
    pos = torch.arange(n)
    q, k = _rope(q0, pos, inv_freq), _rope(k0, pos, inv_freq)
    seen: list[int] = []
    real = sl._attend_chunk

    def spy(qc, k_sink, v_sink, k_win, *args, **kw):
        seen.append(k_sink.shape[-2] + k_win.shape[-2])
        return real(qc, k_sink, v_sink, k_win, *args, **kw)

    monkeypatch.setattr(sl, "_attend_chunk", spy)
    module = _fake_module(sinks, window, inv_freq, chunk=chunk)
    out, _ = streaming_llm_attention(module, q, k, v, None, scaling=0.25, position_ids=pos[None])
    assert len(seen) == math.ceil(n / chunk)
    assert max(seen) <= sinks + chunk + window - 1
    # spot-check the last query against the oracle's pattern
    visible, qpos, kpos = streaming_layout(n, sinks, window)
    i = n - 1
    ref_i = dense_oracle(q0[:, :, i - 40 :], k0, v, visible[i - 40 :], qpos[i - 40 :], kpos[i - 40 :], inv_freq, 0.25)
    torch.testing.assert_close(out[:, -1], ref_i[:, -1], atol=1e-5, rtol=1e-5)


def test_half_precision_keeps_dtype(inv_freq):
    n, sinks, window = 80, 4, 16
    q0, k0, v = _qkv(n, seed=4)
    pos = torch.arange(n)
    q, k = _rope(q0, pos, inv_freq), _rope(k0, pos, inv_freq)
    module = _fake_module(sinks, window, inv_freq, chunk=32)
    out, _ = streaming_llm_attention(
        module, q.bfloat16(), k.bfloat16(), v.bfloat16(), None, scaling=0.25, position_ids=pos[None]
    )
    assert out.dtype == torch.bfloat16
    visible, qpos, kpos = streaming_layout(n, sinks, window)
    ref = dense_oracle(q0, k0, v, visible, qpos, kpos, inv_freq, 0.25)
    torch.testing.assert_close(out.float(), ref, atol=5e-2, rtol=5e-2)


def test_attention_refuses_inconsistent_inputs(inv_freq):
    q0, k0, v = _qkv(10)
    module = _fake_module(4, 8, inv_freq)
    mask = torch.ones(2, 1, 10, 10, dtype=torch.bool)
    with pytest.raises(StreamingUnsupportedError, match="4D"):
        streaming_llm_attention(module, q0, k0, v, mask, position_ids=torch.arange(10)[None])
    per_row = torch.stack([torch.arange(10), torch.arange(10) + 1])
    with pytest.raises(StreamingUnsupportedError, match="padded"):
        streaming_llm_attention(module, q0, k0, v, None, position_ids=per_row)
    with pytest.raises(CompositionError, match="no streaming-llm context"):
        streaming_llm_attention(types.SimpleNamespace(), q0, k0, v, None)
    # keys evicted by a cache with a smaller window than the attention's
    layer = SinkWindowLayer(4, 3)
    keys, values = layer.update(k0, v)
    keys, values = layer.update(k0[:, :, :1], v[:, :, :1])
    with pytest.raises(StreamingUnsupportedError, match="window"):
        streaming_llm_attention(module, q0[:, :, :1], keys, values, None, position_ids=torch.tensor([[10]]))


# -- the cache layer -----------------------------------------------------------------------------------


def test_sink_window_layer_bookkeeping():
    layer = SinkWindowLayer(2, 4)
    assert layer.get_max_length() == 6 and layer.get_seq_length() == 0 and layer.nbytes == 0
    k = torch.arange(10.0).view(1, 1, 10, 1).expand(1, 2, 10, 3).contiguous()
    keys, _ = layer.update(k[:, :, :4], k[:, :, :4])
    assert keys.shape[-2] == 4 and layer.held == 4 and layer.evicted == 0
    layer.crop(-1)  # before any eviction crop works like DynamicLayer's
    assert layer.get_seq_length() == 3 and layer.held == 3
    keys, _ = layer.update(k[:, :, 3:10], k[:, :, 3:10])
    assert keys.shape[-2] == 10  # the whole prompt is returned for this forward …
    assert layer.keys[0, 0, :, 0].tolist() == [0, 1, 7, 8, 9]  # … then sinks + window − 1 are kept
    assert layer.held == 5 and layer.get_seq_length() == 10 and layer.evicted == 5
    assert layer.get_mask_sizes(1) == (6, 5)
    assert layer.nbytes == 2 * layer.keys.numel() * layer.keys.element_size()
    with pytest.raises(LongctxError, match="evicted"):
        layer.crop(-1)
    with pytest.raises(LongctxError, match="evicted"):
        layer.crop(2)  # the positive (transformers 5.0) convention: crop to 2 tokens
    layer.reset()
    assert layer.get_seq_length() == 0 and layer.held == 0 and layer.nbytes == 0


# -- the composed model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_identity_when_window_covers_sequence(tiny, arch, impl):
    """sinks + window >= T: every query sees every earlier token — the untouched model's logits.
    (Gemma 3's T = 60 exceeds its sliding window of 16, so its sliding layers must stay sliding, with
    the original implementation's function and mask.)"""
    lm = tiny(arch, attn_implementation=impl)
    ids = _ids(60)
    with torch.no_grad():
        base = lm.model(ids).logits
        with compose(lm, "attention=streaming-llm:sinks=4,window=56") as pipe:
            torch.testing.assert_close(pipe.forward(ids).logits, base, atol=1e-5, rtol=1e-5)
        with compose(lm, "attention=streaming-llm:sinks=4,window=40") as pipe:
            assert (pipe.forward(ids).logits - base).abs().max() > 1e-3  # and it can differ


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_prefill_equals_token_by_token(tiny, arch):
    """Chunked prefill of a long prompt gives the logits of streaming it token by token."""
    lm = tiny(arch)
    ids = _ids(90, seed=3)
    with torch.no_grad():
        base = lm.model(ids).logits
        with compose(lm, "attention=streaming-llm:sinks=4,window=16") as pipe:
            prefill = pipe.forward(ids).logits
            steps = _step_by_step(lm.model, ids, pipe.new_cache())
    torch.testing.assert_close(prefill, steps, atol=1e-5, rtol=1e-5)
    assert (prefill - base).abs().max() > 1e-3  # streaming is active (T > sinks + window)


class _Recorder(LogitsProcessor):
    """Records the cache's state after every forward of ``generate``."""

    def __init__(self, cache):
        self.cache = cache
        self.rows: list[tuple[int, list[int], int, int]] = []

    def __call__(self, input_ids, scores):
        layers = self.cache.layers
        held = [layer.held for layer in layers]
        tensors = sum(t.numel() * t.element_size() for layer in layers for t in (layer.keys, layer.values))
        assert cache_nbytes(self.cache) == tensors
        self.rows.append((input_ids.shape[1], held, self.cache.get_seq_length(), cache_nbytes(self.cache)))
        return scores


def test_cache_stays_bounded_during_long_generate(tiny_llama):
    sinks, window, n_prompt, n_new = 4, 16, 30, 70
    ids = _ids(n_prompt, seed=5)
    model = tiny_llama.model
    with compose(tiny_llama, f"attention=streaming-llm:sinks={sinks},window={window}") as pipe:
        cache = pipe.new_cache()
        rec = _Recorder(cache)
        with torch.no_grad():
            out = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new, do_sample=False,
                logits_processor=LogitsProcessorList([rec]), pad_token_id=0, **{cache_kwarg(model): cache},
            )  # fmt: skip
    assert out.shape[1] == n_prompt + n_new and len(rec.rows) == n_new
    cfg = model.config
    per_token = 2 * cfg.num_key_value_heads * cfg.head_dim * 4  # k + v, fp32
    for fed, held, seen, nbytes in rec.rows:
        assert seen == fed  # logical length = tokens fed
        assert all(h == min(fed, sinks + window - 1) for h in held)
        assert max(held) <= sinks + window
        assert nbytes == cfg.num_hidden_layers * min(fed, sinks + window - 1) * per_token
    assert len({row[3] for row in rec.rows}) == 1  # the held size never changes while decoding


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_greedy_generate_is_deterministic_and_matches_manual_decoding(tiny, arch):
    lm = tiny(arch)
    model = lm.model
    prompt = "It is a truth universally acknowledged, that"
    with compose(lm, "attention=streaming-llm:sinks=4,window=24") as pipe:
        g1 = pipe.generate(prompt, max_new_tokens=40)
        g2 = pipe.generate(prompt, max_new_tokens=40)
        g3 = pipe.generate(prompt, max_new_tokens=80)
        assert g1.text == g2.text and g1.new_tokens == 40
        assert g3.text.startswith(g1.text[:-4])
        # held bytes are the same after 40 and 80 new tokens: the decode step does not grow with T
        # (streamed layers hold sinks + window - 1 tokens, Gemma 3's sliding layers sliding_window - 1)
        cfg = model.config
        caps = [
            cfg.sliding_window - 1 if t == "sliding_attention" else 4 + 24 - 1
            for t in (getattr(cfg, "layer_types", None) or ["full_attention"] * cfg.num_hidden_layers)
        ]
        expected = sum(caps) * 2 * cfg.num_key_value_heads * cfg.head_dim * 4
        assert g1.kv_bytes == g3.kv_bytes == expected
        # generate (explicit positions from the mask) == a manual greedy loop (default positions)
        ids = pipe.encode(prompt)
        with torch.no_grad():
            out = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=40, do_sample=False, pad_token_id=0,
                **{cache_kwarg(model): pipe.new_cache()},
            )  # fmt: skip
            cache = pipe.new_cache()
            logits = model(ids, use_cache=True, **{cache_kwarg(model): cache}).logits
            manual = []
            for _ in range(40):
                nxt = logits[:, -1].argmax(-1, keepdim=True)
                manual.append(nxt)
                logits = model(nxt, use_cache=True, **{cache_kwarg(model): cache}).logits
        assert out[0, ids.shape[1] :].tolist() == torch.cat(manual, 1)[0].tolist()
        assert pipe.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True) == g1.text


def test_batch_without_padding_and_padding_refused(tiny_llama):
    ids = torch.cat([_ids(50, seed=1), _ids(50, seed=2)])
    with torch.no_grad(), compose(tiny_llama, "attention=streaming-llm:sinks=2,window=12") as pipe:
        both = pipe.forward(ids).logits
        for r in range(2):
            torch.testing.assert_close(both[r : r + 1], pipe.forward(ids[r : r + 1]).logits, atol=1e-5, rtol=1e-5)
        mask = torch.ones_like(ids)
        mask[1, :5] = 0
        with pytest.raises(StreamingUnsupportedError, match="padded"):
            pipe.forward(ids, attention_mask=mask)


# -- Gemma 3: sliding layers keep their own attention --------------------------------------------------


def test_gemma3_sliding_layers_untouched_full_layer_streams(tiny_gemma3):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    lm = tiny_gemma3
    model = lm.model
    ids = _ids(80, seed=7)
    attn = [layer.self_attn for layer in model.model.layers]

    def capture(store):
        hooks = [m.register_forward_hook(lambda m, a, o, i=i: store.__setitem__(i, o[0])) for i, m in enumerate(attn)]
        return hooks

    with torch.no_grad():
        base_out: dict[int, torch.Tensor] = {}
        hooks = capture(base_out)
        base = model(ids).logits
        for h in hooks:
            h.remove()
        with compose(lm, "attention=streaming-llm:sinks=4,window=16") as pipe:
            change = pipe.describe()["changes"]["attention"]
            assert change["streamed_layers"] == [3] and change["unchanged_layers"] == [0, 1, 2]
            cache = pipe.new_cache()
            kinds = [type(layer) for layer in cache.layers]
            assert kinds == [DynamicSlidingWindowLayer] * 3 + [SinkWindowLayer]
            out: dict[int, torch.Tensor] = {}
            hooks = capture(out)
            logits = pipe.forward(ids).logits
            for h in hooks:
                h.remove()
            for i in range(3):  # sliding layers: the original attention, bit for bit
                assert torch.equal(out[i], base_out[i])
            assert (out[3] - base_out[3]).abs().max() > 1e-3  # the full layer streams
            assert (logits - base).abs().max() > 1e-3
            # the installed function on a sliding module is sdpa itself
            fn = AttentionInterface()[change["implementation"]]
            q, k, v = torch.randn(1, 4, 5, 16), torch.randn(1, 1, 5, 16), torch.randn(1, 1, 5, 16)
            got, _ = fn(attn[0], q, k, v, None, scaling=0.25, sliding_window=16, position_ids=torch.arange(5)[None])
            want, _ = sdpa_attention_forward(attn[0], q, k, v, None, scaling=0.25, sliding_window=16)
            assert torch.equal(got, want)
        with compose(lm, "attention=streaming-llm:sinks=4,window=76,layers=all") as pipe:
            # every layer streams: the sliding layers now see 80 tokens instead of 16
            assert pipe.describe()["changes"]["attention"]["streamed_layers"] == [0, 1, 2, 3]
            assert all(isinstance(layer, SinkWindowLayer) for layer in pipe.new_cache().layers)
            assert (pipe.forward(ids).logits - base).abs().max() > 1e-3


# -- composition -----------------------------------------------------------------------------------------


class _OtherKV:
    """A test plugin with a second KV store."""

    @staticmethod
    @hookimpl
    def lc_register_kv_stores(register):
        from longctx.plugins.dynamic_kv import DynamicConfig, DynamicStore

        register("other-kv", config=DynamicConfig, build=DynamicStore, summary="test", paper="test")


def test_compose_errors(tiny_llama):
    reg = load_registry(extra_plugins=[("other-kv", _OtherKV)])
    with pytest.raises(CompositionError, match="requires kv=sink-window"):
        compose(tiny_llama, "attention=streaming-llm kv=other-kv", registry=reg)
    with pytest.raises(CompositionError, match="does not match"):
        compose(tiny_llama, "attention=streaming-llm:window=32 kv=sink-window:window=64")
    with pytest.raises(CompositionError, match="does not match"):
        compose(tiny_llama, "attention=streaming-llm:sinks=2 kv=sink-window:sinks=4")
    with pytest.raises(ParameterError):
        compose(tiny_llama, "attention=streaming-llm:sinks=-1")
    with pytest.raises(ParameterError):
        compose(tiny_llama, "kv=sink-window:window=0")
    with pytest.raises(ParameterError):
        compose(tiny_llama, "attention=streaming-llm:layers=sliding")
    assert tiny_llama.model.config._attn_implementation == "sdpa"  # nothing was changed


def test_compose_errors_on_models_without_rope(tiny_bert):
    with pytest.raises(IncompatibleModelError, match="rope"):
        compose(tiny_bert, "attention=streaming-llm")


def test_explicit_kv_dynamic_is_refused(tiny_llama):
    """An explicit kv=dynamic is not silently replaced by the requirement kv=sink-window."""
    with pytest.raises(CompositionError, match="requires kv=sink-window, but kv=dynamic was chosen"):
        compose(tiny_llama, "attention=streaming-llm kv=dynamic")
    with pytest.raises(CompositionError, match="requires attention=streaming-llm, but attention=sdpa"):
        compose(tiny_llama, "kv=sink-window attention=sdpa")
    assert tiny_llama.model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("words", ["attention=streaming-llm:sinks=2,window=32", "kv=sink-window:sinks=2,window=32"])
def test_requirements_fill_the_other_half_with_same_params(tiny_llama, words):
    with compose(tiny_llama, words) as pipe:
        json.dumps(pipe.describe())
        comps = {c["slot"]: c for c in pipe.describe()["components"]}
        assert comps["attention"]["technique"] == "streaming-llm"
        assert comps["kv"]["technique"] == "sink-window"
        for slot in ("attention", "kv"):
            assert comps[slot]["params"]["sinks"] == 2 and comps[slot]["params"]["window"] == 32
        assert pipe.max_context is None and pipe.describe()["max_context"] is None
        assert pipe.describe()["kv"] == {
            "technique": "sink-window", "sinks": 2, "window": 32, "layers": "full", "evicts": True,
            "max_tokens_per_layer": 34,
        }  # fmt: skip


def test_undo_restores_logits_and_attention(tiny_llama):
    model = tiny_llama.model
    ids = _ids(70)
    with torch.no_grad():
        base = model(ids).logits
        pipe = compose(tiny_llama, "attention=streaming-llm:sinks=4,window=16")
        key = pipe.describe()["changes"]["attention"]["implementation"]
        assert model.config._attn_implementation == key
        assert (model(ids).logits - base).abs().max() > 1e-3
        pipe.undo()
        assert model.config._attn_implementation == "sdpa"
        assert key not in AttentionInterface()
        assert all("_lc" not in layer.self_attn.__dict__ for layer in model.model.layers)
        assert torch.equal(model(ids).logits, base)
        with pytest.raises(LongctxError, match="undone"):
            pipe.forward(ids)
