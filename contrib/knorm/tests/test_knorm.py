"""Tests of the ``knorm`` KV store: the longctx conformance contract, plus unit tests of its own.

The oracle for the model-level tests is transformers' own attention over *exactly the kept keys*: a
plain ``DynamicCache`` filled with the tensors the knorm cache holds, fed the same tokens at the same
absolute positions (``position_ids`` given explicitly), must give the same logits. Selection is checked
against a per-(row, head) Python loop.
"""

from __future__ import annotations

import copy

import pytest
import torch
from longctx_knorm import KnormConfig, KnormLayer, KnormStore, knorm_keep_indices
from longctx_knorm.contract import KnormContract
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.cache_utils import Cache, DynamicLayer, DynamicSlidingWindowLayer

from longctx.errors import CompositionError, LongctxError, ParameterError
from longctx.kvcache import cache_kwarg, cache_nbytes, dynamic_cache
from longctx.models import tiny_model
from longctx.runtime import compose

# -- the conformance contract (longctx.contrib.conformance) --------------------------------------------


class TestKnorm(KnormContract):
    """One test per check of the kit's KV contract (static checks included), with the declarations in
    ``longctx_knorm/contract.py``: ``pytest -k budget_respected`` selects one."""


# -- helpers -----------------------------------------------------------------------------------------


def _ids(n: int, seed: int = 0, b: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, 250, (b, n), generator=g)


def _loop_keep(keys: torch.Tensor, budget: int, window: int) -> list[list[list[int]]]:
    """The kept indices per (row, head) by a plain loop: the ``budget − window`` smallest norms among the
    older tokens (earlier token first on ties), then the ``window`` most recent, ascending."""
    b, h, n, _ = keys.shape
    out = []
    for r in range(b):
        rows = []
        for j in range(h):
            if n <= budget:
                rows.append(list(range(n)))
                continue
            recent = min(window, budget)
            older = n - recent
            norms = [float(torch.linalg.vector_norm(keys[r, j, i].double())) for i in range(older)]
            best = sorted(range(older), key=lambda i: (norms[i], i))[: budget - recent]
            rows.append(sorted(best) + list(range(older, n)))
        out.append(rows)
    return out


def _snapshot(cache: Cache) -> Cache:
    """A transformers cache holding copies of exactly what ``cache`` holds, layer by layer: the oracle."""
    layers = []
    for layer in cache.layers:
        if isinstance(layer, KnormLayer):
            new = DynamicLayer()
            if layer.is_initialized:
                new.lazy_initialization(layer.keys, layer.values)
                new.keys, new.values = layer.keys.clone(), layer.values.clone()
        else:  # a sliding layer: transformers' own, copied as is
            new = copy.deepcopy(layer)
        layers.append(new)
    return Cache(layers=layers)


# -- selection -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "budget", "window"), [(40, 12, 0), (40, 12, 5), (40, 12, 12), (10, 12, 3), (13, 12, 0)])
def test_selection_matches_loop_oracle(n, budget, window):
    g = torch.Generator().manual_seed(n + budget + window)
    keys = torch.randn(2, 3, n, 8, generator=g) * torch.rand(2, 3, n, 1, generator=g) * 4
    keep = knorm_keep_indices(keys, budget, window)
    assert keep.shape == (2, 3, min(n, budget))
    assert keep.tolist() == _loop_keep(keys, budget, window)


def test_selection_keeps_lowest_norms_per_head_in_order():
    # head 0: norms grow with the position; head 1: they shrink — so the heads keep opposite ends
    n, budget = 10, 4
    scale = torch.arange(1.0, n + 1)
    keys = torch.ones(1, 2, n, 4)
    keys[0, 0] *= scale[:, None]
    keys[0, 1] *= scale.flip(0)[:, None]
    keep = knorm_keep_indices(keys, budget)
    assert keep[0, 0].tolist() == [0, 1, 2, 3]
    assert keep[0, 1].tolist() == [6, 7, 8, 9]
    # ties (equal norms) go to the earlier token; the window is kept whatever its norms
    flat = torch.ones(1, 1, n, 4)
    assert knorm_keep_indices(flat, budget).tolist() == [[[0, 1, 2, 3]]]
    assert knorm_keep_indices(keys[:, :1], budget, window=2).tolist() == [[[0, 1, 8, 9]]]


def test_selection_in_bfloat16_uses_fp32_norms():
    g = torch.Generator().manual_seed(3)
    keys = torch.randn(1, 2, 50, 16, generator=g)
    assert torch.equal(knorm_keep_indices(keys.bfloat16(), 20), knorm_keep_indices(keys.bfloat16().float(), 20))


# -- the cache layer -------------------------------------------------------------------------------


