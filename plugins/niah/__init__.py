"""``niah``: needle in a haystack — one fact sentence hidden at a depth of a long text, asked back.

Kamradt 2023, "Needle In A Haystack — Pressure Testing LLMs" (gkamradt/LLMTest_NeedleInAHaystack,
``needlehaystack/llm_needle_haystack_tester.py``, ``run.py``, ``providers/``), the length × depth grid
that RULER (Hsieh et al. 2024, arXiv:2404.06654) later generalised.

**Needle and question** (``run.py``'s defaults)::

    needle    \\nThe best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day.\\n
    question  What is the best thing to do in San Francisco?

**Haystack.** The reference concatenates Paul Graham's essays; here ``essay`` is the bundled public-domain
*Pride and Prejudice* (never the essays, which are copyrighted) from its first chapter on, paragraph breaks
kept and repeated when a length needs more, or ``noise``, RULER's repeated paragraph. The haystack is cut
after a whole number of words, fitted (:func:`longctx.evaluate.fit_length`) so that the *whole prompt*
with BOS plus the generation budget lands within ``tolerance`` of the target length — the reference cuts
its context to ``length − 200`` tokens (``final_context_length_buffer``) without measuring the prompt.

**Insertion** (``insert_needle``): the point is ``int(len · depth)`` of the haystack, then backs off to
the previous sentence-final ``'.'`` (the reference walks back token by token until the previous token is
the ``'.'`` token); depth 1 appends the needle at the end, and a point with no period before it goes to
the start. Positions are characters here, not tokens, and an abbreviation's period (``Mr.``) is not a
sentence end. ``meta["depth_placed"]`` is the fraction of the haystack before the needle after back-off.

**Prompt.** In completion mode (the default) the reference's Anthropic text prompt, which ends in a
prefill the model continues::

    You are a helpful AI bot that answers questions for a user. Keep your response short and direct

    Human: <context>
    {context}
    </context>

    {question} Don't give information outside the document or repeat your findings

    Assistant: Here is the most relevant sentence in the context:

With ``--chat-template``, the reference's chat messages (system line, context, question — folded into
the one user turn :func:`~longctx.evaluate.render_prompt` gives) and no prefill.

**Score.** The reference asks GPT-3.5 to grade the answer against the needle (1, 3, 5, 7 or 10). That
judge is replaced by keyword containment, as NeedleBench does offline: the fraction of the ``answer``
keywords (``|``-separated; default ``sandwich|Dolores Park``) found in the prediction, case-insensitively
(RULER's ``string_match_all``) — 1 for a full answer, 0.5 for half of it, 0 for none.

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402: low
diffusion (the needle is one sentence, out of place in the haystack) and low scope (one fact).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import ParameterError
from longctx.evaluate import Case, derive_seed, render_prompt
from longctx.haystack import DEFAULT_PROSE
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range, one_of
from longctx.plugins.ruler.common import (
    Filler,
    RulerTask,
    check_depth,
    essay_text,
    fit_case,
    noise_text,
    previous_boundary,
    query_tail,
)

__all__ = [
    "ANSWER",
    "ASSISTANT_PREFILL",
    "NEEDLE",
    "QUESTION",
    "QUESTION_SUFFIX",
    "SYSTEM",
    "Niah",
    "NiahConfig",
]

NEEDLE = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day."
QUESTION = "What is the best thing to do in San Francisco?"
ANSWER = "sandwich|Dolores Park"
SYSTEM = "You are a helpful AI bot that answers questions for a user. Keep your response short and direct"
QUESTION_SUFFIX = " Don't give information outside the document or repeat your findings"
ASSISTANT_PREFILL = "Here is the most relevant sentence in the context:"
#: ``providers/Anthropic_prompt.txt`` up to the prefill
COMPLETION_TEMPLATE = SYSTEM + "\n\nHuman: <context>\n{context}\n</context>\n\n{question}"
COMPLETION_PREFIX = "\n\nAssistant: " + ASSISTANT_PREFILL
#: ``providers/openai.py``'s three messages, in one user turn
CHAT_TEMPLATE = SYSTEM + "\n\n{context}\n\n{question}"


@attrs.frozen
class NiahConfig:
    """The needle, its question and keywords, the haystack, and the generation budget."""

    needle: str = attrs.field(default=NEEDLE, metadata={"help": "the fact sentence hidden in the haystack"})
    question: str = attrs.field(default=QUESTION, metadata={"help": "the retrieval question"})
    answer: str = attrs.field(
        default=ANSWER,
        metadata={"help": "keywords the answer must contain, separated by |; each must be in the needle"},
    )
    haystack: str = attrs.field(
        default="essay", validator=one_of("essay", "noise"), metadata={"help": "essay (prose) or noise"}
    )
    essay: str = attrs.field(
        default=DEFAULT_PROSE,
        metadata={"help": "essay haystack text: pride_and_prejudice (bundled) or a path to a UTF-8 file"},
    )
    max_new_tokens: int = attrs.field(
        default=300, validator=at_least(1), metadata={"help": "tokens to generate (reference: max_tokens=300)"}
    )
    tolerance: float = attrs.field(
        default=0.01,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )

    def __attrs_post_init__(self) -> None:
        if not self.needle.strip() or not self.question.strip():
            raise ParameterError("needle and question must not be empty")
        missing = [k for k in self.keywords if k.lower() not in self.needle.lower()]
        if not self.keywords or missing:
            raise ParameterError(
                f"answer keywords must be non-empty and appear in the needle; not in it: {', '.join(missing)}"
            )

    @property
    def keywords(self) -> tuple[str, ...]:
        """The ``answer`` keywords."""
        return tuple(k.strip() for k in self.answer.split("|") if k.strip())


class Niah(RulerTask):
    """The needle-in-a-haystack task (an :class:`longctx.hooks.evaluation.EvalTask`); see the module
    docstring."""

    name = "niah"
    tags = MappingProxyType({"diffusion": "low", "scope": "low"})

    def __init__(self, config: NiahConfig | None = None, ctx: Any = None) -> None:
        self.config = config or NiahConfig()

    def parts(self, tokenizer: Any) -> tuple[str, str]:
        """``(template, answer prefix)``: the Anthropic completion prompt, or the chat messages."""
        if getattr(tokenizer, "lc_chat_template", False):
            return CHAT_TEMPLATE, ""
        return COMPLETION_TEMPLATE, COMPLETION_PREFIX

    def _filler(self) -> Filler:
        return essay_text(self.config.essay) if self.config.haystack == "essay" else noise_text()

    def start_word(self, seed: int) -> int:
        """Where the haystack starts: its first word for seed 0 (the reference), else the first word after
        a sentence-final period drawn from the seed (so samples differ; the noise has one sentence kind)."""
        filler = self._filler()
        if seed == 0 or not filler.period_bounds:
            return 0
        rng = random.Random(derive_seed(self.name, seed))
        return filler.start_after(rng.choice(filler.period_bounds))

    def haystack(self, n_words: int, depth: float, start: int = 0) -> tuple[str, int, int]:
        """``n_words`` of the haystack from word ``start`` on with the needle inserted at ``depth``; returns
        the context, the insertion offset and the haystack's length (characters)."""
        hay, bounds = self._filler().prefix(n_words, periods_only=True, start=start)
        at = len(hay) if depth >= 1.0 else previous_boundary(bounds, int(len(hay) * depth))
        needle = "\n" + self.config.needle.strip() + "\n"
        return hay[:at] + needle + hay[at:], at, len(hay)

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens (prompt with BOS + ``max_new_tokens``) with the needle at
        ``depth``; the seed only says where the haystack starts (:meth:`start_word`)."""
        check_depth(self.name, depth)
        cfg = self.config
        template, prefix = self.parts(tokenizer)
        question = cfg.question.strip() + QUESTION_SUFFIX
        start = self.start_word(seed)

        def make(n: int) -> tuple[str, tuple[int, int]]:
            context, at, size = self.haystack(n, depth, start)
            prompt = render_prompt(tokenizer, template.format(context=context, question=question), prefix)
            return prompt, (at, size)

        fit, (at, size) = fit_case(
            self.name, make, tokenizer, length, reserve=cfg.max_new_tokens, tolerance=cfg.tolerance
        )
        needle = cfg.needle.strip()
        pos = fit.text.find("\n" + needle + "\n") + 1
        yield Case(
            task=self.name,
            prompt=fit.text,
            answer=needle,
            references=cfg.keywords,
            target_tokens=length,
            actual_tokens=fit.tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=cfg.max_new_tokens,
            query=query_tail(fit.text, question),
            meta={
                "haystack": cfg.haystack,
                "haystack_words": fit.n,
                "haystack_start_word": start,
                "haystack_chars": size,
                "needle_start": pos,
                "needle_end": pos + len(needle),
                "insertion_char": at,
                "depth_placed": at / size if size else depth,
                "keywords": list(cfg.keywords),
            },
        )


@hookimpl
def lc_register_evaluators(register):
    register(
        "niah",
        config=NiahConfig,
        build=Niah,
        summary="Needle in a haystack: a fact sentence at a depth of prose or noise, asked back (keyword score)",
        paper="Kamradt 2023, gkamradt/LLMTest_NeedleInAHaystack; Hsieh et al. 2024 (RULER), arXiv:2404.06654",
    )


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance contract of ``niah``, imported lazily (using the task never
    imports the kit)."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.plugins.niah.contract import NiahContract

        return (NiahContract,)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
