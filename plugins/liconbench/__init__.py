"""``liconbench``: extreme-label in-context classification — learn many labels from a long run of examples.

Li et al. 2024, "Long-context LLMs Struggle with Long In-context Learning", arXiv:2404.02060
(LongICLBench, formerly LIConBench; ``TIGER-AI-Lab/LongICLBench``, ``banking77_infer.py``).

**Method.** LongICLBench turns label-rich classification sets (BANKING77's 77 intents, TacRED, DialogRE,
Discovery's 174 labels, …) into long prompts: demonstrations are chosen *round-robin* — in each round one
example of every label, in a fixed label order (``select_data``) — and as many rounds as the context holds
are concatenated; then one test input follows and the model must name its label. The datasets are not
bundled, so the classes here are synthetic and only learnable *in context*:

* ``num_labels`` label names in BANKING77's snake-case style (``brisk_harbor``), adjective + noun from the
  ``wonderwords`` lists, unrelated to their examples (nothing can be guessed from the name);
* each label has a *prototype* of ``keywords`` nouns, disjoint across labels; an example of a label is a
  customer-service query built from one of eight templates (whose words every label shares, so not every
  word is diagnostic) with ``per_example`` of its keywords. With ``2 · per_example > keywords`` (the
  defaults: 3 of 5) any two examples of a label share a keyword, so one demonstration per label suffices to
  learn it — the task is learnable, the difficulty is the number of labels and the length of the context.

The number of demonstrations is fitted by binary search (:func:`longctx.evaluate.fit_length`) so that the
prompt with BOS plus the generation budget comes within ``tolerance`` of the target. The label order of the
rounds is a seeded permutation; a demonstration's text depends only on (seed, label, round), so a longer
context adds rounds without changing the earlier ones. The test label is drawn (from the seed) among the
labels the context demonstrates — all of them once a round fits; fewer at lengths shorter than one round
(LongICLBench's own 2k setting for BANKING77 is exactly one round).

**Prompt** (``format_discovery_prompt`` of ``banking77_infer.py``)::

    Given a customer service query, please predict the intent of the query. The predict answer must come
    from the demonstration examples with the exact format.[You can only make prediction from the following
    categories: l1, l2, ….\\n] The examples are as follows: \\n
    service query: {text}\\nintent category: {label}\\n   (× demonstrations)
    service query: {test text}\\nintent category:

The bracketed list is ``with_instruction`` (the reference's ``--instruct``). The reference ends the prompt
with ``"intent category: "``; here it ends before that trailing space (a trailing space splits the first
token of the label for BPE and SentencePiece tokenizers; the scorer strips whitespace, so scores are
unchanged). With ``n_queries > 1`` several test inputs share one context (``Case.context``): the runner
prefills the demonstrations once.

**Score** (``banking77_infer.py``): if the model echoed the test input, keep what follows it and then
``"intent category:"``; else keep what precedes the first ``"service query"``; take the first line,
lower-case, strip; 1 when it equals the label, else 0 (accuracy). Generation budget: 100 tokens as the
reference.

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402: high
diffusion (the evidence for a label is spread over its demonstrations across the whole context, with no
single span that answers) and high scope (the model must tell the test input apart from every label shown,
so the whole context is needed).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, fit_length, render_prompt
from longctx.haystack import word_list
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range

__all__ = [
    "INSTRUCTION",
    "LabelSpace",
    "Liconbench",
    "LiconbenchConfig",
    "make_label_space",
    "normalize_prediction",
]

INSTRUCTION = (
    "Given a customer service query, please predict the intent of the query. The predict answer must come "
    "from the demonstration examples with the exact format."
)
CATEGORIES = "You can only make prediction from the following categories: "
EXAMPLES_FOLLOW = " The examples are as follows: \n"
QUERY = "service query: "
LABEL = "intent category:"

#: Query templates (BANKING77-like customer-service requests); each ``{k}`` slot takes a keyword of the
#: label. Their other words are shared by every label, so not every word of an example is diagnostic.
TEMPLATES = (
    "my {k} and {k} stopped working after the update, what should i do about the {k}",
    "how do i get a new {k} for the {k} if the {k} was linked to my account",
    "i was charged twice for the {k} and the {k}, and the statement still shows the {k}",
    "why is the {k} still pending when the {k} was sent together with the {k}",
    "can you help me change the {k} on my card, the {k} keeps blocking the {k}",
    "is there a fee to move the {k} to another bank or to cancel the {k} and the {k}",
    "the app will not let me verify the {k}, it asks for the {k} and the {k}",
    "where can i see the {k} for my {k}, i need it before the branch closes the {k}",
)


@attrs.frozen
class LabelSpace:
    """The synthetic labels of one case: their names and each label's keyword prototype."""

    labels: tuple[str, ...]
    keywords: tuple[tuple[str, ...], ...]

    def example(self, label: int, rng: random.Random, per_example: int) -> str:
        """A query of class ``label``: a template filled with ``per_example`` distinct keywords of the label,
        in random order (a template with more slots than that repeats them)."""
        template = rng.choice(TEMPLATES)
        words = rng.sample(self.keywords[label], per_example)
        parts = template.split("{k}")
        text = parts[0]
        for i, part in enumerate(parts[1:]):
            text += words[i % per_example] + part
        return text


