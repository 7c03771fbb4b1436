"""What the RULER tasks (and gkamradt's ``niah``) share: growable haystacks, needle insertion at
sentence or line boundaries, length fitting with a task-named error, the final-question query, and
RULER's scoring.

Hsieh et al. 2024, "RULER: What's the Real Context Size of Your Long-Context Language Models?",
arXiv:2404.06654. RULER fits each prompt by searching the number of haystack *units* (essay words,
noise repetitions, distractor needles); here a haystack is a :class:`Filler` — one period of text that
grows word by word and repeats when exhausted (RULER repeats its essay too) — so a prompt can land within
1–2 % of any target even at 1k tokens, and the number of units is found with
:func:`longctx.evaluate.fit_length` (estimate, gallop, bisect).

Where a needle may go is a list of *boundaries*, character offsets of the haystack:

* RULER's **essay** haystack is its words joined by single spaces and split into sentences; needles go
  between sentences (``" ".join``). Our essay is the bundled public-domain prose (whitespace collapsed
  as RULER does), split by :func:`longctx.textsplit.sentence_spans` (nltk's punkt would download).
* RULER's **noise** haystack is its paragraph repeated, one repetition per line; needles go between
  lines (``"\\n".join``). The last line may be cut at a word (the fitting unit is a word).
* RULER's **needle** haystack is one distractor needle per line (see ``ruler.niah``).
* gkamradt's haystack keeps the raw text (paragraph breaks included) and backs the insertion point off
  to the previous sentence-final ``'.'`` (``periods_only``).
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

from longctx.errors import InputError
from longctx.evaluate import Fit, count_prompt_tokens, fit_length
from longctx.haystack import NOISE, prose_text
from longctx.metrics import ruler_match_all, ruler_postprocess
from longctx.textsplit import sentence_spans

if TYPE_CHECKING:
    from longctx.evaluate import Case

__all__ = [
    "DEPTHS",
    "PAPER",
    "Filler",
    "RulerTask",
    "check_depth",
    "count_plain_tokens",
    "essay_sentences",
    "essay_text",
    "fit_case",
    "insert_at",
    "nearest_boundary",
    "noise_lines",
    "noise_text",
    "previous_boundary",
    "query_tail",
]

PAPER = "Hsieh et al. 2024, arXiv:2404.06654"
#: RULER's needle depths: ``np.round(np.linspace(0, 100, 40))`` percent (no value is a .5 tie, so
#: Python's ``round`` gives the same integers).
DEPTHS: tuple[int, ...] = tuple(round(100 * i / 39) for i in range(40))


# -- haystacks -----------------------------------------------------------------------------------------


@attrs.frozen(eq=False)
class Filler:
    """A haystack that grows one word at a time: the first ``n`` words of ``text`` repeated (joined by
    ``sep``) as often as needed, with the offsets where a needle may be inserted.

    :ivar text: one period of the haystack.
    :ivar sep: what joins two repetitions of ``text``.
    :ivar word_ends: the offset just after each whitespace-separated word of ``text``.
    :ivar bounds: offsets inside ``text`` just after a sentence's last character (sorted).
    :ivar period_bounds: the subset of ``bounds`` whose sentence ends with a bare ``'.'``.
    :ivar ends_with_period: whether ``text`` itself ends a sentence with ``'.'``.
    """

    text: str
    sep: str
    word_ends: tuple[int, ...]
    bounds: tuple[int, ...]
    period_bounds: tuple[int, ...]
    ends_with_period: bool

    @classmethod
    def from_text(cls, text: str, sep: str, *, sentences: bool = True) -> Filler:
        """A filler over ``text``; ``sentences=False`` allows insertion only between repetitions (lines)."""
        ends = tuple(m.end() for m in re.finditer(r"\S+", text))
        if not ends:
            raise InputError("a haystack text needs at least one word")
        bounds: list[int] = []
        if sentences:
            for s, e in sentence_spans(text):
                b = s + len(text[s:e].rstrip())
                if 0 < b < len(text.rstrip()):
                    bounds.append(b)
        periods = tuple(b for b in bounds if text[b - 1] == "." and text[b - 2 : b] != "..")
        return cls(text, sep, ends, tuple(bounds), periods, text.rstrip().endswith("."))

    @property
    def words(self) -> int:
        """Words in one period of the text."""
        return len(self.word_ends)

    def start_after(self, boundary: int) -> int:
        """The index of the first word after offset ``boundary`` (a sentence boundary)."""
        return bisect.bisect_right(self.word_ends, boundary) % self.words

    def prefix(self, n: int, *, periods_only: bool = False, start: int = 0) -> tuple[str, list[int]]:
        """``n`` words from word ``start`` on (wrapping around) and the sorted insertion offsets in them:
        0, the sentence boundaries (only the ``'.'`` ones with ``periods_only``), the joints between
        repetitions, and the end."""
        if n <= 0:
            return "", [0]
        inner = self.period_bounds if periods_only else self.bounds
        joint = not periods_only or self.ends_with_period
        parts: list[str] = []
        bounds = [0]
        size = 0
        first = start % self.words
        while n > 0:
            # one (partial) period of the text: words first .. first + take - 1
            take = min(n, self.words - first)
            lo = self.word_ends[first - 1] if first else 0
            if first:  # a rotated start begins at its first word, not at the whitespace before it
                lo = self.word_ends[first] - len(self.text[lo : self.word_ends[first]].lstrip())
            hi = self.word_ends[first + take - 1]
            if parts:
                size += len(self.sep)
            i, j = bisect.bisect_right(inner, lo), bisect.bisect_right(inner, hi)
            bounds.extend(size + b - lo for b in inner[i:j])
            parts.append(self.text[lo:hi])
            size += hi - lo
            if first + take == self.words and joint:
                bounds.append(size)
            n -= take
            first = 0
        out = self.sep.join(parts)
        if bounds[-1] != len(out):
            bounds.append(len(out))
        return out, bounds


@functools.lru_cache(maxsize=1)
def noise_lines() -> Filler:
    """RULER's noise haystack: the noise paragraph once per line; needles go between lines."""
    return Filler.from_text(NOISE, "\n", sentences=False)


