"""E²-LLM (Liu et al. 2024, arXiv:2401.06951): the position formulas at chosen points, the (g, t)
distributions, determinism, the augmenter's records, and a tiny Llama fed the emitted positions against
the same model carrying position interpolation with the record's scale."""

from __future__ import annotations

import itertools
from collections import Counter
from importlib.metadata import entry_points

import numpy as np
import pytest
import torch

from longctx.errors import ParameterError
from longctx.models import tiny_model
from longctx.params import make_config
from longctx.plugins.e2_llm import (
    E2LLMAugmenter,
    E2LLMConfig,
    E2LLMInference,
    e2_llm_batch,
    e2_llm_inv_freq,
    e2_llm_positions,
    sample_scale_offset,
)
from longctx.plugins.pi import pi_inv_freq
from longctx.runtime import compose
from longctx.testing import random_ids


def test_registered_in_both_families():
    from longctx.registry import load_registry

    eps = [ep for ep in entry_points(group="longctx.plugins") if ep.name == "e2-llm"]
    reg = load_registry(entry_points_=eps, strict=True)
    assert reg.get("augmentation", "e2-llm").build is E2LLMAugmenter
    assert reg.get("positional", "e2-llm").build is E2LLMInference


# -- (a) the formulas -----------------------------------------------------------------------------------------


def test_positions_at_chosen_points():
    """n = 8, g = 2, t = 5, split at ⌊0.5·8⌋ = 4: m' = 0 1 2 3 | 9 10 11 12, rotary positions m'/2."""
    ids, scaled = e2_llm_positions(8, scale=2, offset=5)
    assert ids.tolist() == [0, 1, 2, 3, 9, 10, 11, 12]
    assert scaled.tolist() == [0.0, 0.5, 1.0, 1.5, 4.5, 5.0, 5.5, 6.0]
    # split 0.25 of 8: the offset starts at token 2; split 1: no offset (plain PI); g = 1, t = 0: identity
    assert e2_llm_positions(8, scale=4, offset=3, split=0.25)[0].tolist() == [0, 1, 5, 6, 7, 8, 9, 10]
    assert e2_llm_positions(5, scale=4, offset=3, split=1.0)[1].tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    assert e2_llm_positions(6, scale=1, offset=0)[1].tolist() == list(range(6))
    with pytest.raises(ParameterError):
        e2_llm_positions(4, scale=0.5, offset=0)


def test_scale_and_offset_distributions():
    rng = np.random.Generator(np.random.PCG64(0))
    draws = [sample_scale_offset(rng, seq_len=100, min_scale=2, max_scale=5) for _ in range(4000)]
    gs = Counter(g for g, _ in draws)
    assert set(gs) == {2, 3, 4, 5} and all(900 < c < 1100 for c in gs.values())  # uniform over the integers
    assert all(0 <= t <= (g - 1) * 100 for g, t in draws)  # positions stay below g·R
    # t uniform over 0 … (g − 1)·R: for g = 5 its mean is 200, both halves of the range are used
    t5 = np.array([t for g, t in draws if g == 5])
    assert abs(t5.mean() - 200) < 15 and t5.max() > 380 and t5.min() < 20
    capped = [sample_scale_offset(rng, seq_len=100, max_scale=5, max_offset=30) for _ in range(300)]
    assert max(t for _, t in capped) == 30
    assert {sample_scale_offset(rng, seq_len=100, min_scale=1, max_scale=1) for _ in range(20)} == {(1, 0)}
    with pytest.raises(ParameterError):
        sample_scale_offset(rng, seq_len=100, min_scale=3, max_scale=2)


