"""``longgenbench``: answer K questions in one long response — long-context *generation*.

Liu, Dong, Hu & Chu 2024, "LongGenBench: Long-context Generation Benchmark", EMNLP 2024 Findings,
arXiv:2410.04199 (code: ``Dominic789654/LongGenBench``: ``longgenbench_GSM8K_openai.py``,
``data/LongGenBench_GSM8K_prompt/LongGenBench_prompt.txt``).

Retrieval benchmarks make the *input* long; LongGenBench makes the *output* long. K questions are put in
one prompt and the model must answer all of them, in order, in a single response, so that the answer to
question i is generated with the i − 1 earlier answers already in its context. Each answer is scored on
its own, and the drop from answering the questions one at a time is the long-generation degradation.
The GSM8K protocol, as the reference script runs it:

* **Prompt.** A system instruction (:data:`SYSTEM`), then ``"Examples: \\n"``, an 8-shot chain-of-thought
  block — ``Question_1: … Question_8:`` followed by ``Answer_1: … The answer is 6.`` … ``Answer_8:`` —
  ``"\\n\\nFollowing Question: \\n"`` and the K questions as ``Question_{i}:\\n{q}\\n`` numbered from 9.
* **Parsing.** The response is split at ``"Answer_"``, the pieces joined again by newlines, and the
  answers are the texts following a ``":\\n"`` up to a blank line (``(?<=:\\n)(.*?)(?=\\n\\n|$)``); the i-th
  answer found goes with the i-th question.
* **Scoring.** An answer is correct when its last number (``\\d*\\.?\\d+``, commas removed) equals the
  last number of the gold solution; the score is the fraction of the K questions answered correctly.

Departures, and why. GSM8K cannot be downloaded at run time, so the questions are **templated
arithmetic word problems** of GSM8K's kind (buying, sharing, rates, rows × columns; 1–3 steps, integer
answers), each with a step-by-step solution ending in ``"The answer is N."``; the 8 examples come from the
same templates (fixed, as the reference's exemplars are). The reference drops questions the model never
answered from the denominator (it zips answers with questions); here a missing answer is wrong. In
completion mode the instruction opens the prompt and ``"Answer_{shots+1}:\\n"`` is the answer prefix
(``--chat-template`` makes the instruction and questions the user turn); the prediction is scored with
that prefix put back in front.

**What** ``length`` **means.** LongGenBench's length is the *generated* length: K questions need about
K answers' worth of new tokens (the reference gives 4096 for its K). A case of ``length`` tokens is the
window the whole exchange needs — prompt with BOS plus the generation budget — and the task fits **K**
to it: the largest K whose prompt plus K × ``answer_tokens`` fits (a galloping binary search), then
``max_new_tokens`` is everything the prompt leaves, so every case fills its window exactly. With
``k=`` K is fixed instead and the length only has to hold it. A longer length therefore means more
questions *and* a longer answer — the quantity LongGenBench varies — rather than filler around a fixed
set, which would test reading, not generation. ``metrics()`` gives the accuracy over the first, middle
and last third of the questions (where in the long answer the model degrades) and the fraction answered.

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402:
**low diffusion** (every question is stated plainly in the prompt) and **high scope** (all K questions
must be answered, and the response itself becomes the long context).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, render_prompt
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range

NAME = "longgenbench"
PAPER = "Liu et al. 2024 (LongGenBench), EMNLP 2024 Findings, arXiv:2410.04199"

#: The reference's system message (``longgenbench_GSM8K_openai.py``).
SYSTEM = (
    "Answer each question step by step, adhering to the format shown in the examples provided. Start each "
    "response with 'Answer_' and introduce the final response with 'The answer is'. Do not repeat the question. "
    "Ensure that you respond to all the questions presented, regardless of their number."
)
#: The reference's answer extraction (after splitting at ``"Answer_"`` and re-joining with newlines).
ANSWER_BLOCK = re.compile(r"(?<=:\n)(.*?)(?=\n\n|$)", re.DOTALL)
NUMBER = re.compile(r"\d*\.?\d+")

_PEOPLE = (
    ("Maria", "she"),
    ("Tom", "he"),
    ("Aisha", "she"),
    ("Ben", "he"),
    ("Chen", "he"),
    ("Lucy", "she"),
    ("Omar", "he"),
    ("Nina", "she"),
    ("Raj", "he"),
    ("Sofia", "she"),
    ("Jack", "he"),
    ("Elena", "she"),
    ("Kofi", "he"),
    ("Hana", "she"),
    ("Leo", "he"),
    ("Ivy", "she"),
)
_THINGS = ("apples", "marbles", "stickers", "pencils", "cookies", "books", "shells", "cards", "stamps", "beads")
_BOXES = (("box", "boxes"), ("bag", "bags"), ("crate", "crates"), ("jar", "jars"), ("basket", "baskets"))


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _buy_and_give(rng: random.Random) -> tuple[str, list[str], int]:
    (name, he), (friend, _) = rng.sample(_PEOPLE, 2)
    item = rng.choice(_THINGS)
    a, b = rng.randint(5, 60), rng.randint(2, 40)
    c = rng.randint(1, a + b - 1)
    ans = a + b - c
    q = (
        f"{name} had {a} {item}. {_cap(he)} bought {b} more and then gave {c} to {friend}. "
        f"How many {item} does {name} have now?"
    )
    steps = [f"{name} started with {a} {item}.", f"After buying {b} more, {he} had {a} + {b} = {a + b}."]
    steps.append(f"After giving away {c}, {he} had {a + b} - {c} = {ans}.")
    return q, steps, ans


def _containers(rng: random.Random) -> tuple[str, list[str], int]:
    box, boxes = rng.choice(_BOXES)
    item = rng.choice(_THINGS)
    a, b = rng.randint(3, 25), rng.randint(2, 15)
    ans = a * b
    q = f"A {box} holds {a} {item}. How many {item} are there in {b} {boxes}?"
    return q, [f"Each {box} holds {a} {item}.", f"{b} {boxes} hold {b} x {a} = {ans} {item}."], ans


def _shopping(rng: random.Random) -> tuple[str, list[str], int]:
    name, he = rng.choice(_PEOPLE)
    item = rng.choice(_THINGS)
    b, c = rng.randint(2, 9), rng.randint(2, 12)
    a = b * c + rng.randint(0, 50)
    ans = a - b * c
    q = f"{name} has {a} dollars. {_cap(he)} buys {b} {item} for {c} dollars each. "
    q += f"How many dollars does {he} have left?"
    steps = [f"{b} {item} cost {b} x {c} = {b * c} dollars.", f"So {name} has {a} - {b * c} = {ans} dollars left."]
    return q, steps, ans


def _reading(rng: random.Random) -> tuple[str, list[str], int]:
    name, he = rng.choice(_PEOPLE)
    a, b, c = rng.randint(5, 40), rng.randint(2, 14), rng.randint(1, 30)
    ans = a * b + c
    q = (
        f"{name} reads {a} pages every day for {b} days, and then {c} more pages on the last evening. "
        f"How many pages does {name} read in total?"
    )
    steps = [
        f"In {b} days {he} reads {a} x {b} = {a * b} pages.",
        f"With the last evening, {a * b} + {c} = {ans} pages.",
    ]
    return q, steps, ans


def _sharing(rng: random.Random) -> tuple[str, list[str], int]:
    item = rng.choice(_THINGS)
    b, ans = rng.randint(2, 12), rng.randint(2, 20)
    a = b * ans
    q = f"{a} {item} are shared equally among {b} friends. How many {item} does each friend get?"
    return q, [f"There are {a} {item} for {b} friends.", f"Each friend gets {a} / {b} = {ans} {item}."], ans


def _chairs(rng: random.Random) -> tuple[str, list[str], int]:
    a, b = rng.randint(3, 20), rng.randint(4, 20)
    c = rng.randint(1, a * b - 1)
    ans = a * b - c
    q = f"A hall has {a} rows of chairs with {b} chairs in each row. {c} chairs are taken away. "
    q += "How many chairs are left?"
    steps = [
        f"There are {a} x {b} = {a * b} chairs.",
        f"After {c} are taken away, {a * b} - {c} = {ans} chairs are left.",
    ]
    return q, steps, ans


def _wages(rng: random.Random) -> tuple[str, list[str], int]:
    name, he = rng.choice(_PEOPLE)
    a, b = rng.randint(20, 200), rng.randint(2, 10)
    c = rng.randint(0, a * b)
    ans = a * b - c
    q = f"{name} earns {a} dollars a week. After {b} weeks {he} has spent {c} dollars. "
    q += f"How many dollars does {he} have saved?"
    steps = [
        f"In {b} weeks {name} earns {a} x {b} = {a * b} dollars.",
        f"{he.capitalize()} saves {a * b} - {c} = {ans} dollars.",
    ]
    return q, steps, ans


def _travel(rng: random.Random) -> tuple[str, list[str], int]:
    a, b, c = rng.randint(20, 120), rng.randint(2, 9), rng.randint(1, 60)
    ans = a * b + c
    q = f"A train travels {a} kilometres every hour for {b} hours, then {c} more kilometres. "
    q += "How far does it travel in total?"
    steps = [f"In {b} hours it travels {a} x {b} = {a * b} kilometres.", f"Then {a * b} + {c} = {ans} kilometres."]
    return q, steps, ans


#: The question templates: each returns (question, solution steps, integer answer).
TEMPLATES: tuple[Callable[[random.Random], tuple[str, list[str], int]], ...] = (
    _buy_and_give,
    _containers,
    _shopping,
    _reading,
    _sharing,
    _chairs,
    _wages,
    _travel,
)


@attrs.frozen
class Problem:
    """One question with its worked solution."""

    question: str
    steps: tuple[str, ...]
    answer: int

    def solution(self) -> str:
        """The solution as the examples write it: steps, then ``"The answer is N."``."""
        return "\n".join((*self.steps, f"The answer is {self.answer}."))


def problems(rng: random.Random, n: int) -> list[Problem]:
    """``n`` problems drawn from the templates (the k-th is the same for any ``n`` ≥ k)."""
    out = []
    for _ in range(n):
        q, steps, ans = rng.choice(TEMPLATES)(rng)
        out.append(Problem(q, tuple(steps), ans))
    return out


def last_number(text: str) -> str | None:
    """The reference's reading of an answer: its last number (``\\d*\\.?\\d+``) with commas removed."""
    found = NUMBER.findall(text.replace(",", ""))
    return found[-1] if found else None