@functools.lru_cache(maxsize=1)
def noise_text() -> Filler:
    """The noise paragraph repeated as running text (``niah``'s noise haystack); needles go between
    sentences."""
    return Filler.from_text(NOISE, " ")


@functools.lru_cache(maxsize=8)
def essay_sentences(source: str = "pride_and_prejudice") -> Filler:
    """RULER's essay haystack: the prose with whitespace collapsed to single spaces (RULER's
    ``re.sub(r"\\s+", " ", essay)``), needles between sentences."""
    return Filler.from_text(" ".join(prose_text(source).split()), " ")


@functools.lru_cache(maxsize=8)
def essay_text(source: str = "pride_and_prejudice") -> Filler:
    """gkamradt's essay haystack: the raw prose (paragraph breaks kept), repeated with a blank line."""
    return Filler.from_text(prose_text(source).strip(), "\n\n")


# -- placing needles ---------------------------------------------------------------------------------


def check_depth(task: str, depth: float) -> None:
    """Raise an :class:`InputError` naming ``task`` unless ``0 <= depth <= 1``."""
    if not 0.0 <= depth <= 1.0:
        raise InputError(f"{task}: depth must be between 0 and 1, got {depth}")


def nearest_boundary(bounds: Sequence[int], target: float) -> int:
    """The boundary closest to offset ``target`` (the earlier one on a tie)."""
    i = bisect.bisect_left(bounds, target)
    if i == 0:
        return bounds[0]
    if i == len(bounds):
        return bounds[-1]
    before, after = bounds[i - 1], bounds[i]
    return before if target - before <= after - target else after


def previous_boundary(bounds: Sequence[int], target: float) -> int:
    """The last boundary at or before offset ``target`` (gkamradt's back-off to the previous period)."""
    i = bisect.bisect_right(bounds, target)
    return bounds[max(i - 1, 0)]