def test_layer_bookkeeping_crop_and_reset():
    layer = KnormLayer(budget=5, window=1)
    assert layer.get_seq_length() == 0 and layer.held == 0 and layer.nbytes == 0 and layer.get_max_length() == 5
    norms = torch.tensor([1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0, 6.0, 5.0, 0.5])
    k = norms.view(1, 1, 10, 1).expand(1, 2, 10, 3).contiguous()
    v = torch.arange(10.0).view(1, 1, 10, 1).expand(1, 2, 10, 3).contiguous()
    keys, _ = layer.update(k[:, :, :4], v[:, :, :4])
    assert keys.shape[-2] == 4 and layer.held == 4 and layer.evicted == 0 and layer.is_croppable
    layer.crop(-1)  # before any eviction crop works, in both conventions
    assert layer.get_seq_length() == 3 and layer.held == 3
    layer.crop(2)
    assert layer.get_seq_length() == 2 and layer.keys[0, 0, :, 0].tolist() == [1.0, 9.0]
    layer.crop(-0)
    layer.crop(7)  # longer than held: nothing to do
    assert layer.get_seq_length() == 2
    keys, _ = layer.update(k[:, :, 2:10], v[:, :, 2:10])
    assert keys.shape[-2] == 10  # the whole pass is attended over …
    # … then the 4 lowest norms among tokens 0..8 (1, 2, 3, 4 → tokens 0, 2, 4, 6) plus the newest (9)
    assert layer.values[0, 0, :, 0].tolist() == [0, 2, 4, 6, 9]
    assert layer.keys[0, 1, :, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 0.5]
    assert layer.held == 5 and layer.get_seq_length() == 10 and layer.evicted == 5 and not layer.is_croppable
    assert layer.get_mask_sizes(1) == (6, 5) and layer.get_mask_sizes(torch.arange(10, 13)) == (8, 5)
    assert layer.nbytes == sum(t.numel() * t.element_size() for t in (layer.keys, layer.values))
    with pytest.raises(LongctxError, match="evicted 5"):
        layer.crop(-1)
    layer.crop(0 - 0)  # removing nothing is always fine
    layer.reset()
    assert layer.get_seq_length() == 0 and layer.held == 0 and layer.nbytes == 0 and layer.is_croppable
    layer.update(k[:, :, :3], v[:, :, :3])
    assert layer.get_seq_length() == 3 and layer.held == 3


@pytest.mark.parametrize("feed", [1, 7])
def test_budget_respected_after_every_update(feed):
    budget, window, n = 16, 4, 60
    layer = KnormLayer(budget, window)
    g = torch.Generator().manual_seed(feed)
    k, v = torch.randn(2, 2, n, 8, generator=g), torch.randn(2, 2, n, 8, generator=g)
    for a in range(0, n, feed):
        z = min(a + feed, n)
        before = layer.held
        keys, _ = layer.update(k[:, :, a:z], v[:, :, a:z])
        assert keys.shape[-2] == before + (z - a)
        assert layer.held == min(z, budget) and layer.get_seq_length() == z
        # the newest `window` tokens are always held
        assert torch.equal(layer.values[..., -min(window, z) :, :], v[:, :, max(0, z - window) : z])


def test_layer_refuses_bad_sizes():
    with pytest.raises(ValueError):
        KnormLayer(0)
    with pytest.raises(ValueError):
        KnormLayer(4, window=5)


# -- config and composition ------------------------------------------------------------------------


def test_config_defaults_and_validation():
    assert KnormConfig() == KnormConfig(budget=1024, window=0)
    with pytest.raises(ParameterError, match="budget"):
        KnormConfig(budget=0)
    with pytest.raises(ParameterError, match="window must be <= budget"):
        KnormConfig(budget=8, window=9)
    lm = tiny_model("llama")
    with pytest.raises(ParameterError, match="window"):
        compose(lm, "kv=knorm:budget=8,window=9")
    with pytest.raises(ParameterError, match="unknown parameter"):
        compose(lm, "kv=knorm:ratio=0.5")
    with pytest.raises(CompositionError, match="streaming-llm"):
        compose(lm, "kv=knorm attention=streaming-llm")


