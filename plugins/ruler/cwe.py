"""RULER's common words extraction (``cwe``; ``scripts/data/synthetic/common_words_extraction.py``),
Hsieh et al. 2024, arXiv:2404.06654 — aggregation over the whole context.

A numbered list (``"1. w 2. w …"``) holds ``num_cw`` common words ``freq_cw`` times each and every other
word ``freq_ucw`` times, shuffled; the model must name the common ones. Below ``short_length`` tokens
RULER switches to 6 and 1 repetitions (and a 20-word example with 3 and 1); from it on the list uses
``freq_cw`` / ``freq_ucw`` (RULER: 30 / 3) and the example has 40 words (10 / 3). Words are RULER's pool —
the ``wonderwords`` nouns, adjectives and verbs, deduplicated — in an order drawn from the seed; the
number of words is fitted to the length. Prompt (``constants.py``), after ``num_fewshot`` worked
examples (the same template, its answer prefix, a space and the numbered answer, joined by newlines)::

    Below is a numbered list of words. In these words, some appear more often than others. Memorize the
    ones that appear most often.
    {context}
    Question: What are the 10 most common words in the above list? Answer: The top 10 words that appear
    most often in the list are:

RULER's text says "10" whatever ``num_cw`` is; here the number follows ``num_cw`` (10 by default, so the
default prompt is RULER's). When more words are needed than wonderwords has (very long contexts in
fine-grained tokenizers) RULER samples all of them from an 8.5 MB word list it downloads; here the pool
is extended with the lower-case vocabulary of the bundled prose instead, and a length beyond even that is
an input error. Score: ``string_match_all`` over the common words.

Goldman et al. 2024 (arXiv:2407.00402): high diffusion (the evidence is every position of the list) and
high scope (the answer depends on counting all of it). Depth means nothing (``depth_sensitive = False``).
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError, ParameterError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, render_prompt
from longctx.haystack import prose_text, word_list
from longctx.params import at_least, in_range
from longctx.plugins.ruler.common import RulerTask, check_depth, fit_case, query_tail

__all__ = ["ANSWER_PREFIX", "TEMPLATE", "CommonWords", "CommonWordsConfig", "numbered", "word_pool"]

TEMPLATE = (
    "Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones "
    "that appear most often.\n{context}\nQuestion: What are the {num_cw} most common words in the above list?"
)
ANSWER_PREFIX = " Answer: The top {num_cw} words that appear most often in the list are:"
#: RULER's settings below ``short_length``: (main freq_cw, freq_ucw), and the example's (words, cw, ucw).
SHORT_FREQ = (6, 1)
SHORT_EXAMPLE = (20, 3, 1)
EXAMPLE = (40, 10, 3)


@functools.lru_cache(maxsize=1)
def word_pool() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """RULER's words (wonderwords nouns + adjectives + verbs, deduplicated, sorted) and the extension
    used only beyond them: the lower-case words (3+ letters) of the bundled prose that are not in it."""
    base = word_list(("noun", "adjective", "verb"))
    known = set(base)
    extra = sorted(set(re.findall(r"(?<![\w-])[a-z]{3,}(?![\w-])", prose_text())) - known)
    return base, tuple(extra)


def numbered(words: list[str]) -> str:
    """RULER's list format: ``"1. a 2. b 3. c"``."""
    return " ".join(f"{i + 1}. {w}" for i, w in enumerate(words))


@attrs.frozen
class CommonWordsConfig:
    """RULER's ``cwe`` entry of ``synthetic.yaml`` and the generator's options."""

    freq_cw: int = attrs.field(default=30, validator=at_least(2), metadata={"help": "repetitions of a common word"})
    freq_ucw: int = attrs.field(default=3, validator=at_least(1), metadata={"help": "repetitions of every other word"})
    num_cw: int = attrs.field(default=10, validator=in_range(1, 100), metadata={"help": "common words to name"})
    num_fewshot: int = attrs.field(default=1, validator=in_range(0, 10), metadata={"help": "worked examples"})
    short_length: int = attrs.field(
        default=4096,
        validator=at_least(0),
        metadata={"help": "below this length use RULER's short setting (6/1, 20-word example); 0: never"},
    )
    max_new_tokens: int = attrs.field(default=120, validator=at_least(1), metadata={"help": "tokens to generate"})
    tolerance: float = attrs.field(
        default=0.02,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )

    def __attrs_post_init__(self) -> None:
        if self.freq_cw <= self.freq_ucw:
            raise ParameterError(f"freq_cw ({self.freq_cw}) must be larger than freq_ucw ({self.freq_ucw})")