def insert_at(text: str, items: Sequence[tuple[int, str]], sep: str) -> tuple[str, list[tuple[int, int]]]:
    """Insert each ``(offset, needle)`` into ``text`` as a unit of its own, separated by ``sep`` from its
    neighbours (no ``sep`` is doubled: a neighbour that already starts with whitespace needs none).
    Needles at the same offset keep their order. Returns the text and each needle's ``[start, end)``
    span in it, in the order of ``items``."""
    order = sorted(range(len(items)), key=lambda i: (items[i][0], i))
    out: list[str] = []
    size = 0
    spans: list[tuple[int, int]] = [(0, 0)] * len(items)

    def add(part: str) -> None:
        nonlocal size
        out.append(part)
        size += len(part)

    def add_piece(piece: str) -> None:
        # haystack pieces end at a boundary, so they never end with whitespace; an inner one starts with
        # the whitespace that separated it from the previous sentence
        if piece:
            if out and not piece[0].isspace():
                add(sep)
            add(piece)

    prev = 0
    for i in order:
        at, needle = items[i]
        add_piece(text[prev:at])
        if out:
            add(sep)
        spans[i] = (size, size + len(needle))
        add(needle)
        prev = at
    add_piece(text[prev:])
    return "".join(out), spans


# -- fitting and prompts -----------------------------------------------------------------------------


def fit_case(
    task: str,
    make: Callable[[int], tuple[str, Any]],
    tokenizer: Any,
    length: int,
    *,
    reserve: int,
    tolerance: float,
    lo: int = 0,
    hi: int | None = None,
) -> tuple[Fit, Any]:
    """Fit the number of haystack units of ``make(n) -> (prompt, info)`` to ``length`` tokens (prompt
    with BOS + ``reserve``) with :func:`fit_length`; returns the fit and the ``info`` of the chosen
    prompt. A length too short even for ``lo`` units is an :class:`InputError` naming the task and the
    tokens the smallest prompt needs."""
    made: dict[int, tuple[str, Any]] = {}

    def build(n: int) -> str:
        if n not in made:
            made[n] = make(n)
        return made[n][0]

    try:
        fit = fit_length(build, tokenizer, length, lo=lo, hi=hi, reserve=reserve, tolerance=tolerance)
    except InputError:
        bare = count_prompt_tokens(tokenizer, build(lo)) + reserve
        raise InputError(
            f"{task}: a length of {length} tokens is too short; the prompt with the least haystack plus "
            f"{reserve} generated tokens already needs {bare}"
        ) from None
    return fit, made[fit.n][1]


def query_tail(prompt: str, question: str) -> str:
    """The query a context reducer must keep: the prompt from the last occurrence of ``question`` on
    (the question and the answer prefix after it), or the last line when ``question`` is not found."""
    i = prompt.rfind(question)
    if i < 0:
        return prompt.rstrip().rpartition("\n")[2]
    return prompt[i:]


def count_plain_tokens(tokenizer: Any, text: str) -> int:
    """Tokens of ``text`` without special tokens (RULER's ``token_position_answer``)."""
    if not text:
        return 0
    try:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    except TypeError:
        return len(tokenizer.encode(text))


# -- scoring -------------------------------------------------------------------------------------------


class RulerTask:
    """Base of the RULER tasks: taxonomy tags and RULER's per-sample scoring.

    ``score`` cleans the prediction as RULER's evaluator does (strip; control characters → newline) and
    applies ``string_match_all`` — the fraction of the references found in it, case-insensitively —
    except where a task sets ``match = ruler_match_part`` (any reference found: 1.0).
    """

    name: str = "ruler"
    tags: MappingProxyType[str, str] = MappingProxyType({"diffusion": "low", "scope": "low"})
    match: Callable[[str, Sequence[str]], float] = staticmethod(ruler_match_all)

    def score(self, prediction: str, case: Case) -> float:
        """RULER's score of ``prediction`` against ``case.references`` in [0, 1]."""
        return float(self.match(ruler_postprocess(prediction), case.golds))
