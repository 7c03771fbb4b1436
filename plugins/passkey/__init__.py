"""``passkey``: passkey retrieval — find a number hidden in a long run of repeated filler.

Mohtashami & Jaggi 2023, "Landmark Attention: Random-Access Infinite Context Length for Transformers",
arXiv:2305.16300 (``llama/run_test.py``), used as in LongLoRA (Chen et al. 2023, "LongLoRA: Efficient
Fine-tuning of Long-Context Large Language Models", arXiv:2309.12307, ``passkey_retrivial.py``).

Prompt (lines joined with ``"\\n"``, as ``run_test.py``)::

    task_description  There is an important info hidden inside a lot of irrelevant text. …
    garbage_prefix    The grass is green. The sky is blue. The sun is yellow. Here we go. There and …
    information_line  The pass key is {k}. Remember it. {k} is the pass key.
    garbage_suffix    … back again. The grass is green. …
    final_question    What is the pass key? The pass key is

The garbage is the noise paragraph repeated and cut to length. Two departures from ``run_test.py``,
both to make cells of a length × depth grid exact and comparable across models:

* **Length in the model's own tokens.** ``run_test.py`` counts the garbage in characters; here the
  number of filler *words* of the repeated paragraph is fitted by binary search
  (:func:`longctx.evaluate.fit_length`) so that the complete prompt with BOS, plus the generation
  budget, comes within ``tolerance`` of the target without exceeding it. The unit is a word rather than a
  whole repetition because one repetition is ~21 Gemma tokens (89 bytes), too coarse to land within
  1 % of a 1k target; ``run_test.py`` itself cuts mid-word.
* **Depth instead of a random prefix.** ``run_test.py`` draws the prefix length uniformly; here the
  information line goes to the sentence boundary of the garbage closest to ``depth`` (a fraction of the
  garbage's characters), as in the needle-in-a-haystack depth sweeps.

The key is ``randint(1, 50000)`` (``run_test.py``) from ``random.Random`` seeded by the case seed only, so
a seed hides the same key at every length and depth (paired comparisons); ``key_digits`` draws a key of
exactly that many digits instead. Score (landmark / YaRN): the first integer of the prediction
(``\\d+``) equals the key.

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402: low
diffusion (the answer is one short span, easy to find) and low scope (a single fact is needed).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError
from longctx.evaluate import (
    Case,
    count_prompt_tokens,
    derive_seed,
    first_integer,
    fit_length,
    render_prompt,
    split_at_depth,
)
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range

TASK_DESCRIPTION = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there."
)
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
INFORMATION_LINE = "The pass key is {key}. Remember it. {key} is the pass key."
FINAL_QUESTION = "What is the pass key? The pass key is"

_WORDS = tuple(NOISE.split(" "))


def _sentences(words: tuple[str, ...] | list[str]) -> list[str]:
    out, cur = [], []
    for w in words:
        cur.append(w)
        if w.endswith("."):
            out.append(" ".join(cur))
            cur = []
    if cur:
        out.append(" ".join(cur))
    return out


_NOISE_SENTENCES = tuple(_sentences(_WORDS))


def garbage_sentences(n_words: int) -> list[str]:
    """The first ``n_words`` words of the repeated noise paragraph, as sentences (the last may be cut)."""
    reps, rem = divmod(n_words, len(_WORDS))
    return list(_NOISE_SENTENCES) * reps + _sentences(_WORDS[:rem])


@attrs.frozen
class PasskeyConfig:
    """Generation budget, length tolerance and the key's range."""

    max_new_tokens: int = attrs.field(
        default=10, validator=at_least(1), metadata={"help": "tokens to generate (landmark: 10)"}
    )
    tolerance: float = attrs.field(
        default=0.01,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )
    max_key: int = attrs.field(
        default=50000, validator=at_least(1), metadata={"help": "key drawn from 1..max_key (landmark: 50000)"}
    )
    key_digits: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(in_range(1, 30)),
        metadata={"help": "draw a key of exactly this many digits instead (none = use max_key)"},
    )


class Passkey:
    """The passkey retrieval task (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = "passkey"
    tags = MappingProxyType({"diffusion": "low", "scope": "low"})

    def __init__(self, config: PasskeyConfig | None = None, ctx: Any = None) -> None:
        self.config = config or PasskeyConfig()

    def key(self, seed: int) -> int:
        """The pass key hidden by ``seed`` (the same at every length and depth)."""
        rng = random.Random(derive_seed(self.name, seed))
        d = self.config.key_digits
        if d is not None:
            return rng.randint(10 ** (d - 1), 10**d - 1)
        return rng.randint(1, self.config.max_key)

    def prompt(self, n_words: int, depth: float, key: int, tokenizer: Any = None) -> tuple[str, dict[str, Any]]:
        """The prompt with ``n_words`` filler words and the information line at ``depth`` (rendered with the
        chat template when ``tokenizer`` is a :class:`~longctx.evaluate.ChatTokenizer`)."""
        info = INFORMATION_LINE.format(key=key)
        prefix, suffix, actual = split_at_depth(garbage_sentences(n_words), depth)
        head = "\n".join(x for x in (TASK_DESCRIPTION, prefix) if x) + "\n"
        body = head + info + ("\n" + suffix if suffix else "")
        text = render_prompt(tokenizer, body, "\n" + FINAL_QUESTION)
        start = text.index(info)
        meta = {
            "key": key,
            "information_line": info,
            "needle_start": start,
            "needle_end": start + len(info),
            "noise_words": n_words,
            "noise_depth": actual,
        }
        return text, meta

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens (prompt with BOS + ``max_new_tokens``) with the key at ``depth``."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"passkey: depth must be between 0 and 1, got {depth}")
        key = self.key(seed)
        budget = self.config.max_new_tokens
        try:
            n, text, tokens = fit_length(
                lambda n: self.prompt(n, depth, key, tokenizer)[0],
                tokenizer,
                length,
                reserve=budget,
                tolerance=self.config.tolerance,
            )
        except InputError:
            bare = count_prompt_tokens(tokenizer, self.prompt(0, depth, key, tokenizer)[0]) + budget
            raise InputError(
                f"passkey: a length of {length} tokens is too short; the prompt without filler plus "
                f"{budget} generated tokens already needs {bare}"
            ) from None
        _, meta = self.prompt(n, depth, key, tokenizer)
        yield Case(
            task=self.name,
            prompt=text,
            answer=str(key),
            target_tokens=length,
            actual_tokens=tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=budget,
            query=FINAL_QUESTION,
            meta=meta,
        )

    def score(self, prediction: str, case: Case) -> float:
        """1.0 when the first integer of ``prediction`` is the key, else 0.0."""
        got = first_integer(prediction)
        return 1.0 if got is not None and str(got) == str(int(case.answer)) else 0.0


@hookimpl
def lc_register_evaluators(register):
    register(
        "passkey",
        config=PasskeyConfig,
        build=Passkey,
        summary="Passkey retrieval: find a random number hidden at a depth in repeated filler text",
        paper="Mohtashami & Jaggi 2023, arXiv:2305.16300; Chen et al. 2023 (LongLoRA), arXiv:2309.12307",
    )