class CommonWords(RulerTask):
    """RULER's ``cwe`` task (an :class:`longctx.hooks.evaluation.EvalTask`); see the module docstring."""

    name = "ruler-cwe"
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})
    depth_sensitive = False

    def __init__(self, config: CommonWordsConfig | None = None, ctx: Any = None) -> None:
        self.config = config or CommonWordsConfig()

    @staticmethod
    def word_list(words: list[str], num_cw: int, freq_cw: int, freq_ucw: int, rng: random.Random) -> list[str]:
        """RULER's list: the first ``num_cw`` words ``freq_cw`` times, the rest ``freq_ucw`` times, shuffled."""
        items = words[:num_cw] * freq_cw + words[num_cw:] * freq_ucw
        rng.shuffle(items)
        return items

    def _prompt_text(self, context: str) -> tuple[str, str]:
        n = self.config.num_cw
        return TEMPLATE.format(context=context, num_cw=n), ANSWER_PREFIX.format(num_cw=n)

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens; ``depth`` is recorded but means nothing here."""
        check_depth(self.name, depth)
        cfg = self.config
        short = length < cfg.short_length
        freq_cw, freq_ucw = SHORT_FREQ if short else (cfg.freq_cw, cfg.freq_ucw)
        n_ex, ex_cw, ex_ucw = SHORT_EXAMPLE if short else EXAMPLE
        base, extra = word_pool()
        rng = random.Random(derive_seed(self.name, seed))
        # random.sample(words, n) is a prefix of a random permutation: fix the permutation, fit the prefix
        order = rng.sample(base, len(base)) + rng.sample(extra, len(extra))
        shots = []
        ex_rng = random.Random(derive_seed(self.name, seed, "examples"))
        for _ in range(cfg.num_fewshot):
            words = ex_rng.sample(base, n_ex)
            body, prefix = self._prompt_text(numbered(self.word_list(words, cfg.num_cw, ex_cw, ex_ucw, ex_rng)))
            shots.append(body + prefix + " " + numbered(words[: cfg.num_cw]))
        head = "".join(s + "\n" for s in shots)
        common = order[: cfg.num_cw]

        def make(n: int) -> tuple[str, list[str]]:
            n = min(n, len(order))
            shuffle = random.Random(derive_seed(self.name, seed, n))
            items = self.word_list(order[:n], cfg.num_cw, freq_cw, freq_ucw, shuffle)
            body, prefix = self._prompt_text(numbered(items))
            return render_prompt(tokenizer, head + body, prefix), items

        # bound the search by the pool only when it may be reached: evaluating the whole pool costs a
        # tokenization of ~40k list entries
        lo, probe = cfg.num_cw, cfg.num_cw + 32
        per_word = (count_prompt_tokens(tokenizer, make(probe)[0]) - count_prompt_tokens(tokenizer, make(lo)[0])) / 32
        needed = lo + (length - cfg.max_new_tokens) / max(per_word, 1e-9)
        hi = len(order) if 2 * needed >= len(order) else None
        fit, items = fit_case(
            self.name, make, tokenizer, length, reserve=cfg.max_new_tokens, tolerance=cfg.tolerance, lo=lo, hi=hi
        )
        if fit.n == len(order) and length - fit.tokens > cfg.tolerance * length:
            raise InputError(
                f"{self.name}: a length of {length} tokens needs more than the {len(order)} distinct words of "
                f"the word pool (it reaches {fit.tokens}); lower freq_ucw or the length"
            )
        question = TEMPLATE.rpartition("\n")[2].format(num_cw=cfg.num_cw)
        yield Case(
            task=self.name,
            prompt=fit.text,
            answer=numbered(common),
            references=tuple(common),
            target_tokens=length,
            actual_tokens=fit.tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=cfg.max_new_tokens,
            query=query_tail(fit.text, question),
            meta={
                "num_words": fit.n,
                "list_length": len(items),
                "freq_cw": freq_cw,
                "freq_ucw": freq_ucw,
                "num_cw": cfg.num_cw,
                "num_fewshot": cfg.num_fewshot,
                "short_setting": short,
                "extended_pool": fit.n > len(base),
            },
        )
