"""The n-gram overlap scores the benchmarks' scripts import, reproduced without their packages.

* :func:`rouge_pkg` — the PyPI ``rouge`` 1.0.1 package (``Rouge().get_scores(hyp, ref)``): ROUGE-1,
  ROUGE-2 and ROUGE-L precision / recall / F, as LooGLE, CNNSum and L-CiteEval call it. ROUGE-L is
  :mod:`longctx.metrics`' own reproduction (union LCS, the package's tie-break, its recursion limit);
  ROUGE-N is added here: the *distinct* n-grams of all words of the text (sentences are cut at ``.``
  and flattened, so n-grams run across sentence ends), ``F = 2PR / (P + R + 1e-8)``.
* :func:`google_rouge` — Google's ``rouge-score`` 0.1.2 (``RougeScorer(["rouge1", "rouge2",
  "rougeL"], use_stemmer=False).score(target, prediction)``), as L-Eval calls it: lower-case, every run
  of characters other than ``[a-z0-9]`` is a separator (so non-ASCII text has no tokens), n-gram counts
  clipped, ROUGE-L from the plain LCS length; ``F = 2PR / (P + R)``.
* :func:`bleu` — NLTK's ``sentence_bleu([reference], hypothesis, weights=…)`` with one weight of 1 (as
  LooGLE computes BLEU-1 and BLEU-4): brevity penalty times the clipped n-gram precision.

Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries"; Papineni et al. 2002, "BLEU".
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from longctx.metrics import _lcs_words, _rouge_sentences, _rouge_words, _RougeFailure

__all__ = ["RougeFailure", "bleu", "google_rouge", "google_tokens", "rouge_pkg"]

#: Raised where the ``rouge`` package raises (an input without a sentence, or its recursion limit).
RougeFailure = _RougeFailure

PRF = tuple[float, float, float]


def _prf(overlap: int, evaluated: int, reference: int) -> PRF:
    p = overlap / evaluated if evaluated else 0.0
    r = overlap / reference if reference else 0.0
    return p, r, 2.0 * ((p * r) / (p + r + 1e-8))


def _ngram_set(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def rouge_pkg(hypothesis: str, reference: str, *, max_frames: int) -> dict[str, PRF]:
    """``{"rouge-1": (p, r, f), "rouge-2": …, "rouge-l": …}`` as the ``rouge`` package computes them.

    ``max_frames`` is the recursion depth its LCS reconstruction may use (the interpreter's limit minus
    the frames the calling script already has on the stack).

    :raises RougeFailure: where the package raises: a text with no sentence (empty, or only ``.``), or
        an LCS walk deeper than ``max_frames``.
    """
    hyp, ref = _rouge_sentences(hypothesis), _rouge_sentences(reference)
    if not hyp or not ref:
        raise RougeFailure
    hw, rw = _rouge_words(hyp), _rouge_words(ref)
    out: dict[str, PRF] = {}
    for n in (1, 2):
        h, r = _ngram_set(hw, n), _ngram_set(rw, n)
        out[f"rouge-{n}"] = _prf(len(h & r), len(h), len(r))
    union: set[str] = set()
    for ref_sentence in ref:
        ref_words = ref_sentence.split(" ")
        for hyp_sentence in hyp:
            union |= _lcs_words(ref_words, hyp_sentence.split(" "), max_frames)
    m, n_ = len(set(rw)), len(set(hw))
    p_lcs, r_lcs = len(union) / n_, len(union) / m
    out["rouge-l"] = (p_lcs, r_lcs, 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8)))
    return out


_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def google_tokens(text: str) -> list[str]:
    """``rouge-score``'s default tokenizer without stemming: lower-case, split on non-``[a-z0-9]`` runs."""
    return [t for t in _NON_ALNUM.sub(" ", text.lower()).split() if t]


def _f(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def google_rouge(target: str, prediction: str) -> dict[str, PRF]:
    """``{"rouge1": (p, r, f), "rouge2": …, "rougeL": …}`` of ``rouge-score`` (target = the reference)."""
    t, p = google_tokens(target), google_tokens(prediction)
    out: dict[str, PRF] = {}
    for n in (1, 2):
        tc = Counter(tuple(t[i : i + n]) for i in range(len(t) - n + 1))
        pc = Counter(tuple(p[i : i + n]) for i in range(len(p) - n + 1))
        inter = sum(min(c, pc[g]) for g, c in tc.items())
        prec = inter / max(sum(pc.values()), 1)
        rec = inter / max(sum(tc.values()), 1)
        out[f"rouge{n}"] = (prec, rec, _f(prec, rec))
    if not t or not p:
        out["rougeL"] = (0.0, 0.0, 0.0)
    else:
        lcs = _lcs_length(t, p)
        prec, rec = lcs / len(p), lcs / len(t)
        out["rougeL"] = (prec, rec, _f(prec, rec))
    return out


def bleu(hypothesis: Sequence[str], reference: Sequence[str], n: int) -> float:
    """NLTK ``sentence_bleu([reference], hypothesis, weights)`` with weight 1 on the ``n``-grams only.

    0 when no unigram matches; otherwise ``BP · p_n`` with the clipped precision ``p_n`` (NLTK's
    unsmoothed ``method0`` turns a zero ``p_n`` into ``sys.float_info.min``, i.e. a score of ~2e-308,
    which is 0 here) and ``BP = exp(1 - r/c)`` for a hypothesis of ``c < r`` words.
    """

    def clipped(k: int) -> tuple[int, int]:
        hc = Counter(tuple(hypothesis[i : i + k]) for i in range(len(hypothesis) - k + 1))
        rc = Counter(tuple(reference[i : i + k]) for i in range(len(reference) - k + 1))
        return sum(min(c, rc[g]) for g, c in hc.items()), max(1, sum(hc.values()))

    if clipped(1)[0] == 0:
        return 0.0
    num, den = clipped(n)
    c, r = len(hypothesis), len(reference)
    bp = 1.0 if c > r else (0.0 if c == 0 else math.exp(1 - r / c))
    return bp * num / den