def test_batch_is_deterministic_and_row_wise():
    a = e2_llm_batch(3, 32, seed=7, step=2, max_scale=8)
    b = e2_llm_batch(3, 32, seed=7, step=2, max_scale=8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert set(a) == {"position_ids", "scale", "offset", "scaled_position_ids"}
    assert a["position_ids"].dtype == torch.int64 and a["scaled_position_ids"].dtype == torch.float32
    # row r depends on (seed, step, r) only, not on the batch size
    one = e2_llm_batch(1, 32, seed=7, step=2, max_scale=8)
    assert torch.equal(one["position_ids"][0], a["position_ids"][0])
    # each row follows the formula with its own (g, t)
    for r in range(3):
        ids, scaled = e2_llm_positions(32, scale=float(a["scale"][r]), offset=int(a["offset"][r]))
        assert a["position_ids"][r].tolist() == ids.tolist()
        assert torch.allclose(a["scaled_position_ids"][r], torch.tensor(scaled, dtype=torch.float32))
    other = e2_llm_batch(3, 32, seed=7, step=3, max_scale=8)
    assert not torch.equal(other["position_ids"], a["position_ids"])


# -- (b) the augmenter ------------------------------------------------------------------------------------------


def _docs(n=10, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(16, 256, size=int(rng.integers(1, 40))).tolist() for _ in range(n)]


def test_augmenter_records():
    cfg = make_config(E2LLMConfig, {"seq_len": 32, "max_scale": 6}, technique="e2-llm")
    aug = E2LLMAugmenter(cfg)
    docs = _docs()
    recs = list(aug.augment(iter(docs), seed=3))
    flat = [t for d in docs for t in d]
    assert [t for r in recs for t in r.input_ids] == flat  # packed, nothing lost or added
    assert all(len(r.input_ids) == 32 for r in recs[:-1]) and 0 < len(recs[-1].input_ids) <= 32
    for i, r in enumerate(recs):
        m = r.meta
        assert m["index"] == i and m["seed"] == 3 and 1 <= m["scale"] <= 6 and 0 <= m["offset"] <= (m["scale"] - 1) * 32
        ids, scaled = e2_llm_positions(len(r.input_ids), scale=m["scale"], offset=m["offset"])
        assert m["position_ids"] == ids.tolist() and m["scaled_position_ids"] == scaled.tolist()
        assert m["split_at"] == len(r.input_ids) // 2
        assert list(r.loss_mask) == [0] + [1] * (len(r.input_ids) - 1)
        assert aug.record(r.input_ids, seed=3, index=i) == r  # rebuilt from its tokens alone
    assert len({(r.meta["scale"], r.meta["offset"]) for r in recs}) > 1  # per-sample augmentation
    again = list(E2LLMAugmenter(cfg).augment(iter(docs), seed=3))
    assert [(r.input_ids, r.meta) for r in again] == [(r.input_ids, r.meta) for r in recs]
    assert [r.meta["scale"] for r in aug.augment(iter(docs), seed=4)] != [r.meta["scale"] for r in recs]


def test_augmenter_streams_and_eod():
    pulled = []

    def stream():
        for i in itertools.count():
            pulled.append(i)
            yield [20 + i % 7] * 10

    aug = E2LLMAugmenter(E2LLMConfig(seq_len=25, eod_token=2))
    it = aug.augment(stream(), seed=0)
    assert pulled == []
    first = next(it)
    assert len(pulled) == 3  # 11 tokens per document with its EOD: 3 documents fill 25
    assert first.input_ids[10] == 2 and first.input_ids[21] == 2
    with pytest.raises(ParameterError):
        E2LLMConfig(min_scale=4, max_scale=2)


# -- (c) inference, and the emitted positions on a tiny Llama --------------------------------------------------


def test_inference_frequencies_are_position_interpolation():
    lm = tiny_model("llama")
    cfg = lm.model.config
    cfg_g = type(cfg)(**{**cfg.to_dict(), "rope_parameters": {**cfg.rope_parameters, "factor": 4.0}})
    assert torch.equal(e2_llm_inv_freq(cfg_g)[0], pi_inv_freq(cfg_g)[0])
    ids = random_ids(40)
    with torch.no_grad():
        base = lm.model(ids).logits
    pipe = compose(lm, "positional=e2-llm:factor=1")
    with torch.no_grad():
        assert torch.equal(lm.model(ids).logits, base)
    pipe.undo()
    pipe = compose(lm, "positional=e2-llm:factor=4")
    assert pipe.max_context == 4 * 256
    with torch.no_grad():
        want = lm.model(ids).logits
    pipe.undo()
    with compose(lm, "positional=e2-llm:factor=4,fp32_rotation=true") as pipe:  # inherited from ScaledRope
        with torch.no_grad():
            assert torch.equal(lm.model(ids).logits, want)  # a no-op in a float32 model
        assert "fp32_rotation" in pipe.describe()["changes"]["positional"]


def test_emitted_positions_equal_the_interpolated_rotary():
    """A record's scaled_position_ids fed to the unchanged model give the logits of the model carrying PI
    with the record's g, fed the integer position_ids (explicit attention mask in both)."""
    aug = E2LLMAugmenter(E2LLMConfig(seq_len=48, min_scale=3, max_scale=3))
    rec = next(aug.augment([list(range(20, 120))], seed=1))
    g, t = rec.meta["scale"], rec.meta["offset"]
    assert g == 3 and t > 0
    ids = torch.tensor([rec.input_ids])
    mask = torch.ones_like(ids)
    lm = tiny_model("llama")
    with torch.no_grad():
        fed = lm.model(ids, attention_mask=mask, position_ids=torch.tensor([rec.meta["scaled_position_ids"]])).logits
        plain = lm.model(ids, attention_mask=mask).logits
    compose(lm, f"positional=e2-llm:factor={g}")
    with torch.no_grad():
        pi = lm.model(ids, attention_mask=mask, position_ids=torch.tensor([rec.meta["position_ids"]])).logits
    assert torch.allclose(fed, pi, atol=1e-5)
    assert not torch.allclose(fed, plain, atol=1e-3)  # the augmentation did change what the model sees


def test_per_row_scales_in_one_batch():
    """e2_llm_batch rows with different g in one forward equal each row through its own PI model."""
    b = e2_llm_batch(2, 24, seed=1, step=0, min_scale=2, max_scale=6)
    assert b["scale"][0] != b["scale"][1]
    ids = random_ids(24, seed=1, b=2)
    lm = tiny_model("qwen2")
    with torch.no_grad():
        together = lm.model(ids, attention_mask=torch.ones_like(ids), position_ids=b["scaled_position_ids"]).logits
    for r in range(2):
        pipe = compose(lm, f"positional=e2-llm:factor={float(b['scale'][r])}")
        with torch.no_grad():
            row = lm.model(
                ids[r : r + 1],
                attention_mask=torch.ones_like(ids[r : r + 1]),
                position_ids=b["position_ids"][r : r + 1],
            )
        assert torch.allclose(together[r], row.logits[0], atol=1e-5)
        pipe.undo()
