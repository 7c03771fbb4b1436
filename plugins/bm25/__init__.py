"""``bm25``: keep the chunks of the context most relevant to the query, in their original order.

Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework: BM25 and Beyond", Foundations and
Trends in Information Retrieval 3(4), https://doi.org/10.1561/1500000019. The context is cut into
chunks ``D_1 … D_N`` — sentences merged up to ``min(chunk_tokens, budget)`` tokens, longer sentences
cut at token boundaries (see :func:`longctx.textsplit.chunk_spans`) — and each chunk is scored
against the query ``Q`` with

    score(D, Q) = Σ_{t ∈ Q} IDF(t) · f(t, D) · (k1 + 1) / ( f(t, D) + k1 · (1 − b + b · |D| / avgdl) )

    IDF(t)      = ln( 1 + (N − n(t) + 0.5) / (n(t) + 0.5) )        (Lucene's non-negative IDF)

where ``f(t, D)`` is the frequency of term ``t`` in ``D``, ``|D|`` the number of terms of ``D``,
``avgdl`` the mean ``|D|`` over the ``N`` chunks and ``n(t)`` the number of chunks containing ``t``;
``t ∈ Q`` ranges over the *distinct* query terms. Lucene ≥ 8 and ``bm25s`` (``method="lucene"``) drop the
constant factor ``(k1 + 1)``, which does not change the ranking. Defaults ``k1 = 1.5``, ``b = 0.75`` as
in ``bm25s``.

Terms (for scoring only; budgets are counted in the pipeline's tokenizer): the text is lower-cased and
split into runs of letters/digits (``[^\\W_]+``; CJK characters one per term, so numbers such as a pass
key are terms too), English stop words (a short list, below) are dropped, and a light suffix stemmer
(:func:`stem`, Porter's step 1a plus ``-ing``/``-ed`` removal) folds plurals and inflections. Query and
chunks are analysed identically.

Selection (the reference notes' budget contract, §0): fill the budget ``B`` greedily by score
(ties → earlier chunk first) until the next chunk does not fit (a chunk wider than ``B`` on its own —
only a multi-token character under a tiny budget — is passed over); restore the original order; join the
kept pieces — adjacent chunks merge into one span, non-adjacent ones are joined by ``"\\n"``, pieces are
stripped of surrounding whitespace — then re-count the joined text and drop the lowest-scoring chunk
(ties → the later one) until it fits, so ``tokens_out ≤ B`` is a hard ceiling. With no query (or a query
with no indexable term) every score is 0 and the rule keeps the first chunks in order. A context within
the budget is returned unchanged. Deterministic: no randomness anywhere.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs

from longctx.hooks import hookimpl
from longctx.params import at_least, in_range, positive
from longctx.text import Reduction, Span, count_tokens
from longctx.textsplit import TokenMap, chunk_spans

SEPARATOR = "\n"

#: A short English stop-word list (function words only, so question words such as "what" drop out
#: and content words, numbers included, stay).
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves""".split()
)

_TERM = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+")


def stem(word: str) -> str:
    """A light suffix stemmer: ``sses→ss``, ``ies→y``, ``s→∅`` (not after ``s``/``u``/``i``), then
    ``ing``/``ed`` removal on longer words with an un-doubling of the final consonant (``running→run``).
    Digits are never stemmed."""
    if not word.isalpha() or len(word) <= 3:
        return word
    if word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix, min_len in (("ing", 6), ("ed", 5)):
        if word.endswith(suffix) and len(word) >= min_len:
            word = word[: -len(suffix)]
            if len(word) >= 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]
            break
    return word


def analyze(text: str) -> list[str]:
    """The BM25 terms of ``text``: lower-cased letter/digit runs, stop words removed, stemmed."""
    return [stem(w) for w in _TERM.findall(text.lower()) if w not in STOPWORDS]