def _words(kind: str) -> list[str]:
    return [w for w in word_list((kind,)) if re.fullmatch(r"[a-z]{4,10}", w)]


def make_label_space(rng: random.Random, num_labels: int, keywords: int) -> LabelSpace:
    """``num_labels`` distinct ``adjective_noun`` names and disjoint keyword sets of ``keywords`` nouns each,
    none of them used in a label name or a template."""
    nouns = _words("noun")
    adjectives = _words("adjective")
    template_words = {w for t in TEMPLATES for w in re.findall(r"[a-z]+", t)}
    nouns = [w for w in nouns if w not in template_words]
    need = num_labels * (keywords + 1)
    if need > len(nouns) or num_labels > len(adjectives):
        raise InputError(f"liconbench: {num_labels} labels × {keywords} keywords need more words than available")
    label_adjectives = rng.sample(adjectives, num_labels)
    nouns = [w for w in nouns if w not in set(label_adjectives)]
    picked = rng.sample(nouns, need)
    label_nouns, rest = picked[:num_labels], picked[num_labels:]
    kw = tuple(tuple(rest[i * keywords : (i + 1) * keywords]) for i in range(num_labels))
    labels = tuple(f"{a}_{n}" for a, n in zip(label_adjectives, label_nouns, strict=True))
    return LabelSpace(labels=labels, keywords=kw)


def normalize_prediction(response: str, query_text: str) -> str:
    """LongICLBench's reading of a response (``banking77_infer.py``): the text after the echoed test input
    and ``"intent category:"`` when the input is echoed, else the text before ``"service query"``; its first
    line, lower-cased and stripped."""
    if not query_text or query_text not in response:
        response = response.split("service query")[0].strip()
    else:
        parts = response.split(query_text)[-1].strip().split(LABEL)
        response = parts[1].split("service query")[0].strip() if len(parts) > 1 else parts[0].strip()
    return response.strip().split("\n")[0].lower().strip()


@attrs.frozen
class LiconbenchConfig:
    """Label space, prompt options, generation budget and length tolerance."""

    max_new_tokens: int = attrs.field(
        default=100, validator=at_least(1), metadata={"help": "tokens to generate (LongICLBench: 100)"}
    )
    tolerance: float = attrs.field(
        default=0.02,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )
    num_labels: int = attrs.field(
        default=77, validator=in_range(2, 500), metadata={"help": "number of classes (BANKING77: 77)"}
    )
    keywords: int = attrs.field(
        default=5, validator=in_range(2, 20), metadata={"help": "keywords in each label's prototype"}
    )
    per_example: int = attrs.field(
        default=3, validator=in_range(1, 20), metadata={"help": "keywords of its label in each example"}
    )
    with_instruction: bool = attrs.field(
        default=False, metadata={"help": "list every label in the instruction (LongICLBench --instruct)"}
    )
    n_queries: int = attrs.field(
        default=1, validator=in_range(1, 64), metadata={"help": "test inputs sharing one context of demonstrations"}
    )

    def __attrs_post_init__(self) -> None:
        from longctx.errors import ParameterError

        if self.per_example > self.keywords:
            raise ParameterError(f"per_example ({self.per_example}) must be <= keywords ({self.keywords})")


