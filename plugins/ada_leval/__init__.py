"""``ada-leval-tsort``: put shuffled segments of a book back in order (Ada-LEval's TSort).

Wang, Duan, Zhang, Lin & Chen 2024, "Ada-LEval: Evaluating long-context LLMs with length-adaptable
benchmarks", NAACL 2024, arXiv:2404.06480 (code: ``open-compass/Ada-LEval``, ``ada_leval/dataset.py``).

TSort gives the model N shuffled segments of contiguous text from a book — N = 4 in every setting —
together with the paragraphs just before and just after them as hints, and asks for the segments'
original order. Only the exact order counts (chance: 1/N!, 4.2 % for N = 4). The length of a case is set
by the length of the segments: Ada-LEval caps each segment and each neighbouring context (2k: 350 tokens
per segment, 200 before and after; 16k: 3700 and 500; 128k: 31,700 and 500) and strides the start through
Booksum's Project Gutenberg books, with chapter numbers removed so that no surface cue gives the order away.

Here the book is the bundled public-domain *Pride and Prejudice* (:func:`longctx.haystack.prose_text`, or
any UTF-8 text via ``source``), its ``Chapter N`` headings dropped. A case of ``length`` tokens:

1. a seeded start sentence; the **segments** are ``T`` consecutive sentences split into N runs of
   ⌊T/N⌋ or ⌈T/N⌉ sentences (paragraph breaks kept), and T is fitted by binary search
   (:func:`longctx.evaluate.fit_length`) to the length minus a hint budget (``context_fraction`` of the
   length, at most ``max_context_tokens``: Ada-LEval's 200–500 tokens a side);
2. the **hints** — the ``w`` words before the first segment and after the last — fill the rest: ``w`` is
   fitted by a second binary search, so the prompt lands within ``tolerance`` of the target even though
   a sentence is a coarse unit;
3. the segments are shown in a seeded random order as ``Segment 1`` … ``Segment N``; the gold answer is
   the list of designations in book order (``[3, 1, 4, 2]``: segment 3 comes first).

The prompt follows Ada-LEval's instructions (a role line, the task, a format-only sample input and
output, the case, a closing request; the benchmark ships its TSort prompts inside its data files, so the
wording here follows the BestAnswer meta-prompt in ``dataset.py`` and the paper's figure), and ends with
the answer prefix ``"Answer:"``.

**Scoring** (``TextSort.evaluate``): take the text after ``"Answer:"`` when present; if it parses as JSON,
that is the answer; otherwise, if exactly one permutation of 1…N occurs in it as a subsequence of
characters, that permutation; otherwise no answer (``[0, 0, 0, 0]``). The answer is correct only if it is
the gold order. Two deliberate departures: the reference compares with ``zip`` and so accepts a *prefix*
of the gold order (even ``[]``) — here the whole list must match; and a JSON value that is not a list
falls through to the subsequence rule instead of crashing. ``metrics()`` also reports ``followed``
(a valid permutation was extracted: the paper's accuracy "excluding cases that failed to follow the
instruction").

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402:
**high diffusion** (the order is nowhere stated; it must be inferred from the content of every segment)
and **high scope** (all segments and their boundaries are needed).
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, fit_length, render_prompt
from longctx.haystack import DEFAULT_PROSE, prose_text
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range
from longctx.textsplit import sentence_spans

NAME = "ada-leval-tsort"
PAPER = "Wang et al. 2024 (Ada-LEval), NAACL 2024, arXiv:2404.06480"

INSTRUCTION = (
    "You are an AI assistant. Your job is to sort multiple segments of a book into their original order.\n"
    "Each time, you will be provided with the text right before the segments, {n} segments in a shuffled order, "
    "and the text right after the segments.\n"
    "Each segment begins with 'Segment' and a number (e.g. Segment 2), which represents its designation.\n"
    "You need to determine the order in which the segments appear in the book.\n"
    "The case sample is shown below and you should give me the answer in the format exactly the same as the "
    "sample.\n"
    "However, you should NOT focus on the content of sample answer.\n"
    "Sample Input (format only):\n"
    "Before the segments:\nXXX(The text before the segments)\n"
    "Segment 1:\nXXX(The content of segment 1)\n"
    "Segment 2:\nXXX(The content of segment 2)\n"
    ".\n.\n.\n"
    "Segment {n}:\nXXX(The content of segment {n})\n"
    "After the segments:\nXXX(The text after the segments)\n"
    "Sample Output (format only):\n"
    "Answer: {sample} (the designations of the segments in their original order)\n\n"
)
CLOSING = (
    "Now the segments are over, please sort them into their original order. "
    "You must give me only the designations of the segments, as a list, in their original order.\n"
)
ANSWER_PREFIX = "Answer:"

_CHAPTER = re.compile(r"^\s*chapter\s+[0-9ivxlc]+\.?\s*$", re.IGNORECASE)


@functools.lru_cache(maxsize=4)
def book(source: str = DEFAULT_PROSE) -> tuple[tuple[str, ...], tuple[bool, ...]]:
    """The sentences of a book in order and, for each, whether it starts a paragraph (``Chapter N``
    headings removed, whitespace inside a sentence collapsed)."""
    text = prose_text(source)
    sentences: list[str] = []
    starts: list[bool] = []
    for para in re.split(r"\n\s*\n", text):
        if not para.strip() or _CHAPTER.match(para):
            continue
        first = True
        for s, e in sentence_spans(para):
            sent = " ".join(para[s:e].split())
            if sent:
                sentences.append(sent)
                starts.append(first)
                first = False
    if not sentences:
        raise InputError(f"{NAME}: the text {source!r} has no sentences")
    return tuple(sentences), tuple(starts)


def render(sentences: Sequence[str], starts: Sequence[bool]) -> str:
    """Sentences as text: a newline before each that starts a paragraph (but the first), else a space."""
    out = []
    for i, (s, new) in enumerate(zip(sentences, starts, strict=True)):
        if i:
            out.append("\n" if new else " ")
        out.append(s)
    return "".join(out)


def split_sizes(total: int, n: int) -> list[int]:
    """``total`` sentences as ``n`` segments of ⌊total/n⌋ or ⌈total/n⌉ (the longer ones first)."""
    q, r = divmod(total, n)
    return [q + (1 if i < r else 0) for i in range(n)]


# -- the reference's answer extraction -----------------------------------------------------------------


def _unique_subsequence_permutation(text: str, n: int) -> list[int] | None:
    """The only permutation of 1…n occurring in ``text`` as a character subsequence, or None (none or
    several; ``TextSort.evaluate``'s ``is_subseq`` over all permutations, found by a pruned search)."""
    digits = [c for c in text if c in "123456789"[:n]]
    found: list[list[int]] = []

    def search(pos: int, used: list[int]) -> None:
        if len(found) > 1:
            return
        if len(used) == n:
            found.append(list(used))
            return
        for d in range(1, n + 1):
            if d in used:
                continue
            c = str(d)
            try:
                nxt = digits.index(c, pos)
            except ValueError:
                continue
            used.append(d)
            search(nxt + 1, used)
            used.pop()

    search(0, [])
    return found[0] if len(found) == 1 else None


def extract_order(prediction: str, n: int) -> list[Any]:
    """The order a prediction gives, read as Ada-LEval reads it (the text after ``"Answer:"``; JSON; else a
    unique permutation subsequence; else ``[0] * n``)."""
    pred = prediction
    if "Answer:" in pred:
        pred = pred.split("Answer:")[1].strip()
    try:
        value = json.loads(pred)
    except ValueError:
        value = None
    if isinstance(value, list):
        return value
    perm = _unique_subsequence_permutation(pred, n)
    return perm if perm is not None else [0] * n


@attrs.frozen
class TSortConfig:
    """Segments, hint budget, source text, generation budget and length tolerance."""

    segments: int = attrs.field(
        default=4, validator=in_range(2, 9), metadata={"help": "number of segments N (Ada-LEval: 4)"}
    )
    context_fraction: float = attrs.field(
        default=0.2,
        validator=in_range(0.0, 0.9),
        metadata={"help": "share of the length for the text before + after the segments"},
    )
    max_context_tokens: int = attrs.field(
        default=1000,
        validator=at_least(0),
        metadata={"help": "cap on the before + after text in tokens (Ada-LEval: 500 a side)"},
    )
    source: str = attrs.field(
        default=DEFAULT_PROSE,
        metadata={"help": "the book: pride_and_prejudice (bundled) or a path to a UTF-8 text file"},
    )
    max_new_tokens: int = attrs.field(
        default=32, validator=at_least(1), metadata={"help": "tokens to generate (the answer is a short list)"}
    )
    tolerance: float = attrs.field(
        default=0.02,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )


class TSort:
    """Ada-LEval's TSort task (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = NAME
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})
    #: depth means nothing here: one case per length
    depth_sensitive = False

    def __init__(self, config: TSortConfig | None = None, ctx: Any = None) -> None:
        self.config = config or TSortConfig()

    def shuffle(self, seed: int) -> list[int]:
        """``shown[j]`` = the book position (0-based) of the segment shown as ``Segment j+1``."""
        shown = list(range(self.config.segments))
        random.Random(derive_seed(self.name, seed, "order", self.config.segments)).shuffle(shown)
        return shown

    @staticmethod
    def gold_order(shown: Sequence[int]) -> list[int]:
        """The designations in book order: the answer to the case."""
        return [shown.index(b) + 1 for b in range(len(shown))]

    def prompt(
        self, start: int, total: int, words: int, shown: Sequence[int], tokenizer: Any = None
    ) -> tuple[str, dict[str, Any]]:
        """The prompt for segments of ``total`` sentences from sentence ``start`` with ``words`` words of
        text before and after them, shown in the order ``shown``."""
        sents, starts = book(self.config.source)
        n = self.config.segments
        sizes = split_sizes(total, n)
        bounds = [start + sum(sizes[:i]) for i in range(n + 1)]
        segs = [render(sents[bounds[i] : bounds[i + 1]], starts[bounds[i] : bounds[i + 1]]) for i in range(n)]
        before_words = render(sents[max(0, start - 400) : start], starts[max(0, start - 400) : start]).split()
        end = bounds[-1]
        after_words = render(sents[end : end + 400], starts[end : end + 400]).split()
        before = " ".join(before_words[max(0, len(before_words) - words) :]) if words else ""
        after = " ".join(after_words[:words])
        sample = json.dumps([n, *range(1, n)])  # format only, e.g. [4, 1, 2, 3]
        parts = [INSTRUCTION.format(n=n, sample=sample), f"Before the segments:\n{before}\n"]
        parts += [f"Segment {j + 1}:\n{segs[b]}\n" for j, b in enumerate(shown)]
        parts += [f"After the segments:\n{after}\n", CLOSING]
        text = render_prompt(tokenizer, "".join(parts), ANSWER_PREFIX)
        meta = {
            "segments": n,
            "start_sentence": start,
            "segment_sentences": sizes,
            "context_words": words,
            "shown": list(shown),
            "source": self.config.source,
        }
        return text, meta

    def _start(self, tokenizer: Any, length: int, seed: int) -> tuple[int, int]:
        """A seeded start sentence leaving room for ``length`` tokens of text after it, and the number of
        sentences (an overestimate) that room holds."""
        sents, _ = book(self.config.source)
        probe = " ".join(sents[:200])
        chars_per_token = len(probe) / max(1, count_prompt_tokens(tokenizer, probe))
        mean_sentence = sum(map(len, sents)) / len(sents)
        need = math.ceil(1.5 * length * chars_per_token / mean_sentence) + 2 * self.config.segments
        lo = 50 if len(sents) > need + 100 else 0  # some text before the first segment
        if len(sents) - need <= lo:
            raise InputError(
                f"{self.name}: the text {self.config.source!r} (~{len(sents)} sentences) is too short for "
                f"{length} tokens; choose a shorter length or a longer source"
            )
        return random.Random(derive_seed(self.name, seed, "start", length)).randrange(lo, len(sents) - need), need

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens (prompt with BOS + ``max_new_tokens``)."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        cfg = self.config
        n, budget = cfg.segments, cfg.max_new_tokens
        shown = self.shuffle(seed)
        start, hi = self._start(tokenizer, length, seed)
        hint_budget = min(round(cfg.context_fraction * length), cfg.max_context_tokens)

        def build_segments(t: int) -> str:
            return self.prompt(start, t, 0, shown, tokenizer)[0]

        fit = None
        for reserve in (budget + hint_budget, budget):  # without room for hints when the length is tight
            try:
                # stop within half the hint budget: the hints fill the rest at word granularity
                slack = (reserve - budget) / 2 / length
                fit = fit_length(build_segments, tokenizer, length, lo=n, hi=hi, reserve=reserve, tolerance=slack)
                break
            except InputError:
                continue
        if fit is None:
            bare = count_prompt_tokens(tokenizer, build_segments(n)) + budget
            raise InputError(
                f"{self.name}: a length of {length} tokens is too short; the prompt with {n} one-sentence "
                f"segments plus {budget} generated tokens already needs {bare}"
            )
        total = fit.n
        words, text, tokens = fit_length(
            lambda w: self.prompt(start, total, w, shown, tokenizer)[0],
            tokenizer,
            length,
            reserve=budget,
            tolerance=cfg.tolerance,
        )
        _, meta = self.prompt(start, total, words, shown, tokenizer)
        gold = self.gold_order(shown)
        answer = json.dumps(gold)
        yield Case(
            task=self.name,
            prompt=text,
            answer=answer,
            references=(answer,),
            target_tokens=length,
            actual_tokens=tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=budget,
            query=CLOSING + ANSWER_PREFIX if text.endswith(CLOSING + ANSWER_PREFIX) else None,
            meta={**meta, "gold": gold},
        )

    # -- scoring ----------------------------------------------------------------------------------------

    def score(self, prediction: str, case: Case) -> float:
        """1.0 when the order read from ``prediction`` (Ada-LEval's extraction) is the gold order, else 0.0."""
        return 1.0 if extract_order(prediction, case.meta["segments"]) == case.meta["gold"] else 0.0

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """``exact`` (the score) and ``followed`` (a permutation of 1…N was extracted)."""
        n = case.meta["segments"]
        got = extract_order(prediction, n)
        followed = sorted(x for x in got if isinstance(x, int)) == list(range(1, n + 1))
        return {"exact": self.score(prediction, case), "followed": float(followed)}


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance contract of ``ada-leval-tsort`` (resolved lazily). The gold
    order is computed, not copied; lengths are 4k/8k because the instructions alone take ~1.3k bytes and four
    long sentences of the novel can take another 700."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.contrib.conformance.contracts import EvaluationContract

        class TSortContract(EvaluationContract):
            technique = NAME
            lengths = (4096, 8192)
            gold_in_context = False

        return {NAME: TSortContract}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    register(
        NAME,
        config=TSortConfig,
        build=TSort,
        summary="Ada-LEval TSort: restore the original order of shuffled consecutive segments of a book",
        paper=PAPER,
    )