# -- on a model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2"])
@pytest.mark.parametrize("window", [0, 3])
def test_decoding_after_eviction_equals_dense_attention_over_kept_keys(arch, window):
    """Prefill (evicting), then chunks of 5 and single tokens: each pass gives the logits of transformers'
    own attention over exactly the kept keys at their absolute positions. This checks the default sdpa
    mask against the per-head kept sets, including a multi-token pass over an evicted cache."""
    lm = tiny_model(arch)
    model = lm.model
    budget, n = 24, 90
    ids = _ids(n, seed=1)
    cache = KnormStore(KnormConfig(budget=budget, window=window)).new_cache(model)
    kw = cache_kwarg(model)
    fed = 0
    with torch.no_grad():
        for size in (40, 5, 1, 1, 5, 1):
            chunk = ids[:, fed : fed + size]
            oracle_cache = _snapshot(cache)
            mask = torch.ones(1, fed + size, dtype=torch.long)
            pos = torch.arange(fed, fed + size)[None]
            want = model(chunk, attention_mask=mask, position_ids=pos, use_cache=True, **{kw: oracle_cache}).logits
            got = model(chunk, attention_mask=mask, use_cache=True, **{kw: cache})
            torch.testing.assert_close(got.logits, want, atol=1e-5, rtol=1e-5)
            fed += size
            knorm_layers = [layer for layer in cache.layers if isinstance(layer, KnormLayer)]
            assert knorm_layers and all(layer.held == min(fed, budget) for layer in knorm_layers)
            assert cache.get_seq_length() == fed
    # eviction happened, and it differs from the dense cache
    with torch.no_grad():
        dense = model(ids[:, :fed], use_cache=True, **{kw: dynamic_cache(model)}).logits[:, -1]
    assert (got.logits[:, -1] - dense).abs().max() > 1e-4


def test_prefill_keeps_the_lowest_norm_keys_of_each_head():
    """After a one-pass prefill each KV head holds exactly its own lowest-norm keys (the prefill itself
    attends densely, so the keys it produced equal those of a dynamic cache), and the heads differ."""
    lm = tiny_model("llama")
    ids = _ids(80, seed=2)
    kw = cache_kwarg(lm.model)
    cache = KnormStore(KnormConfig(budget=16)).new_cache(lm.model)
    full = dynamic_cache(lm.model)
    with torch.no_grad():
        lm.model(ids, use_cache=True, **{kw: cache})
        lm.model(ids, use_cache=True, **{kw: full})
    for layer, ref in zip(cache.layers, full.layers):
        keep = torch.tensor(_loop_keep(ref.keys, 16, 0))
        assert keep.shape[1] == 2 and keep[0, 0].tolist() != keep[0, 1].tolist()
        idx = keep[..., None].expand(-1, -1, -1, ref.keys.shape[-1])
        assert torch.equal(layer.keys, ref.keys.gather(2, idx))
        assert torch.equal(layer.values, ref.values.gather(2, idx))


class _Recorder(LogitsProcessor):
    def __init__(self, cache):
        self.cache = cache
        self.rows: list[tuple[int, list[int], int, int]] = []

    def __call__(self, input_ids, scores):
        held = [layer.held if isinstance(layer, KnormLayer) else -1 for layer in self.cache.layers]
        tensors = sum(t.numel() * t.element_size() for layer in self.cache.layers for t in (layer.keys, layer.values))
        assert cache_nbytes(self.cache) == tensors
        self.rows.append((input_ids.shape[1], held, self.cache.get_seq_length(), cache_nbytes(self.cache)))
        return scores


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_generate_keeps_the_cache_bounded(arch):
    budget, n_prompt, n_new = 20, 60, 30
    lm = tiny_model(arch)
    ids = _ids(n_prompt, seed=5)
    with compose(lm, f"kv=knorm:budget={budget},window=4") as pipe:
        cache = pipe.new_cache()
        kinds = {type(layer) for layer in cache.layers}
        assert KnormLayer in kinds
        if arch == "gemma3":  # sliding layers keep transformers' own window layer
            assert [type(layer) for layer in cache.layers] == [DynamicSlidingWindowLayer] * 3 + [KnormLayer]
        rec = _Recorder(cache)
        with torch.no_grad():
            lm.model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new, do_sample=False, pad_token_id=0,
                logits_processor=LogitsProcessorList([rec]), **{cache_kwarg(lm.model): cache},
            )  # fmt: skip
    assert len(rec.rows) == n_new
    for length, held, seen, _nbytes in rec.rows:
        assert seen == length
        assert all(h == budget for h in held if h >= 0)
    assert len({nbytes for *_, nbytes in rec.rows}) == 1  # flat memory while decoding


def test_no_eviction_equals_dynamic_cache():
    lm = tiny_model("gemma3")
    prompt = "The quick brown fox jumps over the lazy dog. " * 3
    with compose(lm, "kv=dynamic") as pipe:
        dense = pipe.generate(prompt, max_new_tokens=12)
    with compose(lm, "kv=knorm:budget=256") as pipe:
        same = pipe.generate(prompt, max_new_tokens=12)
    with compose(lm, "kv=knorm:budget=16") as pipe:
        small = pipe.generate(prompt, max_new_tokens=12)
        assert pipe.describe()["kv"]["technique"] == "knorm"
    assert same.text == dense.text and same.kv_bytes == dense.kv_bytes
    assert small.kv_bytes < dense.kv_bytes
