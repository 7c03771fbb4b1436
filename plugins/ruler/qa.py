"""A **synthetic stand-in** for RULER's question answering (``qa_1`` on SQuAD v2, ``qa_2`` on HotpotQA;
``scripts/data/synthetic/qa.py``), Hsieh et al. 2024, arXiv:2404.06654.

RULER's QA needs the SQuAD and HotpotQA dev sets, which cannot be bundled or downloaded here, so this
task keeps RULER's *structure* with generated documents instead: it is **not** RULER's qa_1/qa_2 and its
scores are not comparable with theirs.

* **Facts.** Each fictional town has three paragraphs — history (founding year, founder), geography
  (province, river) and economy (trade, population) — with names made of random syllables and values
  that never repeat within a case. The question asks for one fact of one town; its paragraph is the
  *golden document*.
* **Distractors**, as RULER assembles SQuAD contexts: first the other paragraphs of the same town
  (SQuAD's paragraphs of the same article: same subject, no answer), then paragraphs of other towns
  (random other documents). Their number is fitted to the length, in words, so the last distractor may
  be cut short. RULER shuffles all documents; here the distractors are shuffled and the golden document
  goes to the document boundary nearest ``depth`` (a fraction of the context's characters).
* **Prompt** (``constants.py``), documents as ``"Document {i}:\\n{document}"`` joined by blank lines::

      Answer the question based on the given documents. Only give me the answer and do not output any
      other words.

      The following are given documents.

      {context}

      Answer the question based on the given documents. Only give me the answer and do not output any
      other words.

      Question: {query} Answer:

* **Score**: ``string_match_part`` — 1 if any reference is in the answer (the founder's full name or
  surname; otherwise the single fact), as RULER scores qa.

Goldman et al. 2024 (arXiv:2407.00402): low diffusion (one paragraph holds the answer) and low scope (one
fact is needed).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import attrs

from longctx.evaluate import Case, derive_seed, render_prompt
from longctx.haystack import word_list
from longctx.metrics import ruler_match_part
from longctx.params import at_least, in_range
from longctx.plugins.ruler.common import RulerTask, check_depth, fit_case, nearest_boundary, query_tail

__all__ = ["ANSWER_PREFIX", "DOCUMENT", "QUESTIONS", "TEMPLATE", "FactQA", "FactQAConfig", "Town", "TownFactory"]

TEMPLATE = (
    "Answer the question based on the given documents. Only give me the answer and do not output any other "
    "words.\n\nThe following are given documents.\n\n{context}\n\nAnswer the question based on the given "
    "documents. Only give me the answer and do not output any other words.\n\nQuestion: {query}"
)
ANSWER_PREFIX = " Answer:"
DOCUMENT = "Document {i}:\n{document}"

PARAGRAPHS = (
    "{town} was founded in {year} by {founder}, a {occupation} from {origin}. For its first decades the "
    "settlement was little more than a cluster of houses around the old {landmark}, and it received its "
    "charter only much later.",
    "{town} lies in the province of {province}, on the banks of the river {river}. The nearest larger town, "
    "{neighbour}, is {distance} kilometres to the {direction}, and the road between them follows the valley "
    "for most of the way.",
    "The economy of {town} has long depended on {trade}. At the last census the town had {population} "
    "inhabitants, many of whom still earn their living from it, and every autumn a fair is held in the "
    "main square.",
)
#: question kind → (paragraph index, question template)
QUESTIONS: dict[str, tuple[int, str]] = {
    "year": (0, "In what year was {town} founded?"),
    "founder": (0, "Who founded {town}?"),
    "province": (1, "In which province does {town} lie?"),
    "river": (1, "On the banks of which river does {town} lie?"),
    "trade": (2, "What has the economy of {town} long depended on?"),
    "population": (2, "How many inhabitants did {town} have at the last census?"),
}

_ONSETS = ("b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "r", "s", "st", "t", "th", "v", "w")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ia", "ou", "ei")
_CODAS = ("", "", "n", "r", "l", "s", "th", "m", "nd", "rk")
_SUFFIXES = ("ford", "wick", "ton", "dale", "mere", "holm", "by", "stead", "")
_FIRST_NAMES = (
    "Adela", "Albert", "Anselm", "Beatrix", "Cecil", "Clara", "Edmund", "Elinor", "Florian", "Greta",
    "Hugo", "Ida", "Jasper", "Lena", "Magnus", "Marta", "Nils", "Odile", "Oskar", "Petra", "Rupert",
    "Sabine", "Tobias", "Ulla", "Viktor", "Wilma",
)  # fmt: skip
_OCCUPATIONS = ("miller", "weaver", "merchant", "priest", "soldier", "mason", "ferryman", "shepherd", "smith")
_LANDMARKS = ("bridge", "mill", "chapel", "well", "crossroads", "ford", "market cross", "watermill")
_DIRECTIONS = ("north", "south", "east", "west", "north-east", "north-west", "south-east", "south-west")
_TRADES = ("mining", "weaving", "brewing", "fishing", "farming", "trade", "carving", "dyeing")


@attrs.frozen
class Town:
    """One fictional town: its facts and its three paragraphs."""

    facts: dict[str, str]

    def paragraphs(self) -> list[str]:
        return [p.format(**self.facts) for p in PARAGRAPHS]


class TownFactory:
    """Draws towns whose names and answer values never repeat within one case."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()
        self.nouns = word_list(("noun",))

    def _unique(self, make: Any) -> str:
        while True:
            x = make()
            if x.lower() not in self.used:
                self.used.add(x.lower())
                return x

    def _name(self, syllables: tuple[int, int] = (2, 3), suffix: bool = False) -> str:
        r = self.rng
        n = r.randint(*syllables)
        word = "".join(r.choice(_ONSETS) + r.choice(_VOWELS) + r.choice(_CODAS) for _ in range(n))
        if suffix:
            word += r.choice(_SUFFIXES)
        return word.capitalize()

    def town(self) -> Town:
        r = self.rng
        surname = self._unique(self._name)
        facts = {
            "town": self._unique(lambda: self._name(suffix=True)),
            "year": self._unique(lambda: str(r.randint(1150, 1899))),
            "founder": f"{r.choice(_FIRST_NAMES)} {surname}",
            "surname": surname,
            "occupation": r.choice(_OCCUPATIONS),
            "origin": self._unique(self._name),
            "landmark": r.choice(_LANDMARKS),
            "province": self._unique(self._name),
            "river": self._unique(self._name),
            "neighbour": self._unique(lambda: self._name(suffix=True)),
            "distance": str(r.randint(4, 90)),
            "direction": r.choice(_DIRECTIONS),
            "trade": self._unique(lambda: f"{r.choice(self.nouns)} {r.choice(_TRADES)}"),
            "population": self._unique(lambda: str(r.randint(1200, 98000))),
        }
        return Town(facts)