def answer_blocks(response: str) -> list[str]:
    """The answers of a response, in order, as the reference extracts them."""
    joined = "\n".join(response.split("Answer_"))
    return [b.strip() for b in ANSWER_BLOCK.findall(joined)]


@attrs.frozen
class LongGenBenchConfig:
    """Number of questions (or fit to the length), examples, per-answer budget. There is no length
    tolerance: the generation budget takes whatever the prompt leaves, so every case fills its length."""

    k: int = attrs.field(
        default=0,
        validator=at_least(0),
        metadata={"help": "questions answered in one response; 0 = as many as the length holds"},
    )
    shots: int = attrs.field(
        default=8, validator=in_range(0, 16), metadata={"help": "worked examples before the questions (reference: 8)"}
    )
    answer_tokens: int = attrs.field(
        default=128,
        validator=at_least(1),
        metadata={"help": "generation budget per question when fitting K to the length (reference: 4096 for ~35)"},
    )


class LongGenBench:
    """The LongGenBench task (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = NAME
    tags = MappingProxyType({"diffusion": "low", "scope": "high"})
    #: depth means nothing here: one case per length
    depth_sensitive = False

    def __init__(self, config: LongGenBenchConfig | None = None, ctx: Any = None) -> None:
        self.config = config or LongGenBenchConfig()

    def examples(self) -> list[Problem]:
        """The fixed worked examples (the reference's 8-shot block is fixed too)."""
        return problems(random.Random(derive_seed(self.name, "examples")), self.config.shots)

    def questions(self, seed: int, k: int) -> list[Problem]:
        """The first ``k`` questions of ``seed`` (the same prefix at every length)."""
        return problems(random.Random(derive_seed(self.name, seed)), k)

    def body(self, qs: list[Problem]) -> tuple[str, str, str]:
        """``(body, answer_prefix, questions block)`` of the prompt for questions ``qs``."""
        shots = self.examples()
        parts = [f"Question_{i}: \n{p.question}\n\n" for i, p in enumerate(shots, 1)]
        parts += [f"Answer_{i}:\n{p.solution()}\n\n" for i, p in enumerate(shots, 1)]
        examples = "".join(parts).rstrip("\n")
        first = len(shots) + 1
        block = "Following Question: \n" + "".join(f"Question_{i}:\n{p.question}\n" for i, p in enumerate(qs, first))
        body = f"{SYSTEM}\n\nExamples: \n{examples}\n\n{block}\n"
        return body, f"Answer_{first}:\n", block

    def prompt(self, qs: list[Problem], tokenizer: Any = None) -> str:
        """The complete prompt for ``qs`` (chat-rendered for a ChatTokenizer)."""
        body, prefix, _ = self.body(qs)
        return render_prompt(tokenizer, body, prefix)

    def gold(self, qs: list[Problem]) -> str:
        """The gold response after the answer prefix: every solution, ``Answer_i:`` headed, blank-line separated."""
        first = self.config.shots + 1
        out = [qs[0].solution()] if qs else []
        out += [f"Answer_{i}:\n{p.solution()}" for i, p in enumerate(qs[1:], first + 1)]
        return "\n\n".join(out)

    def _fit_k(self, tokenizer: Any, length: int, seed: int) -> int:
        per = self.config.answer_tokens

        def need(k: int) -> int:
            return count_prompt_tokens(tokenizer, self.prompt(self.questions(seed, k), tokenizer)) + k * per

        if need(1) > length:
            raise InputError(
                f"{self.name}: a length of {length} tokens is too short; one question needs {need(1)} "
                f"(prompt with {self.config.shots} examples plus answer_tokens={per}); lower shots or answer_tokens"
            )
        good, bad = 1, None
        step = 1
        while bad is None:  # gallop, then bisect: a handful of tokenizations for any K
            k = good + step
            if need(k) <= length:
                good = k
                step *= 2
            else:
                bad = k
        while bad - good > 1:
            mid = (good + bad) // 2
            if need(mid) <= length:
                good = mid
            else:
                bad = mid
        return good

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case: K questions (fitted to ``length`` or ``k``) whose prompt plus generation budget is exactly
        ``length`` tokens."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        cfg = self.config
        k = cfg.k or self._fit_k(tokenizer, length, seed)
        qs = self.questions(seed, k)
        prompt = self.prompt(qs, tokenizer)
        tokens = count_prompt_tokens(tokenizer, prompt)
        budget = length - tokens
        if budget < k * cfg.answer_tokens:
            raise InputError(
                f"{self.name}: a length of {length} tokens is too short for k={k}: the prompt needs {tokens} and "
                f"the answers {k} × {cfg.answer_tokens}; use at least {tokens + k * cfg.answer_tokens}"
            )
        _, prefix, block = self.body(qs)
        yield Case(
            task=self.name,
            prompt=prompt,
            answer=self.gold(qs),
            target_tokens=length,
            actual_tokens=tokens + budget,
            depth=depth,
            seed=seed,
            max_new_tokens=budget,
            query=block + "\n" + prefix if prompt.endswith(block + "\n" + prefix) else None,
            meta={
                "k": k,
                "shots": cfg.shots,
                "first_question": cfg.shots + 1,
                "answer_prefix": prefix,
                "questions": [p.question for p in qs],
                "answers": [p.answer for p in qs],
                "answer_tokens": cfg.answer_tokens,
            },
        )

    # -- scoring ----------------------------------------------------------------------------------------

    def correct(self, prediction: str, case: Case) -> list[bool]:
        """Per question: is the i-th extracted answer's last number the gold answer (reference rule)."""
        blocks = answer_blocks(case.meta["answer_prefix"] + prediction)
        golds = case.meta["answers"]
        return [i < len(blocks) and last_number(blocks[i]) == str(g) for i, g in enumerate(golds)]

    def score(self, prediction: str, case: Case) -> float:
        """The fraction of the K questions answered correctly."""
        ok = self.correct(prediction, case)
        return sum(ok) / len(ok) if ok else 0.0

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """Accuracy over all questions and over the first, middle and last third; fraction answered."""
        ok = self.correct(prediction, case)
        k = len(ok)
        thirds: list[list[bool]] = [[], [], []]
        for i, v in enumerate(ok):
            thirds[min(2, 3 * i // k)].append(v)
        n_blocks = len(answer_blocks(case.meta["answer_prefix"] + prediction))
        out = {"accuracy": sum(ok) / k if k else 0.0, "answered": min(n_blocks, k) / k if k else 0.0}
        for name, part in zip(("first_third", "middle_third", "last_third"), thirds, strict=True):
            if part:
                out[name] = sum(part) / len(part)
        return out


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance contract of ``longgenbench`` (resolved lazily). Its answers are
    computed, not copied; with the byte tokenizer one example and a 64-token answer budget need ~800."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.contrib.conformance.contracts import EvaluationContract

        class LongGenBenchContract(EvaluationContract):
            technique = NAME
            lengths = (1024, 2048)
            gold_in_context = False
            params = {"shots": 1, "answer_tokens": 64}  # noqa: RUF012 - a contract declaration

        return {NAME: LongGenBenchContract}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    register(
        NAME,
        config=LongGenBenchConfig,
        build=LongGenBench,
        summary="LongGenBench: K arithmetic word problems answered in order in one long response, each scored",
        paper=PAPER,
    )