class Liconbench:
    """The extreme-label in-context classification task (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = "liconbench"
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})
    depth_sensitive = False  # demonstrations fill the whole context; there is no needle to place

    def __init__(self, config: LiconbenchConfig | None = None, ctx: Any = None) -> None:
        self.config = config or LiconbenchConfig()

    def space(self, seed: int) -> LabelSpace:
        """The label space of ``seed``."""
        c = self.config
        return make_label_space(random.Random(derive_seed(self.name, seed, "labels")), c.num_labels, c.keywords)

    def demonstration(self, space: LabelSpace, seed: int, label: int, round_: int) -> str:
        """The text of round ``round_``'s example of ``label`` (independent of the context length)."""
        rng = random.Random(derive_seed(self.name, seed, "demo", label, round_))
        return space.example(label, rng, self.config.per_example)

    def head(self, space: LabelSpace) -> str:
        """The instruction (with the label list when ``with_instruction``) and the examples' lead-in."""
        text = INSTRUCTION
        if self.config.with_instruction:
            text += CATEGORIES + ", ".join(space.labels) + ".\n"
        return text + EXAMPLES_FOLLOW

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """``n_queries`` cases sharing one context of demonstrations, each ``length`` tokens at most."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"liconbench: depth must be between 0 and 1, got {depth}")
        c = self.config
        space = self.space(seed)
        n_labels = len(space.labels)
        rng = random.Random(derive_seed(self.name, seed, "order"))
        order = list(range(n_labels))
        rng.shuffle(order)
        picks = [rng.random() for _ in range(c.n_queries)]
        tests = [[self._test_text(space, seed, q, label) for label in range(n_labels)] for q in range(c.n_queries)]
        head = self.head(space)
        demos: list[str] = []

        def demo_text(n: int) -> str:
            while len(demos) < n:
                i = len(demos)
                label = order[i % n_labels]
                demos.append(
                    f"{QUERY}{self.demonstration(space, seed, label, i // n_labels)}\n{LABEL} {space.labels[label]}\n"
                )
            return "".join(demos[:n])

        def test_labels(n: int) -> list[int]:
            shown = max(1, min(n, n_labels))
            return [order[int(p * shown)] for p in picks]

        def prompt(n: int, q: int) -> str:
            label = test_labels(n)[q]
            return render_prompt(tokenizer, f"{head}{demo_text(n)}{QUERY}{tests[q][label]}\n", LABEL)

        def longest(n: int) -> str:
            return max((prompt(n, q) for q in range(c.n_queries)), key=len)

        budget = c.max_new_tokens
        try:
            n, _, _ = fit_length(longest, tokenizer, length, lo=1, reserve=budget, tolerance=c.tolerance)
        except InputError:
            bare = count_prompt_tokens(tokenizer, longest(1)) + budget
            raise InputError(
                f"liconbench: a length of {length} tokens is too short; the prompt with one demonstration "
                f"plus {budget} generated tokens already needs {bare}"
            ) from None
        # the longest prompt was chosen by characters: make sure every query fits in tokens
        while True:
            texts = [prompt(n, q) for q in range(c.n_queries)]
            tokens = [count_prompt_tokens(tokenizer, t) + budget for t in texts]
            if max(tokens) <= length or n == 1:
                break
            n -= 1
        if max(tokens) > length:
            raise InputError(f"liconbench: a length of {length} tokens is too short for {c.n_queries} queries")
        labels = test_labels(n)
        shared = head + demo_text(n)
        for q, (text, tok) in enumerate(zip(texts, tokens, strict=True)):
            query_text = tests[q][labels[q]]
            context = None
            if c.n_queries > 1:
                context = text[: text.rindex(QUERY + query_text)]
            yield Case(
                task=self.name,
                prompt=text,
                answer=space.labels[labels[q]],
                target_tokens=length,
                actual_tokens=tok,
                depth=depth,
                seed=seed,
                max_new_tokens=budget,
                query=f"{QUERY}{query_text}",
                context=context,
                meta={
                    "query_text": query_text,
                    "label_index": labels[q],
                    "demonstrations": n,
                    "rounds": n / n_labels,
                    "labels_shown": min(n, n_labels),
                    "num_labels": n_labels,
                    "label_keywords": list(space.keywords[labels[q]]),
                    "query_index": q,
                    "shared_chars": len(shared),
                },
            )

    def _test_text(self, space: LabelSpace, seed: int, query: int, label: int) -> str:
        rng = random.Random(derive_seed(self.name, seed, "test", query, label))
        return space.example(label, rng, self.config.per_example)

    def score(self, prediction: str, case: Case) -> float:
        """LongICLBench's accuracy: 1.0 when the normalised response equals the label (case-insensitive)."""
        got = normalize_prediction(prediction, case.meta.get("query_text", ""))
        return 1.0 if got == case.answer.lower() else 0.0


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance kit's contract for this task (imported only when asked)."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.plugins.liconbench.contract import CONTRACTS

        return CONTRACTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    register(
        "liconbench",
        config=LiconbenchConfig,
        build=Liconbench,
        summary="Extreme-label in-context classification: many synthetic intents learned from round-robin examples",
        paper="Li et al. 2024 (LongICLBench), arXiv:2404.02060",
    )
