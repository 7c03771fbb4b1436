"""``lv-eval-cfi``: single-hop QA with confusing facts, in the style of LV-Eval.

Yuan et al. 2024, "LV-Eval: A Balanced Long-Context Benchmark with 5 Length Levels Up to 256K",
arXiv:2402.05136 (code: ``infinigence/LVEval``: ``config.py``, ``metrics.py``, ``evaluation.py``).

LV-Eval hardens long-context QA with three devices. **Confusing facts insertion (CFI)**: next to the
supporting evidence, the context carries facts written to look like the answer but not be it (GPT-4
drafts, revised by annotators so that each one *changes the main subject* and neither contradicts nor
answers the question — exactly one per QA pair). **Keyword and phrase replacement (KPR)**: key words of
the evidence and the question are replaced by others, so that a model answering from memorised world
knowledge is wrong (``factrecall_en`` asks for "the scientist widely acclaimed as the foundational
figure of modern physics" and the context names Ludwig Beethoven). **Answer keywords (AK)**: each gold
answer carries its keywords; the score is the token F1 with the gold answer, but 0 when the recall of
the keywords (blacklisted function words not counted) is below 0.2 (``qa_f1_score_with_gold_ans``).

The real LV-Eval data (11 datasets × 16k–256k words) are loaded by the ``lv-eval`` loader of the
local-data plugin and scored by :func:`longctx.metrics.lveval_score`. This module is the *synthetic* CFI
task, generated offline at any length:

* **True fact.** ``"{name} is the {role} widely credited with {deed} in {town}."`` from fixed lists of
  invented names, roles, deeds and towns (no name occurs in the haystack novel). The question names
  the role, deed and town: ``"What is the name of the {role} widely credited with {deed} in {town}?"``.
* **Confusing facts.** ``confusing`` near-misses of the same frame: a different person (no name token in
  common with the answer) and exactly *one* of role, deed or town changed — the main subject changes, so
  no confusing fact answers the question or contradicts the true one (LV-Eval's annotation rules).
* **KPR** (``kpr=true``). The frame is a well-known fact (``"… the physicist widely credited with
  developing the theory of relativity"``) whose person is *replaced* by another famous person; the
  confusing facts are other famous facts of the same role with replaced persons. The memorised answer
  (the original person) scores 0; ``metrics()["memory"]`` reports when a model gives it.
* **Haystack.** Consecutive sentences of *Pride and Prejudice* (:func:`longctx.haystack.prose_sentences`)
  from a seeded start, cut to ``n`` words; ``n`` is fitted (:func:`longctx.evaluate.fit_length`) so the
  prompt with BOS plus ``max_new_tokens`` comes within ``tolerance`` of the target. The true fact goes to
  the sentence boundary nearest ``depth``, the confusing facts to seeded depths
  (:func:`longctx.haystack.insert_at_depths`).
* **Prompt.** LV-Eval's ``factrecall_en`` template (``template="factrecall"``, 16 new tokens, its
  ``DATASET_MAXGEN``) or its ``multifieldqa_en_mixup`` template (``template="mixup"``), the body ending
  with ``"Question: …\\n"`` and ``"Answer:"`` as the answer prefix.
* **Score.** :func:`longctx.metrics.lveval_f1` with the answer (the person's name) as gold and as answer
  keywords — LV-Eval's keyword-recall-gated F1 — in [0, 1]. The gate matters for answers that share
  words with the question but not the name. ``metrics()`` adds the plain F1, the keyword recall, and
  ``confused`` (the prediction names a confusing fact's person).

Every random choice comes from :class:`random.Random` seeded by (task, seed) only, so one seed asks the
same question, with the same confusing facts at the same relative depths, at every length and depth.

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402:
**low diffusion** (the evidence is one sentence; the confusing facts make it harder to *pick*, not to
*find*) and **low scope** (one fact answers the question).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, fit_length, render_prompt
from longctx.haystack import insert_at_depths, prose_sentences
from longctx.hooks import hookimpl
from longctx.metrics import lveval_f1, lveval_recall, normalize_answer, qa_f1_score
from longctx.params import at_least, in_range, one_of

NAME = "lv-eval-cfi"
PAPER = "Yuan et al. 2024 (LV-Eval), arXiv:2402.05136"

#: LV-Eval ``config.py`` ``DATASET_PROMPT``: ``factrecall_en`` and ``multifieldqa_en_mixup`` (split at the
#: answer prefix ``"Answer:"``).
TEMPLATES: dict[str, str] = {
    "factrecall": (
        "Please answer the following questions based on the given article.\n\nArticle: {context}\n\n"
        "Please answer the following questions based on the above article.\n\nQuestion: {input}\n"
    ),
    "mixup": (
        "Please answer the following question based on the given passages. Questions and answers are only "
        "relevant to one passage. Only give me the answer and do not output any other explanation and "
        "evidence.\n\nArticle: {context}\n\nPlease answer the following question based on the above passages. "
        "Questions and answers are only relevant to one passage. Only give me the answer and do not output "
        "any other explanation and evidence.\n\nQuestion: {input}\n"
    ),
}
ANSWER_PREFIX = "Answer:"

FACT = "{name} is the {role} widely credited with {deed} in {town}."
QUESTION = "What is the name of the {role} widely credited with {deed} in {town}?"
FACT_KPR = "{name} is the {role} widely credited with {deed}."
QUESTION_KPR = "What is the name of the {role} widely credited with {deed}?"

#: Invented people: neither a first name nor a surname occurs in the bundled novel (tested).
FIRST_NAMES = (
    "Adela Ansel Beatrix Cordelia Cornelius Delphine Desmond Edwina Evander Fenella Florian Gideon Greta "
    "Honora Horatio Ignatius Imogen Jasper Juniper Leonora Leopold Magnus Marisol Nerissa Octavian Ottilie "
    "Percival Philippa Quentin Rosalind Sebastian Theodora Ulric Vivienne Wendell Yolanda Zachary"
).split()
SURNAMES = (
    "Abernathy Ashcombe Blackwood Brightwell Carrow Castellan Drummond Ellery Everhart Fairweather "
    "Fothergill Greenhalgh Gresham Hartigan Holloway Ingram Jessop Kilbride Kingsley Langford Lockhart "
    "Merriweather Mortimer Nightingale Northcott Oakes Ormsby Prescott Quayle Ravenscroft Summerfield "
    "Thornbury Underhill Vance Whitlock Yardley"
).split()
ROLES = (
    "architect",
    "botanist",
    "physician",
    "engineer",
    "cartographer",
    "astronomer",
    "composer",
    "painter",
    "chemist",
    "mathematician",
    "sculptor",
    "surveyor",
    "geologist",
    "inventor",
    "clockmaker",
    "shipwright",
)
DEEDS = (
    "founding the first public library",
    "designing the old stone bridge",
    "mapping the northern marshes",
    "building the harbour lighthouse",
    "discovering the hot springs",
    "opening the first hospital",
    "planting the botanical garden",
    "charting the river delta",
    "restoring the cathedral organ",
    "establishing the observatory",
    "draining the eastern fens",
    "drafting the town charter",
    "paving the market square",
    "founding the music school",
    "digging the canal",
    "casting the great bell",
)
TOWNS = (
    "Ashbury",
    "Bramwell",
    "Calderford",
    "Dunhollow",
    "Eastmere",
    "Fernhill",
    "Glenwick",
    "Harrowfield",
    "Ivydale",
    "Kestrelford",
    "Larkspur Bay",
    "Millbrook",
    "Northwold",
    "Oakhaven",
    "Pebblestone",
    "Quarrytown",
    "Ravensmoor",
    "Saltmarsh",
    "Thistlewood",
    "Underbridge",
    "Valewick",
    "Westerholm",
    "Yarrowby",
    "Zennor Cove",
)
#: Well-known facts for KPR: (person, role, deed). The person in the context is always another one.
FAMOUS = (
    ("Albert Einstein", "physicist", "developing the theory of relativity"),
    ("Isaac Newton", "physicist", "formulating the law of universal gravitation"),
    ("Max Planck", "physicist", "founding quantum theory"),
    ("Charles Darwin", "naturalist", "proposing the theory of evolution by natural selection"),
    ("Carl Linnaeus", "naturalist", "introducing the binomial naming of species"),
    ("Marie Curie", "chemist", "discovering the element polonium"),
    ("Dmitri Mendeleev", "chemist", "creating the periodic table of the elements"),
    ("Louis Pasteur", "chemist", "developing pasteurization"),
    ("William Shakespeare", "playwright", "writing the tragedy Hamlet"),
    ("Henrik Ibsen", "playwright", "writing the play A Doll's House"),
    ("Leonardo da Vinci", "painter", "painting the Mona Lisa"),
    ("Pablo Picasso", "painter", "painting Guernica"),
    ("Ludwig van Beethoven", "composer", "composing the Moonlight Sonata"),
    ("Wolfgang Amadeus Mozart", "composer", "composing the opera The Magic Flute"),
    ("Galileo Galilei", "astronomer", "discovering the four largest moons of Jupiter"),
    ("Nicolaus Copernicus", "astronomer", "proposing that the Earth orbits the Sun"),
)
#: Famous people whose names occur in the novel: they may be the memorised original, never the replacement.
IN_NOVEL = frozenset({"Charles Darwin", "William Shakespeare"})
SLOTS = ("role", "deed", "town")


def _tokens(text: str) -> set[str]:
    return set(normalize_answer(text).split())


@attrs.frozen
class Fact:
    """One fact of the frame: the person and the slots that identify them."""

    name: str
    role: str
    deed: str
    town: str | None = None  # None in KPR mode

    def sentence(self) -> str:
        """The fact as the sentence inserted in the haystack."""
        if self.town is None:
            return FACT_KPR.format(name=self.name, role=self.role, deed=self.deed)
        return FACT.format(name=self.name, role=self.role, deed=self.deed, town=self.town)

    def question(self) -> str:
        """The question this fact (and no confusing fact) answers."""
        if self.town is None:
            return QUESTION_KPR.format(role=self.role, deed=self.deed)
        return QUESTION.format(role=self.role, deed=self.deed, town=self.town)

    def subject(self) -> tuple[str, str, str | None]:
        """What the question asks about: (role, deed, town)."""
        return (self.role, self.deed, self.town)


@attrs.frozen
class LVEvalCFIConfig:
    """Confusing facts, KPR, template, generation budget and length tolerance."""

    confusing: int = attrs.field(
        default=1,
        validator=in_range(0, 12),
        metadata={"help": "confusing facts inserted besides the true one (LV-Eval: one per QA pair)"},
    )
    kpr: bool = attrs.field(
        default=False,
        metadata={"help": "keyword/phrase replacement: a famous fact with its person replaced by another"},
    )
    template: str = attrs.field(
        default="factrecall",
        validator=one_of(*TEMPLATES),
        metadata={"help": "LV-Eval prompt: factrecall (factrecall_en) or mixup (multifieldqa_en_mixup)"},
    )
    max_new_tokens: int = attrs.field(
        default=16, validator=at_least(1), metadata={"help": "tokens to generate (LV-Eval factrecall: 16)"}
    )
    tolerance: float = attrs.field(
        default=0.02,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )


def _draw_name(rng: random.Random, avoid: set[str]) -> str:
    """A first name + surname sharing no token with ``avoid``."""
    for _ in range(1000):
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"
        if not (_tokens(name) & avoid):
            return name
    raise AssertionError("name lists exhausted")  # pragma: no cover - 38 × 36 names, ≤ 13 drawn


def haystack_sentences(n_words: int, start: int) -> list[str]:
    """The first ``n_words`` words of the novel from sentence ``start`` on, as sentences (the last one cut
    at a word boundary; RULER's essay haystack is cut to a number of words the same way)."""
    out: list[str] = []
    have = 0
    i = start
    while have < n_words:
        for s in prose_sentences(64, start=i):
            words = s.split()
            if have + len(words) <= n_words:
                out.append(s)
                have += len(words)
            else:
                out.append(" ".join(words[: n_words - have]))
                have = n_words
                break
            if have == n_words:
                break
        i += 64
    return out


class LVEvalCFI:
    """The synthetic LV-Eval CFI task (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = NAME
    tags = MappingProxyType({"diffusion": "low", "scope": "low"})

    def __init__(self, config: LVEvalCFIConfig | None = None, ctx: Any = None) -> None:
        self.config = config or LVEvalCFIConfig()

    # -- facts ------------------------------------------------------------------------------------------

    def facts(self, seed: int) -> tuple[Fact, list[Fact], dict[str, Any]]:
        """The true fact, the confusing facts and what KPR replaced, for ``seed`` (any length or depth)."""
        rng = random.Random(derive_seed(self.name, seed, self.config.kpr))
        n = self.config.confusing
        if self.config.kpr:
            return self._kpr_facts(rng, n)
        true = Fact(_draw_name(rng, set()), rng.choice(ROLES), rng.choice(DEEDS), rng.choice(TOWNS))
        pools = {"role": ROLES, "deed": DEEDS, "town": TOWNS}
        avoid = _tokens(true.name)
        seen = {true.subject()}
        kinds = list(SLOTS)
        rng.shuffle(kinds)
        confusing = []
        for i in range(n):
            slot = kinds[i % len(SLOTS)]
            for _ in range(1000):
                value = rng.choice(pools[slot])
                cf = attrs.evolve(true, **{slot: value, "name": _draw_name(rng, avoid)})
                if cf.subject() not in seen:
                    break
            seen.add(cf.subject())
            avoid |= _tokens(cf.name)
            confusing.append(cf)
        return true, confusing, {}

    def _kpr_facts(self, rng: random.Random, n: int) -> tuple[Fact, list[Fact], dict[str, Any]]:
        people = [p for p, _, _ in FAMOUS if p not in IN_NOVEL]
        original, role, deed = rng.choice(FAMOUS)
        avoid = _tokens(original)
        replaced = self._famous_other(rng, people, avoid)
        true = Fact(replaced, role, deed)
        avoid |= _tokens(replaced)
        same_role = [d for _, r, d in FAMOUS if r == role and d != deed]
        other = [d for _, _, d in FAMOUS if d != deed and d not in same_role]
        rng.shuffle(same_role)
        rng.shuffle(other)
        deeds = same_role + other  # near misses first: same role, another famous deed
        if n > len(deeds):
            raise InputError(f"{self.name}: kpr supports at most {len(deeds)} confusing facts, got {n}")
        confusing = []
        for d in deeds[:n]:
            name = self._famous_other(rng, people, avoid)
            avoid |= _tokens(name)
            confusing.append(Fact(name, role, d))
        return true, confusing, {"kpr_original": original, "kpr_replacement": replaced}

    @staticmethod
    def _famous_other(rng: random.Random, people: Sequence[str], avoid: set[str]) -> str:
        choices = [p for p in people if not (_tokens(p) & avoid)]
        if not choices:  # pragma: no cover - 16 people, at most 1 + 1 + 12 drawn with disjoint tokens
            raise InputError("lv-eval-cfi: not enough famous people for this many confusing facts with kpr")
        return rng.choice(choices)

    # -- prompts ----------------------------------------------------------------------------------------

    def prompt(self, n_words: int, depth: float, seed: int, tokenizer: Any = None) -> tuple[str, dict[str, Any]]:
        """The prompt with ``n_words`` haystack words, the true fact at ``depth`` and the confusing facts at
        their seeded depths (rendered with the chat template when ``tokenizer`` is a ChatTokenizer)."""
        true, confusing, kpr = self.facts(seed)
        rng = random.Random(derive_seed(self.name, seed, "layout"))
        start = rng.randrange(10_000)
        cf_depths = [rng.random() for _ in confusing]
        haystack = haystack_sentences(n_words, start)
        needles = [true.sentence()] + [c.sentence() for c in confusing]
        sentences, actual = insert_at_depths(haystack, needles, [depth, *cf_depths])
        context = " ".join(sentences)
        body = TEMPLATES[self.config.template].format(context=context, input=true.question())
        text = render_prompt(tokenizer, body, ANSWER_PREFIX)
        fact = true.sentence()
        meta = {
            "answer_keywords": true.name,
            "fact": fact,
            "fact_start": text.index(fact),
            "fact_depth": actual[0],
            "confusing_facts": [c.sentence() for c in confusing],
            "confusing_answers": [c.name for c in confusing],
            "confusing_depths": actual[1:],
            "confusing_changed": [
                next((s for s in SLOTS if getattr(c, s) != getattr(true, s)), "deed") for c in confusing
            ],
            "haystack": "pride_and_prejudice",
            "haystack_start": start,
            "haystack_words": n_words,
            "template": self.config.template,
            **kpr,
        }
        return text, meta

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens (prompt with BOS + ``max_new_tokens``), the true fact at ``depth``."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        budget = self.config.max_new_tokens
        try:
            n, text, tokens = fit_length(
                lambda n: self.prompt(n, depth, seed, tokenizer)[0],
                tokenizer,
                length,
                reserve=budget,
                tolerance=self.config.tolerance,
            )
        except InputError:
            bare = count_prompt_tokens(tokenizer, self.prompt(0, depth, seed, tokenizer)[0]) + budget
            raise InputError(
                f"{self.name}: a length of {length} tokens is too short; the prompt without haystack plus "
                f"{budget} generated tokens already needs {bare}"
            ) from None
        _, meta = self.prompt(n, depth, seed, tokenizer)
        true, _, _ = self.facts(seed)
        yield Case(
            task=self.name,
            prompt=text,
            answer=true.name,
            references=(true.name,),
            target_tokens=length,
            actual_tokens=tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=budget,
            query=f"Question: {true.question()}\n{ANSWER_PREFIX}",
            meta=meta,
        )

    # -- scoring ----------------------------------------------------------------------------------------

    def score(self, prediction: str, case: Case) -> float:
        """LV-Eval's keyword-recall-gated F1 (:func:`longctx.metrics.lveval_f1`) against the answer."""
        return lveval_f1(prediction, case.answer, answer_keywords=case.meta.get("answer_keywords") or case.answer)

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """The gated F1, plain F1, keyword recall, whether a confusing fact's person was given
        (``confused``), and under KPR whether the memorised original was given (``memory``)."""
        keywords = case.meta.get("answer_keywords") or case.answer
        out = {
            "f1_gated": self.score(prediction, case),
            "f1": qa_f1_score(prediction, case.answer),
            "keyword_recall": lveval_recall(prediction, keywords),
            "confused": float(
                any(lveval_f1(prediction, a, answer_keywords=a) > 0 for a in case.meta.get("confusing_answers", ()))
            ),
        }
        original = case.meta.get("kpr_original")
        if original:
            out["memory"] = float(lveval_f1(prediction, original, answer_keywords=original) > 0)
        return out


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance contract of ``lv-eval-cfi`` (resolved lazily, so using the task
    never imports the kit). Lengths start at 1k: the instruction, question and facts alone take ~600 bytes."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.contrib.conformance.contracts import EvaluationContract

        class LVEvalCFIContract(EvaluationContract):
            technique = NAME
            lengths = (1024, 2048)

        return {NAME: LVEvalCFIContract}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    register(
        NAME,
        config=LVEvalCFIConfig,
        build=LVEvalCFI,
        summary="LV-Eval-style single-hop QA: a true fact among confusing near-miss facts in prose, "
        "keyword-recall-gated F1",
        paper=PAPER,
    )
