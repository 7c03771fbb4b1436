"""Answer-scoring metrics of the long-context benchmarks, reproduced exactly, quirks included.

Published long-context numbers are only comparable when the score is computed the way the benchmark's
own script computes it, so every function here follows a reference implementation line for line in
behaviour (never in code) and names the quirks it keeps:

* **LongBench** (Bai et al. 2023, arXiv:2308.14508; ``LongBench/metrics.py`` and ``eval.py``):
  SQuAD-style token F1 on normalized answers, ROUGE-L as computed by the PyPI ``rouge`` package,
  class-name matching, paragraph-id retrieval, passage counting and fuzzy code-line similarity, each
  with a Chinese variant where the benchmark has one; the dataset → metric table; the scorer (max over
  the gold answers, first-line truncation for few-shot datasets, mean × 100 rounded to 2 places) and
  the LongBench-E scorer (the same per input-length bucket 0-4k / 4-8k / 8k+).
* **RULER** (Hsieh et al. 2024, arXiv:2404.06654; ``scripts/eval/synthetic/constants.py``):
  ``string_match_all`` (fraction of references found, case-insensitively, in the prediction) and
  ``string_match_part`` (whether any reference is found), over a task and per sample.
* **LV-Eval** (Yuan et al. 2024, arXiv:2402.05136; ``metrics.py``, ``config.py``, ``evaluation.py``):
  F1 gated by the recall of the answer keywords, with the benchmark's word blacklist, in English and
  Chinese, plus its plain variants.

Per-sample functions take ``(prediction, ground_truth, **kwargs)`` and return a float (LongBench's
calling convention: the scorer passes ``all_classes=`` to every metric, and the ones that do not need
it ignore it). Task-level scorers return percentages rounded to 2 places, as the reference scripts
print them. Chinese variants segment words with ``jieba``, imported on first use: it is an optional
dependency (``pip install jieba``).

The two reference packages LongBench relies on are reimplemented rather than depended on:

* ``rouge`` 1.0.1 ROUGE-L (summary level, "exclusive" mode): sentences are the pieces between ``.``
  characters, words are split on single spaces after whitespace collapsing (so an all-blank sentence
  is one empty word), ``m``/``n`` count *distinct* words, and the overlap is the number of distinct
  words in the union of one particular longest common subsequence per (reference sentence, candidate
  sentence) pair, reconstructed with the package's tie-break. ``F = 2PR / (P + R + 1e-8)``. The
  package raises on an input with no sentence (empty, or only dots) and its LCS reconstruction recurses
  once per step, so a long sentence pair exceeds CPython's default recursion limit (1000 frames); the
  benchmarks catch every exception and score 0. We reproduce that too, with the frame budget measured
  by running the reference scripts (see ``_RECON_FRAMES_*`` below).
* ``fuzzywuzzy`` 0.18 ``fuzz.ratio`` without python-Levenshtein (LongBench does not install it):
  ``difflib.SequenceMatcher`` ratio × 100 rounded to an int, 100 for equal strings, 0 when either is
  empty.
"""

from __future__ import annotations

import difflib
import math
import re
import string
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from longctx.errors import InputError, LongctxError

__all__ = [
    "LONGBENCH_DATASET_METRIC",
    "LONGBENCH_E_BUCKETS",
    "LONGBENCH_FIRST_LINE_DATASETS",
    "LVEVAL_BLACKLIST_EN",
    "LVEVAL_BLACKLIST_ZH",
    "LVEVAL_DATASET_METRIC",
    "LVEVAL_KEYWORD_RECALL_THRESHOLD",
    "classification_score",
    "code_sim_score",
    "count_score",
    "fuzz_ratio",
    "longbench_e_scores",
    "longbench_sample_score",
    "longbench_score",
    "lveval_f1",
    "lveval_recall",
    "lveval_rouge_zh_score",
    "lveval_score",
    "normalize_answer",
    "normalize_zh_answer",
    "qa_f1_score",
    "qa_f1_zh_score",
    "retrieval_score",
    "retrieval_zh_score",
    "rouge_score",
    "rouge_zh_score",
    "ruler_match_all",
    "ruler_match_part",
    "ruler_postprocess",
    "string_match_all",
    "string_match_part",
    "token_f1",
]


