"""RULER's frequent words extraction (``fwe``; ``scripts/data/synthetic/freq_words_extraction.py``),
Hsieh et al. 2024, arXiv:2404.06654 — aggregation over a Zipfian "coded" text.

A vocabulary of ``vocab_size`` random ``coded_wordlen``-letter lower-case words (RULER: 6 letters,
``vocab_size = (length − max_new_tokens) // 50``) is shuffled and its first word replaced by ``'...'``,
which plays the noise. Word of rank ``k`` (1-based) appears ``int(N · k^−α / ζ(α))`` times — a zeta
(Zipf) distribution with ``alpha`` (RULER: 2.0) — and the words are shuffled and joined by spaces; ``N``
is fitted to the length. The answer is the three most frequent *coded* words, ranks 2–4 (rank 1 is the
dots). Prompt (``constants.py``)::

    Read the following coded text and track the frequency of each coded word. Find the three most
    frequently appeared coded words. {context}
    Question: Do not provide any explanation. Please ignore the dots '....'. What are the three most
    frequently appeared words in the above coded text? Answer: According to the coded text above, the
    three most frequently appeared words are:

RULER fits ``N`` by a linear search (start at ``length // coded_wordlen``, step ``length // 32``) and so
lands up to ~3 % short; here :func:`~longctx.evaluate.fit_length` bisects. ``N`` starts where the three
answers are strictly more frequent than rank 5 for every larger ``N`` (a shorter length is an input
error). ζ is computed here (Euler–Maclaurin) rather than with scipy. Score: ``string_match_all``.

Goldman et al. 2024 (arXiv:2407.00402): high diffusion and high scope — every word of the text counts
towards the answer. Depth means nothing (``depth_sensitive = False``).
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case, derive_seed, render_prompt
from longctx.params import at_least, in_range
from longctx.plugins.ruler.common import RulerTask, check_depth, fit_case, query_tail

__all__ = ["ANSWER_PREFIX", "TEMPLATE", "FrequentWords", "FrequentWordsConfig", "counts", "zeta"]

TEMPLATE = (
    "Read the following coded text and track the frequency of each coded word. Find the three most frequently "
    "appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore the dots '....'. "
    "What are the three most frequently appeared words in the above coded text?"
)
ANSWER_PREFIX = " Answer: According to the coded text above, the three most frequently appeared words are:"

# B_2j / (2j)! for j = 1..6 (Bernoulli numbers B2 = 1/6, B4 = −1/30, B6 = 1/42, B8 = −1/30, B10 = 5/66,
# B12 = −691/2730)
_EM = tuple(
    b / math.factorial(2 * j) for j, b in enumerate((1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730), start=1)
)


def zeta(s: float, terms: int = 20) -> float:
    """The Riemann zeta function ``ζ(s) = Σ k^−s`` for real ``s > 1`` (Euler–Maclaurin summation after
    ``terms`` terms; accurate to double precision for the α's RULER uses)."""
    if not s > 1:
        raise ValueError(f"zeta(s) diverges for s <= 1, got {s}")
    n = terms
    total = math.fsum(k**-s for k in range(1, n))
    total += n ** (1 - s) / (s - 1) + 0.5 * n**-s
    rising = s  # s (s+1) … (s+2j−2)
    for j, c in enumerate(_EM, start=1):
        total += c * rising * n ** (-s - 2 * j + 1)
        rising *= (s + 2 * j - 1) * (s + 2 * j)
    return total


def counts(num_words: int, vocab_size: int, alpha: float) -> list[int]:
    """RULER's word counts: ``int(num_words · k^−alpha / ζ(alpha))`` for ranks ``k = 1 … vocab_size``."""
    z = zeta(alpha)
    return [int(num_words * (k**-alpha) / z) for k in range(1, vocab_size + 1)]


@attrs.frozen
class FrequentWordsConfig:
    """RULER's ``fwe`` entry of ``synthetic.yaml`` and the generator's options."""

    alpha: float = attrs.field(
        default=2.0, validator=in_range(1.0001, 10.0), metadata={"help": "zeta distribution exponent (> 1)"}
    )
    coded_wordlen: int = attrs.field(default=6, validator=in_range(2, 20), metadata={"help": "letters of a coded word"})
    vocab_size: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(at_least(5)),
        metadata={"help": "coded words to draw from (none: RULER's (length - max_new_tokens) // 50)"},
    )
    max_new_tokens: int = attrs.field(default=50, validator=at_least(1), metadata={"help": "tokens to generate"})
    tolerance: float = attrs.field(
        default=0.02,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )


class FrequentWords(RulerTask):
    """RULER's ``fwe`` task (an :class:`longctx.hooks.evaluation.EvalTask`); see the module docstring."""

    name = "ruler-fwe"
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})
    depth_sensitive = False

    def __init__(self, config: FrequentWordsConfig | None = None, ctx: Any = None) -> None:
        self.config = config or FrequentWordsConfig()

    def vocab(self, rng: random.Random, size: int) -> list[str]:
        """``size`` distinct random coded words in random order, the first replaced by ``'...'``."""
        seen: set[str] = set()
        while len(seen) < size:
            seen.add("".join(rng.choices(string.ascii_lowercase, k=self.config.coded_wordlen)))
        words = sorted(seen)
        rng.shuffle(words)
        words[0] = "..."
        return words

    def min_words(self, vocab_size: int) -> int:
        """The smallest ``N`` from which on ranks 2–4 are always strictly more frequent than rank 5."""
        a = self.config.alpha
        z = zeta(a)
        c4, c5 = 4**-a / z, (5**-a / z if vocab_size >= 5 else 0.0)
        n = math.ceil(2 / (c4 - c5)) + 1  # beyond this, int(N c4) - int(N c5) >= 1 always
        while n > 1:
            c = counts(n - 1, min(vocab_size, 5), a)
            if not (c[3] >= 1 and (len(c) < 5 or c[3] > c[4])):
                break
            n -= 1
        return n

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens; ``depth`` is recorded but means nothing here."""
        check_depth(self.name, depth)
        cfg = self.config
        size = cfg.vocab_size if cfg.vocab_size is not None else (length - cfg.max_new_tokens) // 50
        if size < 5:
            raise InputError(
                f"{self.name}: a length of {length} tokens gives a vocabulary of {size} coded words "
                f"((length - {cfg.max_new_tokens}) // 50); it needs at least 5 — ask for a longer length "
                "or set vocab_size"
            )
        rng = random.Random(derive_seed(self.name, seed))
        vocab = self.vocab(rng, size)
        answers = vocab[1:4]

        def make(n: int) -> tuple[str, list[int]]:
            c = counts(n, size, cfg.alpha)
            words = [w for w, k in zip(vocab, c) for _ in range(k)]
            random.Random(derive_seed(self.name, seed, n)).shuffle(words)
            body = TEMPLATE.format(context=" ".join(words))
            return render_prompt(tokenizer, body, ANSWER_PREFIX), c

        lo = self.min_words(size)
        fit, c = fit_case(
            self.name, make, tokenizer, length, reserve=cfg.max_new_tokens, tolerance=cfg.tolerance, lo=lo
        )
        question = TEMPLATE.rpartition("\n")[2]
        yield Case(
            task=self.name,
            prompt=fit.text,
            answer=" ".join(answers),
            references=tuple(answers),
            target_tokens=length,
            actual_tokens=fit.tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=cfg.max_new_tokens,
            query=query_tail(fit.text, question),
            meta={
                "num_words": fit.n,
                "vocab_size": size,
                "alpha": cfg.alpha,
                "counts": dict(zip(vocab[:10], c[:10])),
                "text_words": sum(c),
            },
        )