def bm25_scores(docs: Sequence[Sequence[str]], query: Sequence[str], *, k1: float, b: float) -> list[float]:
    """BM25 score of each term list in ``docs`` for the distinct terms of ``query`` (formula above)."""
    N = len(docs)
    if N == 0:
        return []
    tf = [Counter(d) for d in docs]
    dl = [len(d) for d in docs]
    avgdl = sum(dl) / N
    scores = [0.0] * N
    if avgdl == 0:
        return scores
    for t in dict.fromkeys(query):  # distinct terms, first-seen order (sums are then deterministic)
        n_t = sum(1 for f in tf if t in f)
        if n_t == 0:
            continue
        idf = math.log(1.0 + (N - n_t + 0.5) / (n_t + 0.5))
        for i, f in enumerate(tf):
            f_td = f.get(t, 0)
            if f_td:
                scores[i] += idf * f_td * (k1 + 1.0) / (f_td + k1 * (1.0 - b + b * dl[i] / avgdl))
    return scores


@attrs.frozen
class BM25Config:
    """Budget and chunking in the pipeline's tokens; ``k1``, ``b`` as in Robertson & Zaragoza."""

    budget: int = attrs.field(default=1024, validator=positive, metadata={"help": "max context tokens"})
    chunk_tokens: int = attrs.field(
        default=128, validator=positive, metadata={"help": "max tokens per chunk (sentence-aligned)"}
    )
    k1: float = attrs.field(default=1.5, validator=at_least(0.0), metadata={"help": "term-frequency saturation"})
    b: float = attrs.field(default=0.75, validator=in_range(0.0, 1.0), metadata={"help": "length normalisation"})


def _merge(chunks: list[tuple[int, int]], keep: list[int], text: str) -> tuple[Span, ...]:
    """Spans of the kept chunks (indices ascending): adjacent chunks merged, whitespace stripped."""
    merged: list[list[int]] = []
    for i in keep:
        s, e = chunks[i]
        if merged and merged[-1][1] == s:
            merged[-1][1] = e
        else:
            merged.append([s, e])
    spans = []
    for s, e in merged:
        piece = text[s:e]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if e - trail > s + lead:
            spans.append(Span(s + lead, e - trail))
    return tuple(spans)


class BM25Reducer:
    """Query-relevant chunks within a token budget, in their original order."""

    def __init__(self, config: BM25Config, ctx: Any = None) -> None:
        self.config = config

    def reduce(self, context: str, *, query: str | None = None, tokenizer: Any) -> Reduction:
        cfg = self.config
        tm = TokenMap(tokenizer, context)
        if tm.n <= cfg.budget:
            spans = (Span(0, len(context)),) if context else ()
            return Reduction(context, spans, tokens_in=tm.n, tokens_out=tm.n, separator=SEPARATOR)
        chunks = chunk_spans(tm, min(cfg.chunk_tokens, cfg.budget))
        sizes = [tm.count(s, e) for s, e in chunks]
        scores = bm25_scores([analyze(context[s:e]) for s, e in chunks], analyze(query or ""), k1=cfg.k1, b=cfg.b)
        # greedy fill by score, ties by position; a separator costs about one token
        ranked = sorted(range(len(chunks)), key=lambda i: (-scores[i], i))
        keep: list[int] = []
        used = 0
        for i in ranked:
            if sizes[i] > cfg.budget:  # only a character wider than a tiny budget: can never fit
                continue
            cost = sizes[i] + (1 if keep else 0)
            if used + cost > cfg.budget:
                break  # a prefix of the ranking: with no query, a prefix of the context
            keep.append(i)
            used += cost
        # original order; re-count the assembled text and drop the weakest until it fits (hard ceiling)
        keep.sort()
        while True:
            spans = _merge(chunks, keep, context)
            text = SEPARATOR.join(context[s.start : s.end] for s in spans)
            out = count_tokens(tokenizer, text)
            if out <= cfg.budget or not keep:
                break
            keep.remove(min(keep, key=lambda i: (scores[i], -i)))
        return Reduction(
            text,
            spans,
            tokens_in=tm.n,
            tokens_out=out,
            separator=SEPARATOR,
            meta={
                "chunks": len(chunks),
                "kept_chunks": list(keep),
                "kept_scores": [round(scores[i], 6) for i in keep],
            },
        )


@hookimpl
def lc_register_context_reducers(register):
    register(
        "bm25",
        config=BM25Config,
        build=BM25Reducer,
        summary="Keep the query's most relevant chunks (BM25) within a token budget, in original order",
        paper="Robertson & Zaragoza 2009, The Probabilistic Relevance Framework: BM25 and Beyond",
    )