def references(kind: str, town: Town) -> tuple[str, ...]:
    """The acceptable answers to question ``kind`` about ``town`` (all of them appear in its paragraph)."""
    if kind == "founder":
        return (town.facts["founder"], town.facts["surname"])
    return (town.facts[kind],)


class _Distractors:
    """The distractor stream: the golden town's other paragraphs, then other towns' paragraphs (each
    town's three in random order), drawn lazily and cut after ``n`` words."""

    def __init__(self, factory: TownFactory, hard: list[str]) -> None:
        self.factory = factory
        self.docs: list[str] = list(hard)
        self.words: list[int] = [len(d.split()) for d in hard]

    def prefix(self, n: int) -> list[str]:
        out: list[str] = []
        i = 0
        while n > 0:
            while i >= len(self.docs):
                paragraphs = self.factory.town().paragraphs()
                self.factory.rng.shuffle(paragraphs)
                self.docs += paragraphs
                self.words += [len(p.split()) for p in paragraphs]
            if self.words[i] <= n:
                out.append(self.docs[i])
            else:
                out.append(" ".join(self.docs[i].split()[:n]))
            n -= self.words[i]
            i += 1
        return out


@attrs.frozen
class FactQAConfig:
    """Options of the synthetic fact-document QA stand-in."""

    question: str = attrs.field(
        default="any",
        validator=attrs.validators.in_(("any", *QUESTIONS)),
        metadata={"help": "question kind: any (drawn per case), year, founder, province, river, trade, population"},
    )
    max_new_tokens: int = attrs.field(default=32, validator=at_least(1), metadata={"help": "tokens to generate"})
    tolerance: float = attrs.field(
        default=0.02,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )


class FactQA(RulerTask):
    """The synthetic stand-in for RULER's ``qa`` (an :class:`longctx.hooks.evaluation.EvalTask`); see the
    module docstring. Not comparable with RULER's SQuAD/HotpotQA scores."""

    name = "ruler-qa"
    match = staticmethod(ruler_match_part)

    def __init__(self, config: FactQAConfig | None = None, ctx: Any = None) -> None:
        self.config = config or FactQAConfig()

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens with the golden document at ``depth``."""
        check_depth(self.name, depth)
        cfg = self.config
        rng = random.Random(derive_seed(self.name, seed))
        factory = TownFactory(rng)
        town = factory.town()
        kind = rng.choice(sorted(QUESTIONS)) if cfg.question == "any" else cfg.question
        gold_index, qtext = QUESTIONS[kind]
        question = qtext.format(town=town.facts["town"])
        paragraphs = town.paragraphs()
        gold = paragraphs[gold_index]
        hard = [p for i, p in enumerate(paragraphs) if i != gold_index]
        rng.shuffle(hard)
        stream = _Distractors(factory, hard)
        refs = references(kind, town)

        def make(n: int) -> tuple[str, dict[str, Any]]:
            docs = stream.prefix(n)
            random.Random(derive_seed(self.name, seed, len(docs))).shuffle(docs)
            # where the golden document may go: before, between or after the distractors
            bounds = [0]
            for d in docs:
                bounds.append(bounds[-1] + len(d) + 2)
            if docs:
                bounds[-1] -= 2
            total = bounds[-1]
            at = bounds.index(nearest_boundary(bounds, depth * total))
            docs.insert(at, gold)
            context = "\n\n".join(DOCUMENT.format(i=i + 1, document=d) for i, d in enumerate(docs))
            body = TEMPLATE.format(context=context, query=question)
            info = {
                "documents": len(docs),
                "gold_document": at + 1,
                "distractor_words": n,
                "depth_placed": bounds[at] / total if total else depth,
            }
            return render_prompt(tokenizer, body, ANSWER_PREFIX), info

        fit, info = fit_case(self.name, make, tokenizer, length, reserve=cfg.max_new_tokens, tolerance=cfg.tolerance)
        yield Case(
            task=self.name,
            prompt=fit.text,
            answer=refs[0],
            references=refs,
            target_tokens=length,
            actual_tokens=fit.tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=cfg.max_new_tokens,
            query=query_tail(fit.text, f"Question: {question}"),
            meta={"question_kind": kind, "town": town.facts["town"], "synthetic_standin": True, **info},
        )
