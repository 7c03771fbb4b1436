"""Absolute-position techniques (issue 5): ``ape-interpolation`` (LongEmbed PI) and ``long-clip``
(knowledge-preserved stretching) on BERT-style encoders."""

from __future__ import annotations

import pytest
import torch

import longctx
from longctx.ape import interpolate_rows, stretched_table
from longctx.errors import IncompatibleModelError
from longctx.models import tiny_model
from longctx.plugins.ape_interpolation import APEInterpolation, APEInterpolationConfig
from longctx.plugins.long_clip import LongCLIP, LongCLIPConfig, long_clip_positions
from longctx.testing import random_ids as _ids

TECHNIQUES = ("ape-interpolation", "long-clip")

#: a small known table: row i = (i, 10·i², −i)
KNOWN = torch.tensor([[float(i), 10.0 * i * i, -float(i)] for i in range(6)])


def _hidden(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).last_hidden_state


# -- the tables, by hand ---------------------------------------------------------------------------------


def test_interpolation_table_matches_hand_computation():
    pi = APEInterpolation(APEInterpolationConfig(factor=2.0))
    new = stretched_table(KNOWN, pi.positions)
    assert new.shape == (12, 3)
    for j in range(0, 12, 2):  # integer j/s: the trained rows exactly
        assert torch.equal(new[j], KNOWN[j // 2])
    for j in range(1, 10, 2):  # midpoints: averages of the neighbours
        torch.testing.assert_close(new[j], (KNOWN[j // 2] + KNOWN[j // 2 + 1]) / 2)
    assert torch.equal(new[11], KNOWN[5])  # 5.5 clamped at the last trained row
    # s = 4: j = 5 reads 1.25 → 0.75·E[1] + 0.25·E[2]
    new4 = stretched_table(KNOWN, APEInterpolation(APEInterpolationConfig(factor=4.0)).positions)
    assert new4.shape[0] == 24
    torch.testing.assert_close(new4[5], 0.75 * KNOWN[1] + 0.25 * KNOWN[2])
    # nearest: 1.25 → row 1, 1.75 → row 2
    near = stretched_table(
        KNOWN, APEInterpolation(APEInterpolationConfig(factor=4.0, mode="nearest")).positions, "nearest"
    )
    assert torch.equal(near[5], KNOWN[1]) and torch.equal(near[7], KNOWN[2])


def test_long_clip_table_keeps_the_first_rows_and_stretches_the_rest():
    lc = LongCLIP(LongCLIPConfig(keep=2, factor=4.0))
    new = stretched_table(KNOWN, lc.positions)
    assert new.shape[0] == 2 + (6 - 2) * 4  # keep + (L − keep)·λ
    assert torch.equal(new[:2], KNOWN[:2])
    assert torch.equal(new[2], KNOWN[2]) and torch.equal(new[6], KNOWN[3]) and torch.equal(new[14], KNOWN[5])
    torch.testing.assert_close(new[4], (KNOWN[2] + KNOWN[3]) / 2)  # 2 + 2/4 = 2.5
    torch.testing.assert_close(new[3], 0.75 * KNOWN[2] + 0.25 * KNOWN[3])  # 2.25
    assert torch.equal(new[-1], KNOWN[5])  # clamped
    # the paper's CLIP numbers: 77 positions, keep 20, λ 4 → 248
    assert long_clip_positions(77, 20, 4.0).shape[0] == 248


def test_interpolate_rows_is_exact_at_integer_positions():
    t = torch.randn(7, 5)
    assert torch.equal(interpolate_rows(t, torch.arange(7, dtype=torch.float64)), t)


# -- composed on tiny BERT -------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["positional=ape-interpolation:factor=1", "positional=long-clip:factor=1"])
def test_factor_one_is_the_identity(spec):
    lm = tiny_model("bert")
    ids = _ids(48)
    base = _hidden(lm.model, ids)
    table = lm.model.embeddings.position_embeddings.weight.detach().clone()
    with longctx.compose(lm, spec) as pipe:
        assert torch.equal(lm.model.embeddings.position_embeddings.weight, table)
        assert pipe.max_context == 64
        assert torch.equal(_hidden(lm.model, ids), base)


@pytest.mark.parametrize(
    "spec, size",
    [("positional=ape-interpolation:factor=4", 256), ("positional=long-clip:keep=20,factor=4", 20 + 44 * 4)],
)
def test_longer_inputs_run_and_undo_restores(spec, size):
    lm = tiny_model("bert")
    emb = lm.model.embeddings
    ids, long_ids = _ids(48, seed=1), _ids(size, seed=2)
    base = _hidden(lm.model, ids)
    before = (emb.position_embeddings, emb.position_ids.clone(), emb.token_type_ids.clone())
    with pytest.raises((IndexError, RuntimeError)):
        _hidden(lm.model, long_ids)
    pipe = longctx.compose(lm, spec)
    assert pipe.max_context == size and lm.model.config.max_position_embeddings == size
    assert emb.position_embeddings.num_embeddings == size and emb.position_ids.shape[-1] == size
    out = _hidden(lm.model, long_ids)
    assert out.shape == (1, size, 64) and torch.isfinite(out).all()
    pipe.undo()
    assert emb.position_embeddings is before[0] and lm.model.config.max_position_embeddings == 64
    assert torch.equal(emb.position_ids, before[1]) and torch.equal(emb.token_type_ids, before[2])
    assert torch.equal(_hidden(lm.model, ids), base)
    with pytest.raises((IndexError, RuntimeError)):
        _hidden(lm.model, long_ids)


@pytest.mark.parametrize("name", TECHNIQUES)
def test_rope_only_models_are_refused(name):
    with pytest.raises(IncompatibleModelError):
        longctx.compose(tiny_model("llama"), f"positional={name}")


def test_keep_beyond_the_table_is_refused():
    lm = tiny_model("bert")
    with pytest.raises(IncompatibleModelError):
        longctx.compose(lm, "positional=long-clip:keep=64")
    assert lm.model.embeddings.position_embeddings.num_embeddings == 64


@pytest.mark.parametrize("name", TECHNIQUES)
def test_conformance(name):
    from longctx.contrib.conformance import check_technique

    report = check_technique("positional", name)
    assert report.ok, report


# -- all-MiniLM-L6-v2 ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    return longctx.load_model("all-minilm-l6-v2")


@pytest.mark.real_model
@pytest.mark.parametrize("spec", ["positional=ape-interpolation:factor=4", "positional=long-clip"])
def test_minilm_embeds_1500_tokens(minilm, spec):
    text = " ".join(f"word{i % 97} is number {i}." for i in range(600))
    enc = minilm.tokenizer(text, return_tensors="pt")
    ids = enc["input_ids"][:, :1500]
    assert ids.shape[1] == 1500
    with longctx.compose(minilm, spec) as pipe:
        assert pipe.max_context >= 1500
        with torch.no_grad():
            hidden = minilm.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    emb = hidden.mean(dim=1)[0]
    assert emb.shape == (384,) and torch.isfinite(emb).all()
    assert minilm.model.config.max_position_embeddings == 512