# --------------------------------------------------------------------------------------------------
# Normalization and token F1 (LongBench, after SQuAD's evaluation script)
# --------------------------------------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_EN_PUNCTUATION = frozenset(string.punctuation)
# LongBench's Chinese punctuation list, character for character (it has 》 but not 《, and ASCII "." again).
_ZH_EXTRA_PUNCTUATION = (
    "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～"
    "｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏."
)
_ZH_PUNCTUATION = frozenset(string.punctuation + _ZH_EXTRA_PUNCTUATION)


def normalize_answer(s: str) -> str:
    """Lower-case, drop ASCII punctuation, replace the articles a/an/the by spaces, collapse whitespace.

    The order matters and is LongBench's: punctuation goes *before* articles, so ``"the-end"`` is glued
    into ``"theend"`` and keeps its article, and ``"l'an"`` becomes ``"lan"``.
    """
    text = "".join(ch for ch in s.lower() if ch not in _EN_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def normalize_zh_answer(s: str) -> str:
    """Lower-case, drop ASCII and Chinese punctuation, and remove *all* whitespace (no articles)."""
    return "".join("".join(ch for ch in s.lower() if ch not in _ZH_PUNCTUATION).split())


def token_f1(prediction_tokens: Sequence[str], ground_truth_tokens: Sequence[str]) -> float:
    """Bag-of-tokens F1: overlap counted with multiplicity; 0 when nothing overlaps (or either is empty)."""
    same = sum((Counter(prediction_tokens) & Counter(ground_truth_tokens)).values())
    if same == 0:
        return 0.0
    precision = 1.0 * same / len(prediction_tokens)
    recall = 1.0 * same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def _jieba() -> ModuleType:
    try:
        import jieba
    except ImportError as exc:
        raise LongctxError(
            "the Chinese metrics segment words with jieba, which is not installed: pip install jieba"
        ) from exc
    return jieba


def _cut(text: str) -> list[str]:
    """jieba's default (accurate mode, HMM on) segmentation, as every reference script calls it."""
    return list(_jieba().cut(text, cut_all=False))


def _zh_tokens(text: str) -> list[str]:
    """Segment with jieba, normalize each word, drop the ones that normalize to nothing."""
    tokens = (normalize_zh_answer(t) for t in _cut(text))
    return [t for t in tokens if t]


def qa_f1_score(prediction: str, ground_truth: str, **kwargs: Any) -> float:
    """Token F1 between the normalized prediction and gold answer (LongBench's English QA metric), in [0, 1]."""
    return token_f1(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())


def qa_f1_zh_score(prediction: str, ground_truth: str, **kwargs: Any) -> float:
    """Token F1 over jieba words, each normalized with :func:`normalize_zh_answer`, in [0, 1]."""
    return token_f1(_zh_tokens(prediction), _zh_tokens(ground_truth))


# --------------------------------------------------------------------------------------------------
# ROUGE-L as the `rouge` package computes it
# --------------------------------------------------------------------------------------------------

# CPython's default recursion limit, and the frames already on the stack when the `rouge` package
# starts its recursive LCS reconstruction, counted in the reference scripts run as scripts:
# LongBench eval.py: <module>, scorer, rouge_score, get_scores, _get_avg_scores, <lambda>,
# rouge_l_summary_level, _union_lcs, _recon_lcs = 9; rouge_zh_score adds one frame, and so does LV-Eval's
# evaluation.py path through rouge_zh_score_blacklist. Measured (CPython 3.11, rouge 1.0.1): identical
# 990-word sentences score 100 and 991-word ones 0 through LongBench's gov_report scorer; 989 / 990 words
# through vcsum.
_RECURSION_LIMIT = 1000
_RECON_FRAMES_LONGBENCH = _RECURSION_LIMIT - 9
_RECON_FRAMES_LONGBENCH_ZH = _RECURSION_LIMIT - 10
_RECON_FRAMES_LVEVAL = _RECURSION_LIMIT - 10


class _RougeFailure(Exception):
    """The `rouge` package would raise here (no sentence, or its recursion limit); scored as 0."""


def _rouge_sentences(text: str) -> list[str]:
    return [" ".join(piece.split()) for piece in text.split(".") if len(piece) > 0]


def _rouge_words(sentences: Sequence[str]) -> list[str]:
    return [word for sentence in sentences for word in sentence.split(" ")]


def _lcs_words(x: Sequence[str], y: Sequence[str], max_frames: int) -> set[str]:
    """The distinct words of the LCS of ``x`` and ``y`` that `rouge`'s ``_recon_lcs`` reconstructs.

    Backtracking from the end, a match is taken, else the step goes up when the cell above is strictly
    larger, else left. The reference does this with one recursive call per step (plus the final one), so
    it fails when the walk needs more than ``max_frames`` calls.
    """
    nx, ny = len(x), len(y)
    if min(nx, ny) + 1 > max_frames:  # the walk is at least min(nx, ny) steps long
        raise _RougeFailure
    table = [[0] * (ny + 1)]
    for i in range(1, nx + 1):
        above, row, xi = table[-1], [0] * (ny + 1), x[i - 1]
        for j in range(1, ny + 1):
            if xi == y[j - 1]:
                row[j] = above[j - 1] + 1
            else:
                row[j] = above[j] if above[j] >= row[j - 1] else row[j - 1]
        table.append(row)
    words: set[str] = set()
    i, j, calls = nx, ny, 1
    while i > 0 and j > 0:
        if x[i - 1] == y[j - 1]:
            words.add(x[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
        calls += 1
    if calls > max_frames:
        raise _RougeFailure
    return words


def _rouge_l_f(hypothesis: str, reference: str, max_frames: int) -> float:
    """`rouge` 1.0.1 ``Rouge().get_scores(hyp, ref, avg=True)["rouge-l"]["f"]`` (exclusive, summary level)."""
    hyp, ref = _rouge_sentences(hypothesis), _rouge_sentences(reference)
    if not hyp or not ref:
        raise _RougeFailure
    m = len(set(_rouge_words(ref)))
    n = len(set(_rouge_words(hyp)))
    union: set[str] = set()
    for ref_sentence in ref:
        ref_words = ref_sentence.split(" ")
        for hyp_sentence in hyp:
            union |= _lcs_words(ref_words, hyp_sentence.split(" "), max_frames)
    r_lcs = len(union) / m
    p_lcs = len(union) / n
    return 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8))


def _rouge_or_zero(prediction: str, ground_truth: str, max_frames: int) -> float:
    try:
        return _rouge_l_f(prediction, ground_truth, max_frames)
    except _RougeFailure:
        return 0.0


def rouge_score(prediction: str, ground_truth: str, **kwargs: Any) -> float:
    """ROUGE-L F of the `rouge` package (LongBench's summarization metric), in [0, 1).

    0 where the package raises: an input without a sentence (empty or only ``.``), or a sentence pair
    whose LCS walk is deeper than the recursion limit allows (e.g. two identical 991-word sentences).
    Identical inputs score just under 1 (``2PR/(P+R+1e-8)``).
    """
    return _rouge_or_zero(prediction, ground_truth, _RECON_FRAMES_LONGBENCH)


def rouge_zh_score(prediction: str, ground_truth: str, **kwargs: Any) -> float:
    """:func:`rouge_score` over jieba words joined by spaces (LongBench's Chinese summarization metric).

    Chinese text rarely has an ASCII ``.``, so a whole answer is one `rouge` sentence and long answers
    hit the recursion limit (990 frames here, one fewer than :func:`rouge_score`) and score 0.
    """
    return _rouge_or_zero(" ".join(_cut(prediction)), " ".join(_cut(ground_truth)), _RECON_FRAMES_LONGBENCH_ZH)


# --------------------------------------------------------------------------------------------------
# LongBench's other metrics
# --------------------------------------------------------------------------------------------------


def classification_score(
    prediction: str, ground_truth: str, *, all_classes: Sequence[str] | None = None, **kwargs: Any
) -> float:
    """1/k when the gold class is among the k class names found in the prediction, else 0 (trec, lsht).

    Every class name that is a substring of the prediction is a match; then matches that are substrings
    of the gold class but not equal to it are dropped. LongBench drops them while iterating over the same
    list, which skips the element after each removal (and ``list.remove`` drops the *first* equal
    element); that is reproduced, so ``"a"`` and ``"ab"`` found for gold ``"abc"`` leaves ``["ab"]``.
    """
    if all_classes is None:
        raise InputError("classification_score needs all_classes=, the list of class names of the dataset")
    matches = [name for name in all_classes if name in prediction]
    position = 0
    while position < len(matches):
        term = matches[position]
        position += 1
        if term in ground_truth and term != ground_truth:
            matches.remove(term)
    return 1.0 / len(matches) if ground_truth in matches else 0.0


_DIGITS = re.compile(r"\d+")


def _share_equal(numbers: list[str], target: str) -> float:
    return 0.0 if not numbers else float(sum(1 for x in numbers if x == target) / len(numbers))


def _paragraph_id(pattern: str, ground_truth: str, metric: str) -> str:
    found = re.findall(pattern, ground_truth)
    if not found:
        raise InputError(f"{metric}: the gold answer {ground_truth!r} names no paragraph (expected {pattern!r})")
    return found[0]


def retrieval_score(prediction: str, ground_truth: str, **kwargs: Any) -> float:
    """Share of the digit runs in the prediction that equal the gold paragraph id ("Paragraph N").

    Ids compare as strings (``"07"`` is not ``"7"``); a prediction without digits scores 0.
    """
    target = _paragraph_id(r"Paragraph (\d+)", ground_truth, "retrieval_score")
    return _share_equal(_DIGITS.findall(prediction), target)


def retrieval_zh_score(prediction: str, ground_truth: str, **kwargs: Any) -> float:
    """:func:`retrieval_score` with the Chinese id pattern "段落N"."""
    target = _paragraph_id(r"段落(\d+)", ground_truth, "retrieval_zh_score")
    return _share_equal(_DIGITS.findall(prediction), target)


def count_score(prediction: str, ground_truth: str, **kwargs: Any) -> float:
    """Share of the digit runs in the prediction that equal the gold count (passage_count)."""
    return _share_equal(_DIGITS.findall(prediction), str(ground_truth))


def fuzz_ratio(s1: str | None, s2: str | None) -> int:
    """fuzzywuzzy's ``fuzz.ratio`` (pure-Python build): 0-100 similarity from difflib's matching blocks.

    None or an empty side gives 0, equal strings 100 (even two empty ones); otherwise
    ``round(100 * SequenceMatcher(None, s1, s2).ratio())`` with difflib's default junk heuristic.
    """
    if s1 is None or s2 is None:
        return 0
    if s1 == s2:
        return 100
    if not s1 or not s2:
        return 0
    return round(100 * difflib.SequenceMatcher(None, s1, s2).ratio())


def code_sim_score(prediction: str, ground_truth: str, **kwargs: Any) -> float:
    """Fuzzy similarity of the first code line of the prediction to the gold line (lcc, repobench-p), in [0, 1].

    The first line (after leading newlines) that contains none of ``` ` ```, ``#`` or ``//`` is taken as
    the prediction ("" if there is none); the score is ``fuzz_ratio / 100``, so it moves in steps of 0.01.
    """
    line = next(
        (x for x in prediction.lstrip("\n").split("\n") if "`" not in x and "#" not in x and "//" not in x),
        "",
    )
    return fuzz_ratio(line, ground_truth) / 100


# --------------------------------------------------------------------------------------------------
# LongBench scorers (eval.py)
# --------------------------------------------------------------------------------------------------

Metric = Callable[..., float]

LONGBENCH_DATASET_METRIC: Mapping[str, Metric] = {
    "narrativeqa": qa_f1_score,
    "qasper": qa_f1_score,
    "multifieldqa_en": qa_f1_score,
    "multifieldqa_zh": qa_f1_zh_score,
    "hotpotqa": qa_f1_score,
    "2wikimqa": qa_f1_score,
    "musique": qa_f1_score,
    "dureader": rouge_zh_score,
    "gov_report": rouge_score,
    "qmsum": rouge_score,
    "multi_news": rouge_score,
    "vcsum": rouge_zh_score,
    "trec": classification_score,
    "triviaqa": qa_f1_score,
    "samsum": rouge_score,
    "lsht": classification_score,
    "passage_retrieval_en": retrieval_score,
    "passage_count": count_score,
    "passage_retrieval_zh": retrieval_zh_score,
    "lcc": code_sim_score,
    "repobench-p": code_sim_score,
}
"""LongBench dataset name → its metric, as in LongBench's ``eval.py``."""

LONGBENCH_FIRST_LINE_DATASETS: frozenset[str] = frozenset({"trec", "triviaqa", "samsum", "lsht"})
"""Few-shot datasets whose predictions are cut to their first line (after leading newlines) before scoring."""

LONGBENCH_E_BUCKETS: tuple[str, ...] = ("0-4k", "4-8k", "8k+")
"""LongBench-E's input-length buckets: length < 4000, < 8000, the rest (length as the dataset gives it)."""


def _longbench_metric(dataset: str) -> Metric:
    try:
        return LONGBENCH_DATASET_METRIC[dataset]
    except KeyError:
        known = ", ".join(sorted(LONGBENCH_DATASET_METRIC))
        raise InputError(f"unknown LongBench dataset {dataset!r}; known: {known}") from None


def longbench_sample_score(
    dataset: str, prediction: str, ground_truths: Sequence[str], all_classes: Sequence[str] | None = None
) -> float:
    """One sample's LongBench score in [0, 1]: the dataset's metric, max over the gold answers (0 if none).

    For trec, triviaqa, samsum and lsht the prediction is first cut to its first line.
    """
    metric = _longbench_metric(dataset)
    if isinstance(ground_truths, str):
        raise InputError("ground_truths must be a list of gold answers, not one string")
    if dataset in LONGBENCH_FIRST_LINE_DATASETS:
        prediction = prediction.lstrip("\n").split("\n")[0]
    score = 0.0
    for ground_truth in ground_truths:
        score = max(score, metric(prediction, ground_truth, all_classes=all_classes))
    return score


def _check_parallel(what: str, **columns: Sequence[Any]) -> int:
    sizes = {name: len(col) for name, col in columns.items()}
    if len(set(sizes.values())) != 1:
        raise InputError(f"{what}: the lists differ in length ({sizes})")
    n = next(iter(sizes.values()))
    if n == 0:
        raise InputError(f"{what}: no predictions to score")
    return n


def longbench_score(
    dataset: str,
    predictions: Sequence[str],
    answers: Sequence[Sequence[str]],
    all_classes: Sequence[str] | None = None,
) -> float:
    """LongBench's ``scorer``: mean per-sample score × 100, rounded to 2 places (Python's ``round``)."""
    n = _check_parallel("longbench_score", predictions=predictions, answers=answers)
    total = 0.0
    for prediction, ground_truths in zip(predictions, answers):
        total += longbench_sample_score(dataset, prediction, ground_truths, all_classes)
    return round(100 * total / n, 2)


def longbench_e_scores(
    dataset: str,
    predictions: Sequence[str],
    answers: Sequence[Sequence[str]],
    lengths: Sequence[int],
    all_classes: Sequence[str] | None = None,
) -> dict[str, float]:
    """LongBench-E's ``scorer_e``: the score of each length bucket (see :data:`LONGBENCH_E_BUCKETS`).

    Unlike :func:`longbench_score` this averages with ``numpy.mean`` (pairwise summation) and rounds a
    ``numpy.float64``, i.e. half-to-even on ``100 * mean`` scaled by 100 (``2.675`` → ``2.68`` where
    Python's ``round`` gives ``2.67``). An empty bucket is ``nan``, as in the reference.
    """
    import numpy as np

    _check_parallel("longbench_e_scores", predictions=predictions, answers=answers, lengths=lengths)
    buckets: dict[str, list[float]] = {name: [] for name in LONGBENCH_E_BUCKETS}
    for prediction, ground_truths, length in zip(predictions, answers, lengths):
        score = longbench_sample_score(dataset, prediction, ground_truths, all_classes)
        key = "0-4k" if length < 4000 else "4-8k" if length < 8000 else "8k+"
        buckets[key].append(score)
    out: dict[str, float] = {}
    for name, scores in buckets.items():
        if not scores:
            out[name] = math.nan
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[name] = float(round(100 * np.mean(scores), 2))
    return out


# --------------------------------------------------------------------------------------------------
# RULER
# --------------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f]")


def ruler_postprocess(prediction: str) -> str:
    """RULER's prediction clean-up before scoring: strip, control characters → newline, strip again."""
    return _CONTROL.sub("\n", prediction.strip()).strip()


def _check_refs(refs: Sequence[str]) -> None:
    if isinstance(refs, str):
        raise InputError("RULER references must be a list of strings, not one string")
    if len(refs) == 0:
        raise InputError("RULER scoring needs at least one reference per sample")


def _found(prediction: str, refs: Sequence[str]) -> list[float]:
    lowered = prediction.lower()
    return [1.0 if r.lower() in lowered else 0.0 for r in refs]


def ruler_match_all(prediction: str, refs: Sequence[str]) -> float:
    """Fraction of the references contained in the prediction, case-insensitively, in [0, 1]."""
    _check_refs(refs)
    return sum(_found(prediction, refs)) / len(refs)


def ruler_match_part(prediction: str, refs: Sequence[str]) -> float:
    """1.0 if any reference is contained in the prediction (case-insensitive), else 0.0."""
    _check_refs(refs)
    return max(_found(prediction, refs))


def _ruler_task(
    per_sample: Callable[[str, Sequence[str]], float], preds: Sequence[str], refs: Sequence[Sequence[str]]
) -> float:
    n = _check_parallel("RULER scoring", preds=preds, refs=refs)
    return round(sum([per_sample(p, r) for p, r in zip(preds, refs)]) / n * 100, 2)


def string_match_all(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """RULER's niah/vt/cwe/fwe metric: mean of :func:`ruler_match_all` × 100, rounded to 2 places.

    RULER applies :func:`ruler_postprocess` to predictions before this.
    """
    return _ruler_task(ruler_match_all, preds, refs)


def string_match_part(preds: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """RULER's qa metric: mean of :func:`ruler_match_part` × 100, rounded to 2 places.

    "Part" means *any* reference counts as a hit; lm-evaluation-harness's port instead averages the
    fraction found, which is :func:`string_match_all`.
    """
    return _ruler_task(ruler_match_part, preds, refs)


# --------------------------------------------------------------------------------------------------
# LV-Eval
# --------------------------------------------------------------------------------------------------

LVEVAL_BLACKLIST_EN: frozenset[str] = frozenset(
    "and to of in her was with for it from is that his he by she they or at because be on are their what "
    "as had were about being this who but have has when which does".split()
)
"""English words that do not count as recalled answer keywords (LV-Eval's ``ABANDON_WORDS_EN``)."""

LVEVAL_BLACKLIST_ZH: frozenset[str] = frozenset(
    "的 和 是 等 在 年 可以 为 与 ‰ 了 或 一种 月 c 至 日 有 进行 于 不 中 × 根据 小 由 亩 也 要 "
    "指 法 会 元 主要 以及 通过 首先 对 然后 号 以 所 后 丁 包括 无 将 用 能 形 方面 因素 位于 "
    "而 从 到 一定 用于 但 使用 让 具有 并 亿元 万元 上 类 基于 才 来 地 片 其他 个 或者 变得 时 "
    "给 你 使 条 受 已经 带 度".split()
)
"""Chinese words that do not count as recalled answer keywords (LV-Eval's ``ABANDON_WORDS_ZH``)."""

LVEVAL_KEYWORD_RECALL_THRESHOLD: Mapping[str, float] = {"en": 0.2, "zh": 0.4}
"""Below this recall of the answer keywords, LV-Eval's gated F1 is 0."""


def _lang(lang: str) -> str:
    if lang not in LVEVAL_KEYWORD_RECALL_THRESHOLD:
        raise InputError(f"lang must be 'en' or 'zh', not {lang!r}")
    return lang


def _tokens(text: str, lang: str) -> list[str]:
    return normalize_answer(text).split() if lang == "en" else _zh_tokens(text)


def lveval_f1(
    prediction: str, ground_truth: str, *, answer_keywords: str | None = None, lang: str = "en", **kwargs: Any
) -> float:
    """LV-Eval's keyword-gated F1 (``qa_f1_score_with_gold_ans`` / ``qa_f1_zh_score_with_gold_ans``), in [0, 1].

    Recall = (prediction tokens matching a keyword token, multiplicity clipped, not counting blacklisted
    words) / (all keyword tokens, blacklisted ones included). Below :data:`LVEVAL_KEYWORD_RECALL_THRESHOLD`
    (0.2 English, 0.4 Chinese) the score is 0; otherwise it is the plain token F1 with the gold answer,
    blacklisted words included (the README says they are removed; the code does not, and we follow the
    code). English has no gate without keywords; Chinese then gates on the gold answer itself.
    """
    lang = _lang(lang)
    prediction_tokens = _tokens(prediction, lang)
    ground_truth_tokens = _tokens(ground_truth, lang)
    keywords = answer_keywords
    if lang == "zh" and not keywords:
        keywords = ground_truth
    if keywords:
        keyword_tokens = _tokens(keywords, lang)
        if not keyword_tokens:
            raise InputError(f"lveval_f1: the answer keywords {keywords!r} contain no word after normalization")
        blacklist = LVEVAL_BLACKLIST_EN if lang == "en" else LVEVAL_BLACKLIST_ZH
        common = Counter(prediction_tokens) & Counter(keyword_tokens)
        same = sum(count for word, count in common.items() if word not in blacklist)
        if 1.0 * same / len(keyword_tokens) < LVEVAL_KEYWORD_RECALL_THRESHOLD[lang]:
            return 0.0
    return token_f1(prediction_tokens, ground_truth_tokens)


def lveval_recall(prediction: str, ground_truth: str, *, lang: str = "en", **kwargs: Any) -> float:
    """Recall of the gold-answer tokens (LV-Eval's ``qa_f1_score_factrecall`` / ``qa_f1_zh_score_factrecall``).

    Defined by LV-Eval but not used by its dataset table (factrecall datasets use plain F1).
    """
    lang = _lang(lang)
    gold = _tokens(ground_truth, lang)
    if not gold:
        raise InputError(f"lveval_recall: the gold answer {ground_truth!r} contains no word after normalization")
    same = sum((Counter(_tokens(prediction, lang)) & Counter(gold)).values())
    return 1.0 * same / len(gold)


def lveval_rouge_zh_score(prediction: str, ground_truth: str, **kwargs: Any) -> float:
    """LV-Eval's ``rouge_zh_score_blacklist`` (dureader_mixup): Chinese ROUGE-L without blacklisted words.

    Reproduces the reference's double segmentation: jieba words are joined by spaces and that string is
    segmented again (the spaces become words that normalize to ""), each word is normalized, blacklisted
    words are dropped, empty ones are *kept*, and the rest are joined by spaces for :func:`rouge_score`.
    """

    def prepare(text: str) -> str:
        words = (normalize_zh_answer(w) for w in _cut(" ".join(_cut(text))))
        return " ".join(w for w in words if w not in LVEVAL_BLACKLIST_ZH)

    return _rouge_or_zero(prepare(prediction), prepare(ground_truth), _RECON_FRAMES_LVEVAL)


def _lveval_f1_en(prediction: str, ground_truth: str, answer_keywords: str | None = None) -> float:
    return lveval_f1(prediction, ground_truth, answer_keywords=answer_keywords, lang="en")


def _lveval_f1_zh(prediction: str, ground_truth: str, answer_keywords: str | None = None) -> float:
    return lveval_f1(prediction, ground_truth, answer_keywords=answer_keywords, lang="zh")


LVEVAL_DATASET_METRIC: Mapping[str, Callable[[str, str, str | None], float]] = {
    "hotpotwikiqa_mixup": _lveval_f1_en,
    "loogle_SD_mixup": _lveval_f1_en,
    "loogle_CR_mixup": _lveval_f1_en,
    "loogle_MIR_mixup": _lveval_f1_en,
    "multifieldqa_en_mixup": _lveval_f1_en,
    "multifieldqa_zh_mixup": _lveval_f1_zh,
    "factrecall_en": lambda p, g, k=None: qa_f1_score(p, g),
    "factrecall_zh": lambda p, g, k=None: qa_f1_zh_score(p, g),
    "cmrc_mixup": _lveval_f1_zh,
    "lic_mixup": _lveval_f1_zh,
    "dureader_mixup": lambda p, g, k=None: lveval_rouge_zh_score(p, g),
}
"""LV-Eval dataset name → ``metric(prediction, ground_truth, answer_keywords)``, as in LV-Eval's ``config.py``."""


def _lveval_base_name(dataset: str) -> str:
    return re.split(r"_.{1,3}k", dataset)[0]


def lveval_score(
    dataset: str,
    predictions: Sequence[str],
    answers: Sequence[Sequence[str]],
    answer_keywords: Sequence[str | None] | None = None,
) -> float:
    """LV-Eval's ``scorer``: mean score × 100 rounded to 2 places, counting only the *first* gold answer.

    ``dataset`` may carry the length level (``"cmrc_mixup_64k"``); it is cut at the first ``_<1-3 chars>k``
    as LV-Eval does. ``answer_keywords`` is the per-sample ``gold_ans`` field (None where absent).
    """
    name = _lveval_base_name(dataset)
    if name not in LVEVAL_DATASET_METRIC:
        known = ", ".join(sorted(LVEVAL_DATASET_METRIC))
        raise InputError(f"unknown LV-Eval dataset {dataset!r}; known: {known} (optionally with _16k … _256k)")
    keywords: Sequence[str | None] = [None] * len(predictions) if answer_keywords is None else answer_keywords
    n = _check_parallel("lveval_score", predictions=predictions, answers=answers, answer_keywords=keywords)
    metric = LVEVAL_DATASET_METRIC[name]
    total = 0.0
    for prediction, ground_truths, kw in zip(predictions, answers, keywords):
        if isinstance(ground_truths, str):
            raise InputError("each sample's answers must be a list of gold answers, not one string")
        if ground_truths:
            total += max(0.0, metric(prediction, ground_truths[0], kw))
    return round(100 * total / n, 2)
