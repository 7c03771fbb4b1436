"""Untie the Knots augmenter: hand-computed records, token preservation, untying targets, streaming."""

from __future__ import annotations

import itertools
from collections import Counter
from importlib.metadata import entry_points

import numpy as np
import pytest

from longctx.errors import ParameterError
from longctx.params import make_config
from longctx.plugins.untie_knots import (
    D_ID,
    S_CLOSE,
    S_OPEN,
    Piece,
    UntieTheKnots,
    UntieTheKnotsConfig,
    pack,
    untie,
)

K = (900, 901, 902, 903)  # knots for n_chunks = 3: end of chunk 1, start of 2, end of 2, start of 3
D, D_, S, s_, S_ = SORT = (910, 911, 912, 913, 914)  # <D> </D> <S> <s> </S>
IDS = tuple(range(500, 510))
EOD = 999
SPECIAL = set(K) | set(SORT) | set(IDS) | {EOD}


def cfg(**kw):
    base = dict(
        seq_len=64,
        chunk_prob=1.0,
        n_chunks=3,
        knot_tokens=K,
        sort_tokens=SORT,
        id_tokens=IDS,
        id_length=2,
        eod_token=EOD,
    )
    base.update(kw)
    return UntieTheKnotsConfig(**base)


def documents(n=12, seed=0):
    """Documents of varied lengths with token ids below 500 (disjoint from the special ids)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 500, size=int(rng.integers(1, 60))).tolist() for _ in range(n)]


def test_registered_as_augmenter():
    from longctx.registry import load_registry

    eps = [ep for ep in entry_points(group="longctx.plugins") if ep.name == "untie-knots"]
    reg = load_registry(entry_points_=eps, strict=True)
    assert reg.get("augmentation", "untie-knots").build is UntieTheKnots


def test_hand_computed_record_two_chunks():
    """One document [10 11 12 13] cut in two equal chunks; the last chunk of the last document stays
    last, so the order is fixed. ID alphabet of one token (50), so every ID is [50]."""
    c = UntieTheKnotsConfig(
        seq_len=4,
        chunk_prob=1.0,
        n_chunks=2,
        knot_tokens=(80, 81),
        sort_tokens=SORT,
        id_tokens=(50,),
        id_length=1,
    )
    (rec,) = UntieTheKnots(c).augment([[10, 11, 12, 13]])
    assert list(rec.input_ids) == [D, 50, D_, 10, 11, 80, D, 50, D_, 81, 12, 13, S, 50, s_, 50, S_]
    # not trained: position 0; <D> 50 </D> as label and as input (so the token after </D> too); knots
    # as label and input; <S> as label; the ID list "50 <s> 50 </S>" is trained
    assert list(rec.loss_mask) == [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1]
    assert rec.meta["order"] == [[0, 0], [0, 1]]
    assert [ch["source"] for ch in rec.meta["chunks"]] == [[0, 2], [2, 4]]
    assert [ch["span"] for ch in rec.meta["chunks"]] == [[3, 5], [10, 12]]

    # without backtracing: only knots; with a single knot id used for every cut side
    c = UntieTheKnotsConfig(seq_len=4, chunk_prob=1.0, n_chunks=2, knot_tokens=(80,), backtrace=False)
    (rec,) = UntieTheKnots(c).augment([[10, 11, 12, 13]])
    assert list(rec.input_ids) == [10, 11, 80, 80, 12, 13]
    assert list(rec.loss_mask) == [0, 1, 0, 0, 0, 1]


def test_hand_computed_eod_and_no_untying():
    """chunk_prob = 0: documents stay whole (no headers); the token after an EOD is not trained."""
    c = cfg(seq_len=5, chunk_prob=0.0)
    (rec,) = UntieTheKnots(c).augment([[10, 11], [20]])
    # two single-chunk documents: only the first is shuffled (alone), the last stays last
    assert list(rec.input_ids) == [10, 11, EOD, 20, EOD]
    assert list(rec.loss_mask) == [0, 1, 1, 0, 1]
    assert rec.meta["untied"] is False and rec.meta["doc_ids"] == [0, 1]


def test_equal_cuts_follow_the_reference():
    # reference: split_positions = [len // k * j for j in 1..k-1]; 8 tokens in 3 → cuts at 2, 4
    c = cfg(seq_len=8, eod_token=None, preserve_partial_order=True, backtrace=False)
    (rec,) = UntieTheKnots(c).augment([list(range(100, 108))])
    assert list(rec.input_ids) == [100, 101, 900, 901, 102, 103, 902, 903, 104, 105, 106, 107]
    # a piece shorter than n_chunks stays whole
    (rec,) = UntieTheKnots(cfg(seq_len=2, eod_token=None, backtrace=False)).augment([[1, 2]])
    assert list(rec.input_ids) == [1, 2]


def test_random_cuts_are_distinct():
    # reference: rng.choice(range(1, len), k - 1, replace=False): a 3-token piece in 3 → 1 token each
    recs = _records(cfg(seq_len=3, eod_token=None, split="random"), [[1, 2, 3]] * 20, seed=0)
    assert all(ch["source"][1] - ch["source"][0] == 1 for r in recs for ch in r.meta["chunks"])
    recs = _records(cfg(seq_len=40, split="random"), documents(30, seed=8), seed=0)
    assert all(ch["source"][1] > ch["source"][0] for r in recs for ch in r.meta["chunks"])


def _records(c, docs, seed):
    return list(UntieTheKnots(c).augment(docs, seed=seed))


def test_deterministic_by_seed_and_different_across_seeds():
    docs = documents()
    a = _records(cfg(), docs, seed=3)
    b = _records(cfg(), docs, seed=3)
    assert [list(r.input_ids) for r in a] == [list(r.input_ids) for r in b]
    assert [list(r.loss_mask) for r in a] == [list(r.loss_mask) for r in b]
    assert [r.meta for r in a] == [r.meta for r in b]
    other = _records(cfg(), docs, seed=4)
    assert [list(r.input_ids) for r in a] != [list(r.input_ids) for r in other]


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"split": "random"},
        {"per": "document", "chunk_prob": 0.5},
        {"preserve_partial_order": True},
        {"backtrace": False},
        {"eod_token": None, "n_chunks": 2, "knot_tokens": (900,)},
    ],
)
def test_no_token_lost(overrides):
    docs = documents(20, seed=1)
    c = cfg(**overrides)
    recs = _records(c, docs, seed=7)
    kept = Counter(t for r in recs for t in r.input_ids if t not in SPECIAL)
    assert kept == Counter(t for d in docs for t in d)
    # and exactly: each chunk's body is its source range of (document ⊕ [EOD])
    for r in recs:
        for ch in r.meta["chunks"]:
            doc = docs[ch["doc"]] + ([c.eod_token] if c.eod_token is not None else [])
            a, b = ch["source"]
            s, e = ch["span"]
            assert list(r.input_ids[s:e]) == doc[a:b]
    # records pack seq_len document tokens (EODs included); only the last is shorter
    assert [r.meta["content_tokens"] for r in recs[:-1]] == [c.seq_len] * (len(recs) - 1)
    assert 0 < recs[-1].meta["content_tokens"] <= c.seq_len


def test_untying_target_lists_chunk_ids_in_document_order():
    docs = documents(20, seed=2)
    recs = _records(cfg(), docs, seed=11)
    n_targets = 0
    for r in recs:
        kinds, ids = r.meta["kinds"], list(r.input_ids)
        chunks = r.meta["chunks"]
        by_doc: dict[int, list[dict]] = {}
        for slot, ch in enumerate(chunks):
            by_doc.setdefault(ch["doc"], []).append({**ch, "slot": slot})
        for chs in by_doc.values():
            if len(chs) == 1:  # not cut: no header, no target
                assert "id" not in chs[0]
                continue
            assert len(chs) == 3
            # the header right before the chunk body carries the chunk's ID
            for ch in chs:
                s = ch["span"][0] - (1 if ch["chunk"] > 0 else 0)  # skip the start knot
                assert ids[s - 3 - 1 : s] == [D, *ch["id"], D_]
                assert kinds[s - 3 : s - 1] == [D_ID, D_ID]
            # the target follows the last-placed chunk: <S> id_1 <s> id_2 <s> id_3 </S>
            last = max(chs, key=lambda ch: ch["slot"])
            end = last["span"][1] + (1 if last["chunk"] < 2 else 0)  # skip the end knot
            in_doc_order = sorted(chs, key=lambda ch: ch["chunk"])
            expected = [S, *in_doc_order[0]["id"], s_, *in_doc_order[1]["id"], s_, *in_doc_order[2]["id"], S_]
            assert ids[end : end + len(expected)] == expected
            assert kinds[end] == S_OPEN and kinds[end + len(expected) - 1] == S_CLOSE
            # trained: the ID list and </S>; not trained: <S>
            assert list(r.loss_mask[end : end + len(expected)]) == [0] + [1] * (len(expected) - 1)
            n_targets += 1
        assert r.meta["order"][-1] == [r.meta["doc_ids"][-1], chunks[-1]["n_chunks"] - 1]  # last stays last
    assert n_targets > 5


def test_loss_mask_rules_hold_everywhere():
    recs = _records(cfg(split="random"), documents(20, seed=5), seed=1)
    for r in recs:
        ids, mask = list(r.input_ids), list(r.loss_mask)
        assert len(mask) == len(ids) and mask[0] == 0
        for t in range(1, len(ids)):
            prev, cur = ids[t - 1], ids[t]
            if cur in K or prev in K or cur in (D, D_, S) or prev in (D, D_, S_, EOD):
                assert mask[t] == 0, (t, prev, cur)
            elif r.meta["kinds"][t - 1] == D_ID or r.meta["kinds"][t] == D_ID:
                assert mask[t] == 0
            else:
                assert mask[t] == 1, (t, prev, cur)


def test_preserve_partial_order():
    recs = _records(cfg(preserve_partial_order=True), documents(20, seed=3), seed=2)
    shuffled_docs = False
    for r in recs:
        seen: dict[int, int] = {}
        for doc, chunk in r.meta["order"]:
            assert chunk == seen.get(doc, -1) + 1  # each document's chunks in order
            seen[doc] = chunk
        shuffled_docs |= [d for d, _ in r.meta["order"]] != sorted(d for d, _ in r.meta["order"])
    assert shuffled_docs
    # without the flag some document's chunks come out of order
    recs = _records(cfg(), documents(20, seed=3), seed=2)
    assert any(
        [c for d, c in r.meta["order"] if d == doc] != sorted(c for d, c in r.meta["order"] if d == doc)
        for r in recs
        for doc in r.meta["doc_ids"]
    )


def test_streaming_consumes_lazily():
    pulled = []

    def stream():
        for i in itertools.count():
            if i >= 3:
                raise AssertionError("consumed beyond what the first record needs")
            pulled.append(i)
            yield [i] * 10

    aug = UntieTheKnots(cfg(seq_len=25, eod_token=None)).augment(stream(), seed=0)
    first = next(aug)  # documents 0, 1 and 5 tokens of 2 fill 25 tokens
    assert pulled == [0, 1, 2]
    assert first.meta["pieces"] == [[0, 0, 10, True], [1, 0, 10, True], [2, 0, 5, False]]
    with pytest.raises(AssertionError, match="consumed beyond"):
        next(aug)  # the second record needs document 3
    # an endless stream works
    endless = ([j % 500 for j in range(i, i + 37)] for i in itertools.count())
    recs = list(itertools.islice(UntieTheKnots(cfg()).augment(endless, seed=1), 5))
    assert [r.meta["index"] for r in recs] == [0, 1, 2, 3, 4]


def test_record_reproducible_from_its_pieces():
    docs = documents(30, seed=4)
    c = cfg(seq_len=50)
    recs = _records(c, docs, seed=9)
    r = recs[3]
    pieces = [Piece(d, a, np.asarray([*docs[d], EOD][a:b]), ends_doc=ends) for d, a, b, ends in r.meta["pieces"]]
    again = untie(pieces, c, seed=9, index=3)
    assert list(again.input_ids) == list(r.input_ids) and again.meta == r.meta
    assert list(untie(pieces, c, seed=9, index=4).input_ids) != list(r.input_ids)


def test_pack_carries_documents_over():
    runs = list(pack([[1, 2, 3], [], [4, 5, 6, 7, 8]], seq_len=3, eod_token=0))
    assert [[(p.doc, p.start, p.tokens.tolist(), p.ends_doc) for p in run] for run in runs] == [
        [(0, 0, [1, 2, 3], False)],
        [(0, 3, [0], True), (2, 0, [4, 5], False)],
        [(2, 2, [6, 7, 8], False)],
        [(2, 5, [0], True)],
    ]


def test_truncate_like_the_reference():
    docs = documents(10, seed=6)
    c = cfg(truncate=True)
    recs = _records(c, docs, seed=0)
    full = _records(cfg(), docs, seed=0)
    for r, f in zip(recs, full):
        assert len(r.input_ids) == min(len(f.input_ids), c.seq_len)
        assert list(r.input_ids) == list(f.input_ids[: c.seq_len])
        assert r.meta["truncated"] == len(f.input_ids) - len(r.input_ids)
    assert any(r.meta["truncated"] for r in recs)


def test_config_is_validated():
    good = make_config(
        UntieTheKnotsConfig,
        {"seq_len": "128", "knot_tokens": "7;8;9;10", "eod_token": "none", "split": "random"},
        technique="untie-knots",
    )
    assert good.knot_tokens == (7, 8, 9, 10) and good.eod_token is None and good.split == "random"
    for key, bad in (
        ("chunk_prob", "1.5"),
        ("n_chunks", "1"),
        ("seq_len", "0"),
        ("split", "thirds"),
        ("knot_tokens", "1;2;3"),
        ("sort_tokens", "1;2"),
        ("knot_tokens", "-1"),
    ):
        with pytest.raises(ParameterError, match=key):
            make_config(UntieTheKnotsConfig, {key: bad}, technique="untie-knots")


def test_token_ids_resolved_from_the_tokenizer(byte_tok):
    # no ids and no tokenizer: an actionable error
    with pytest.raises(ParameterError, match="knot_tokens"):
        UntieTheKnots(UntieTheKnotsConfig())

    class Ctx:
        tokenizer = byte_tok

    with pytest.raises(ParameterError, match="<unused0>"):
        UntieTheKnots(UntieTheKnotsConfig(), Ctx())
    from longctx.testing import byte_tokenizer

    tok = byte_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": [f"<unused{i}>" for i in range(9)]})
    Ctx.tokenizer = tok
    aug = UntieTheKnots(UntieTheKnotsConfig(seq_len=16), Ctx())
    unused = tok.convert_tokens_to_ids([f"<unused{i}>" for i in range(9)])
    assert aug.config.knot_tokens == tuple(unused[:4]) and aug.config.sort_tokens == tuple(unused[4:9])
    assert len(aug.config.id_tokens) == 62  # letters and digits are single byte tokens
    rec = next(aug.augment([tok("some document text here", add_special_tokens=False)["input_ids"]] * 3))
    assert len(rec.input_ids) >= 16


def test_seed_must_be_non_negative():
    with pytest.raises(ParameterError, match="seed"):
        next(UntieTheKnots(cfg()).augment([[1, 2, 3]], seed=-1))
