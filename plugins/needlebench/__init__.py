"""NeedleBench v2: multi-needle retrieval, multi-needle reasoning and the Ancestral Trace Challenge.

Li et al. 2024, "NeedleBench: Can LLMs Do Retrieval and Reasoning in Information-Dense Context?",
arXiv:2407.11963 (OpenCompass ``opencompass/datasets/needlebench_v2/{parallel,multi,atc,atc_elder_only}.py``
and ``configs/datasets/needlebench_v2/``). English versions, question at the end.

**Multi-needle retrieval** (``needlebench-multi-retrieval``, ``parallel.py``). ``num_needles`` facts of
the shape of NeedleBench's needle file — ``Hidden on {place} is the legendary {item}.`` — each with its
question ``What legendary item is hidden on {place}? Please answer in the format of 'The legendary item
hidden on the {place} is ____.'`` go into the haystack, needle ``i`` at depth ``i/(num_needles−1)`` (the
reference puts one needle at each depth of ``depths_list`` = 0, 10, …, 100 %: 11 needles). Places and
items are drawn from the ``wonderwords`` lists, all distinct. The questions are joined as the reference
joins them — ``'、'.join(question up to its '?')`` then ``"Please answer in the format of '"``,
``'、'.join(answer formats)``, ``"'"`` — and the prompt is (the first line wrapped here)::

    This is a test of long-text capability. You need to first read the long document below, and then
    answer the final questions one by one based on the information in the document.
    The content of the long document is as follows

    <Document>
    {context}
    </Document>

    Based on the information in the document, now please answer: {retrieval_question}

Score (``NeedleBenchParallelEvaluator``): for each needle, 1 if its keyword (the item) is a substring of
the prediction (case-sensitive); the case's score is the mean over the needles. Depth is not a variable
of this task (the needles cover every depth), so it is built once per length.

**Multi-needle reasoning** (``needlebench-multi-reasoning``, ``multi.py``). A kinship chain of
``num_needles + 1`` names, ``num_needles`` relation sentences (the ATC templates below, one random
template and term each), shuffled; each sentence is one needle, wrapped in newlines. The first goes to
``depth``, each next one ``diff`` (10 %) of the haystack further on (capped at the end). The question:
``Given the context described above, who is the eldest relative that '{last}' can trace back to in the
context?`` followed by the reference's three worked examples and notes asking for ``\\boxed{}``. The
answer is the chain's first name. Scored like the ATC.

**Ancestral Trace Challenge** (``needlebench-atc``, ``atc.py``). No haystack: the shuffled chain *is* the
context. ``n`` relations over ``n + 1`` names; link ``i`` reads ``{A} is {B}'s {relationship}`` in one of
the 7 English templates with one of 10 terms (``father``, ``mother``, ``dad``, ``mom`` count one
generation, the six ``grand…`` terms two); the fragments are shuffled and joined with no separator
(``''.join``). Four question types (``QuestionType``):

* ``eldest_ancestor`` — the eldest relative ``names[-1]`` can trace back to: ``names[0]``;
* ``nth_ancestor`` — the ``{G}th`` generation ancestor of ``names[-1]``, ``G`` the total generations
  along the chain: ``names[0]``;
* ``nth_descendant`` — the ``{G}th`` generation descendant of ``names[0]``: ``names[-1]``;
* ``relationship_distance`` — between ``names[0]`` and ``names[-1]``: ``str(G)``.

The reference varies the number of relations (``needle_num_list`` 2 … 512); here ``length`` drives it:
``n`` is fitted by binary search (:func:`longctx.evaluate.fit_length`) so that the prompt with BOS plus
``max_new_tokens`` comes within ``tolerance`` below the target. Names and link choices come from
prefix-stable seeded streams, so the prompt grows with ``n`` and one seed keeps the same eldest
ancestor at every length. ``questions=`` asks several types over *one* chain
(``questions=all`` for the four): one case per type, consecutive, sharing ``context=`` — the preamble
and the story, which then come *before* the type's instructions (the reference puts the instructions
first; every type has its own, so no prefix would be shared). The runner prefills the story once and
reuses its KV cache for each question. With one question the prompt is the reference's, verbatim.

**Scoring** (``needlebench_atc_postprocess_v2`` + ``NeedleBenchATCEvaluator``): the content of the last
``\\boxed{…}`` (balanced braces; ``\\fbox`` located but not unwrapped, as the reference's
``remove_boxed``), a doubled ``{…}`` unwrapped, then ``clean_atc_answer`` (``\\text{}``/``\\boxed{}``
unwrapped, backslashes, quotes and ``~`` removed, whitespace collapsed), then exact string equality.
The reference scores a prediction without ``\\boxed{}`` as ``'None'`` (0); with ``strict=false`` (the
default, so that a bare answer — a base model completing the prompt — is read) the first non-empty line
of such a prediction is cleaned the same way, a final ``.`` dropped, and compared exactly.
``strict=true`` is the reference.

**Names** are offline: :data:`FIRST_NAMES` × :data:`SURNAMES` (common English given names and surnames,
written for this module; about 25 600 combinations), less the nine full names of the prompts' worked
examples, so the gold is never one of the example names. The reference samples from its ``names.json``
(Hugging Face dataset ``opencompass/NeedleBench``). **Haystack**: NeedleBench uses Paul Graham's essays
(copyrighted); here the bundled public-domain *Pride and Prejudice* (``haystack="essay"``, or ``text=``
a local UTF-8 file) or RULER's noise sentences. Needles go to the sentence boundary nearest their depth
(the reference inserts at a token offset of the gpt-4 tokenizer), and lengths are counted in the
evaluated model's own tokens instead of gpt-4's minus a 3000-token ``length_buffer``.

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402:

* multi-retrieval — low diffusion (each question names its place verbatim), high scope (every one of
  the many needles must be reported);
* multi-reasoning — high diffusion (the question names only the youngest person; the rest of the chain
  is found by following names through needles scattered over the haystack), low scope (a few sentences);
* ATC — high diffusion (the chain is shuffled: every link must be located by chaining), high scope
  (every relation of the context is on the path, there is no filler).
"""

from __future__ import annotations

import bisect
import random
import re
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

from longctx.errors import InputError, LongctxError, ParameterError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, fit_length, render_prompt
from longctx.haystack import insert_at_depths, noise_sentences, prose_sentences, word_list
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range, one_of

# -- names (offline) -------------------------------------------------------------------------------------

FIRST_NAMES = tuple(
    """
    Aaron Abigail Adam Adrian Aiden Alan Albert Alexander Alice Alicia Allison Amanda Amber Amy Andrea
    Angela Anna Anthony April Arthur Ashley Audrey Austin Barbara Benjamin Beth Betty Beverly Bobby
    Bradley Brandon Brenda Brian Brittany Bruce Bryan Caleb Cameron Carl Carlos Carol Caroline Catherine
    Charles Charlotte Cheryl Chloe Christian Christina Cindy Claire Clara Colin Connor Craig Crystal
    Cynthia Daniel Danielle David Dean Deborah Denise Dennis Diana Diane Donald Donna Dorothy Douglas
    Dylan Edward Eleanor Elijah Elizabeth Ella Emily Emma Eric Erica Ethan Eugene Evelyn Frances Frank
    Gabriel Gary George Gerald Gloria Grace Gregory Hannah Harold Harry Heather Helen Henry Holly Ian
    Irene Isaac Isabel Jack Jacob Jacqueline Janet Janice Jason Jean Jeffrey Jennifer Jeremy Jesse
    Jessica Joan Joel Jonathan Jordan Joseph Joshua Joyce Judith Julia Julian Justin Karen Katherine
    Keith Kelly Kenneth Kimberly Kyle Laura Lauren Lawrence Leah Leonard Lillian Linda Lisa Logan Louis
    Lucas Lucy Madison Margaret Maria Marilyn Mark Martha Martin Matthew Megan Melissa Michael Michelle
    Nancy Natalie Nathan Nicholas Nicole Noah Olivia Oscar Owen Pamela Patricia Patrick Paul Peter
    Philip Rachel Ralph Raymond Rebecca Richard Robert Roger Ronald Rose Roy Russell Ruth Ryan Samantha
    Samuel Sandra Sara Scott Sean Sharon Simon Sophia Stephanie Stephen Steven Susan Teresa Thomas
    Timothy Tyler Valerie Victoria Vincent Walter Wayne William Zachary
    """.split()
)
SURNAMES = tuple(
    """
    Adams Allen Alvarez Anderson Armstrong Arnold Bailey Baker Barnes Bell Bennett Berry Bishop Black
    Boyd Bradley Brooks Brown Bryant Burns Butler Campbell Carpenter Carroll Carter Chapman Clark Cole
    Coleman Collins Cook Cooper Cox Crawford Cunningham Daniels Davidson Davis Dixon Duncan Dunn Edwards
    Elliott Ellis Evans Ferguson Fisher Fleming Ford Foster Fox Franklin Freeman Gardner Gibson Gilbert
    Gordon Graham Grant Gray Green Griffin Hamilton Hansen Harper Harris Harrison Hart Hawkins Hayes
    Henderson Henry Hicks Hill Holmes Howard Hudson Hughes Hunt Hunter Jackson James Jenkins Johnson
    Jones Jordan Kelley Kennedy Kim King Knight Lambert Lane Lawrence Lawson Lee Lewis Long Lopez Marsh
    Marshall Martin Mason Matthews Meyer Miller Mills Mitchell Moore Morgan Morris Murphy Murray Myers
    Nelson Newman Newton Nichols Norris Olson Owens Palmer Parker Patterson Payne Pearson Perkins Perry
    Peters Phillips Pierce Porter Powell Price Quinn Ramsey Reed Reynolds Rice Richards Richardson Riley
    Roberts Robertson Robinson Rogers Rose Ross Russell Ryan Sanders Saunders Scott Shaw Simmons Simpson
    Smith Snyder Spencer Stanley Stephens Stevens Stewart Stone Sullivan Taylor Thomas Thompson Tucker
    Turner Wagner Walker Wallace Walsh Ward Warren Watson Weaver Webb Wells West Wheeler White Williams
    Willis Wilson Wood Woods Wright Young
    """.split()
)
#: The full names of the prompts' worked examples: never drawn, so no gold answer is an example's name.
EXAMPLE_NAMES = frozenset(
    {
        "James Hill",
        "Jasmine Lane",
        "Andrew Williams",
        "Dan Newton",
        "Jeff White",
        "Kevin Le",
        "Shelley Mills",
        "Mary Johnson",
        "Christopher Baker",
    }
)
ALL_NAMES: tuple[str, ...] = tuple(
    n for n in (f"{f} {s}" for f in FIRST_NAMES for s in SURNAMES) if n not in EXAMPLE_NAMES
)


def shuffled_names(rng: random.Random) -> list[str]:
    """Every name of :data:`ALL_NAMES` in a seeded random order (its prefixes are the samples: taking more
    names never changes the first ones)."""
    names = list(ALL_NAMES)
    rng.shuffle(names)
    return names


# -- the kinship templates of NeedleBench v2 (``atc.py``, English) ---------------------------------------

RELATIONSHIP_TERMS = (
    "father",
    "mother",
    "dad",
    "mom",
    "grandfather",
    "grandmother",
    "maternal grandmother",
    "maternal grandfather",
    "paternal grandfather",
    "paternal grandmother",
)
#: Generations each term spans (``relationship_generation_map_en``).
GENERATIONS = MappingProxyType({t: (2 if "grand" in t else 1) for t in RELATIONSHIP_TERMS})
RELATIONSHIP_TEMPLATES = (
    "{A} is {B}'s {relationship}.",
    "{B}'s {relationship} is {A}.",
    "{A}, as {B}'s {relationship}, has a significant impact on {B}'s upbringing.",
    "{A} is not only {B}'s {relationship} but also {B}'s role model.",
    "During {B}'s upbringing, {A} was not only {B}'s {relationship}, but also {B}'s guardian.",
    "For {B}, {A} is not just a {relationship}, but also a friend.",
    "For {B}, {A} is more than just a {relationship}; {A} is a lifelong mentor of {B}.",
)


class QuestionType(Enum):
    """The ATC question types of NeedleBench v2 (their values are the reference's)."""

    ELDEST_ANCESTOR = 0
    NTH_ANCESTOR = 1
    NTH_DESCENDANT = 2
    RELATIONSHIP_DISTANCE = 3


QUESTION_TYPES = tuple(q.name.lower() for q in QuestionType)


@attrs.frozen
class Chain:
    """A kinship chain: ``names[0]`` is the eldest; link ``i`` says ``names[i]`` is ``names[i+1]``'s
    ``terms[i]``, written with template ``templates[i]``."""

    names: list[str]
    terms: list[str]
    templates: list[int]

    @property
    def generations(self) -> int:
        """Total generations from ``names[0]`` down to ``names[-1]``."""
        return sum(GENERATIONS[t] for t in self.terms)

    def fragments(self) -> list[str]:
        """The relation sentences, in chain order."""
        return [
            RELATIONSHIP_TEMPLATES[k].format(A=self.names[i], B=self.names[i + 1], relationship=self.terms[i])
            for i, k in enumerate(self.templates)
        ]


class ChainStream:
    """Seeded, prefix-stable kinship chains: ``chain(n)`` has ``n`` links over the first ``n + 1`` names
    of a shuffled name list, the ``i``-th link's template and term drawn ``i``-th from one stream — so a
    longer chain extends a shorter one and the prompt grows with ``n``."""

    def __init__(self, seed: int) -> None:
        self.names = shuffled_names(random.Random(derive_seed("needlebench-names", seed)))
        self._rng = random.Random(derive_seed("needlebench-links", seed))
        self._links: list[tuple[int, str]] = []

    @property
    def max_links(self) -> int:
        return len(self.names) - 1

    def chain(self, n: int) -> Chain:
        if not 1 <= n <= self.max_links:
            raise InputError(f"a kinship chain needs 1 to {self.max_links} relations, got {n}")
        while len(self._links) < n:
            k = self._rng.randrange(len(RELATIONSHIP_TEMPLATES))
            self._links.append((k, self._rng.choice(RELATIONSHIP_TERMS)))
        links = self._links[:n]
        return Chain(self.names[: n + 1], [t for _, t in links], [k for k, _ in links])


# -- scoring (``atc_elder_only.py`` / ``datasets/math.py``) -------------------------------------------------


def last_boxed_only_string(text: str) -> str | None:
    """The last ``\\boxed{…}`` (or ``\\fbox{…}``) of ``text`` with balanced braces, or ``None``."""
    idx = text.rfind("\\boxed")
    if idx < 0:
        idx = text.rfind("\\fbox")
        if idx < 0:
            return None
    depth = 0
    for i in range(idx, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[idx : i + 1]
    return None


def extract_boxed_answer(text: str, strip_double_curly_brace: bool = True) -> str | None:
    """The content of the last ``\\boxed{…}``; ``None`` when there is none (or it is an ``\\fbox``)."""
    boxed = last_boxed_only_string(text)
    if boxed is None or not boxed.startswith("\\boxed{") or not boxed.endswith("}"):
        return None
    answer = boxed[len("\\boxed{") : -1]
    if strip_double_curly_brace:
        m = re.match(r"^\{(.*)\}$", answer)
        if m:
            answer = m.group(1)
    return answer


def clean_atc_answer(text: str) -> str:
    """``clean_atc_answer``: unwrap ``\\text{}``/``\\boxed{}``, drop ``\\[``/``\\]``, backslashes, quotes;
    ``~`` → space; whitespace collapsed (an empty text is ``'None'``)."""
    if not text or text == "None":
        return "None"
    text = re.sub(r"\\text\{([^}]+)\}", r"\1", text)
    text = re.sub(r"\\boxed\{([^}]+)\}", r"\1", text)
    text = re.sub(r"\\[\[\]]", "", text)
    text = text.replace("\\\\", "").replace("\\", "")
    text = re.sub(r"\s+", " ", text).strip()
    text = text.replace('"', "").replace("'", "")
    return text.replace("~", " ")


def atc_postprocess(prediction: str, *, strict: bool = False) -> str:
    """The answer read from a prediction: the cleaned ``\\boxed{}`` content, else ``'None'`` (``strict``)
    or the cleaned first non-empty line without a final ``.``."""
    boxed = extract_boxed_answer(prediction, strip_double_curly_brace=True)
    if boxed:
        return clean_atc_answer(boxed)
    if strict:
        return "None"
    line = next((x for x in prediction.splitlines() if x.strip()), "")
    return clean_atc_answer(line.strip().removesuffix("."))


def atc_score(prediction: str, answer: str, *, strict: bool = False) -> float:
    """``NeedleBenchATCEvaluator``: exact equality of the post-processed prediction and the answer."""
    return 1.0 if atc_postprocess(prediction, strict=strict).strip() == answer.strip() else 0.0


# -- the ATC prompts (``atc.py``, English; ``\\\\boxed`` renders as the reference's two backslashes) ------

ATC_INTRO = (
    "Here is a test for multi-step reasoning ability called the Ancestral Trace Challenge. In this test, we "
    "will simulate different people's familial relationships"
)
STORY_HEADER = "Now, the scrambled family relationships are provided below:\n"
QUESTION_LEAD = "Given the scrambled family relationships described above, "
_NOTES_GENDER_OLDER = (
    "1. You do not need to worry about the gender consistency of names in this test. For example, a name that "
    "is typically considered feminine can still be the father of another person. Our primary focus is on who "
    "is older.\n"
    "2. Ignore surname inheritance issues. For instance, Andrew Williams could still be the biological father "
    "of Christopher Baker. We only care about who is older and do not need to consider whether a child should "
    "inherit the father's or mother's surname.\n"
)
_GENERATION_NOTE = (
    "3. Father/mother/dad/mom count as 1 generation, while grandfather/grandmother/maternal grandmother/"
    "maternal grandfather/paternal grandfather/paternal grandmother count as 2 generations.\n"
)
_ELDEST_EXAMPLES = (
    "For example:\n"
    "Example 1: If James Hill's father is Jasmine Lane, and no further information about familial "
    "relationships is provided in the text, then the oldest relative James Hill can trace back to in the "
    "provided text is \\\\boxed{{Jasmine Lane}}.\n"
    "Example 2: If Andrew Williams's grandmother is Dan Newton, and Dan Newton's father is James Hill, and no "
    "further information about familial relationships is provided in the text, then the oldest relative "
    "Andrew Williams can trace back to in the provided text is \\\\boxed{{James Hill}}.\n"
    "Example 3: If Jeff White's father is Kevin Le, Dan Newton's grandmother is Jeff White, and Jeff White's "
    "father is Kevin Le, and Shelley Mills is Dan Newton's great-granddaughter, and no further information "
    "about familial relationships is provided in the text, then the oldest relative Shelley Mills can trace "
    "back to in the provided text is \\\\boxed{{Kevin Le}}.\n"
)

#: Per question type: (the task clause, the guide between the intro and the story, the question).
ATC_PROMPTS: dict[str, tuple[str, str, str]] = {
    "eldest_ancestor": (
        "continuously reason through them until you identify the eldest ancestor.",
        _ELDEST_EXAMPLES
        + "\nNotes:\n"
        + _NOTES_GENDER_OLDER
        + "3. At the end of your response, remember to put your final answer within \\\\boxed{{}}. For "
        "example: \"So the oldest relative '{last_person}' can trace back to in the provided text is "
        '\\\\boxed{{somebody (your answer here)}}."',
        "who is the eldest relative that '{last_person}' can trace back to in the context?",
    ),
    "nth_ancestor": (
        "identify a specific ancestor of a given person.",
        "For example:\n"
        "Example 1: If James Hill's father is Jasmine Lane, then Jasmine Lane is James Hill's 1st generation "
        "ancestor.\n"
        "Example 2: If Andrew Williams's grandmother is Dan Newton (grandmother counts as 2 generations), and "
        "Dan Newton's father is James Hill, then Dan Newton is Andrew Williams's 2nd generation ancestor, and "
        "James Hill is Andrew Williams's 3rd generation ancestor.\n"
        "Example 3: If Shelley Mills's grandfather is Jeff White (grandfather counts as 2 generations), and "
        "Jeff White's mother is Mary Johnson, then Jeff White is Shelley Mills's 2nd generation ancestor, and "
        "Mary Johnson is Shelley Mills's 3rd generation ancestor.\n"
        "\nNotes:\n"
        "1. You do not need to worry about the gender consistency of names in this test. We only care about "
        "generational relationships.\n"
        "2. Ignore surname inheritance issues. We only care about familial relationships.\n"
        + _GENERATION_NOTE
        + "4. At the end of your response, remember to put your final answer within \\\\boxed{{}}. For "
        "example: \"So the {n}th generation ancestor of '{person}' is \\\\boxed{{somebody (your answer "
        'here)}}."',
        "who is the {n}th generation ancestor of '{person}'?",
    ),
    "nth_descendant": (
        "identify a specific descendant of a given person.",
        "For example:\n"
        "Example 1: If Jasmine Lane is James Hill's father, then James Hill is Jasmine Lane's 1st generation "
        "descendant.\n"
        "Example 2: If Dan Newton is Andrew Williams's grandmother (grandmother counts as 2 generations), and "
        "James Hill is Dan Newton's father, then Andrew Williams is Dan Newton's 2nd generation descendant, "
        "and Andrew Williams is James Hill's 3rd generation descendant.\n"
        "Example 3: If Jeff White is Shelley Mills's grandfather (grandfather counts as 2 generations), and "
        "Mary Johnson is Jeff White's mother, then Shelley Mills is Jeff White's 2nd generation descendant, "
        "and Shelley Mills is Mary Johnson's 3rd generation descendant.\n"
        "\nNotes:\n"
        "1. You do not need to worry about the gender consistency of names in this test. We only care about "
        "generational relationships.\n"
        "2. Ignore surname inheritance issues. We only care about familial relationships.\n"
        + _GENERATION_NOTE
        + "4. At the end of your response, remember to put your final answer within \\\\boxed{{}}. For "
        "example: \"So the {n}th generation descendant of '{person}' is \\\\boxed{{somebody (your answer "
        'here)}}."',
        "who is the {n}th generation descendant of '{person}'?",
    ),
    "relationship_distance": (
        "calculate the relationship distance between two individuals.",
        "The relationship distance is defined as the minimum number of generational gaps needed to go from "
        "one person to another in the family graph. Note that different relationships have different "
        "generational gaps. For example:\n"
        "Example 1: If Jasmine Lane is James Hill's father (father counts as 1 generation), then the "
        "relationship distance between James Hill and Jasmine Lane is 1.\n"
        "Example 2: If Dan Newton is Andrew Williams's grandmother (grandmother counts as 2 generations), and "
        "James Hill is Dan Newton's father (father counts as 1 generation), then the relationship distance "
        "between Andrew Williams and Dan Newton is 2, and the relationship distance between Andrew Williams "
        "and James Hill is 3.\n"
        "Example 3: If Jeff White is Shelley Mills's grandfather (grandfather counts as 2 generations), and "
        "Mary Johnson is Jeff White's mother (mother counts as 1 generation), then the relationship distance "
        "between Shelley Mills and Jeff White is 2, and the relationship distance between Shelley Mills and "
        "Mary Johnson is 3.\n"
        "\nNotes:\n"
        "1. You do not need to worry about the gender consistency of names in this test. We only care about "
        "relationship connections.\n"
        "2. Ignore surname inheritance issues. We only care about familial relationships.\n"
        + _GENERATION_NOTE
        + "4. At the end of your response, remember to put your final answer within \\\\boxed{{}}. For "
        "example: \"So the relationship distance between '{person_a}' and '{person_b}' is "
        '\\\\boxed{{5}}."',
        "what is the relationship distance between '{person_a}' and '{person_b}'?",
    ),
}


def atc_question(chain: Chain, qtype: str) -> tuple[dict[str, Any], str]:
    """The template fields of question ``qtype`` about ``chain`` and its gold answer."""
    g = chain.generations
    if qtype == "eldest_ancestor":
        return {"last_person": chain.names[-1]}, chain.names[0]
    if qtype == "nth_ancestor":
        return {"person": chain.names[-1], "n": g}, chain.names[0]
    if qtype == "nth_descendant":
        return {"person": chain.names[0], "n": g}, chain.names[-1]
    if qtype == "relationship_distance":
        return {"person_a": chain.names[0], "person_b": chain.names[-1]}, str(g)
    raise ValueError(f"unknown ATC question type {qtype!r}")


def atc_prompt(story: str, qtype: str, fields: dict[str, Any]) -> str:
    """The reference's prompt for one question type: intro, guide, story, question."""
    task, guide, question = ATC_PROMPTS[qtype]
    text = (
        f"{ATC_INTRO}, and your task is to {task}\n\n{guide}\n\n{STORY_HEADER}{{story}}\n\n{QUESTION_LEAD}{question}\n"
    )
    return text.format(story=story, **fields)


def atc_shared_context(story: str) -> str:
    """The context several question types share: the intro (without a task) and the story."""
    return f"{ATC_INTRO}.\n\n{STORY_HEADER}{story}\n\n"


def atc_question_part(qtype: str, fields: dict[str, Any]) -> str:
    """What follows :func:`atc_shared_context` for one question type: its task, guide and question."""
    task, guide, question = ATC_PROMPTS[qtype]
    text = f"Your task is to {task}\n\n{guide}\n\n{QUESTION_LEAD}{question}\n"
    return text.format(**fields)


# -- the multi-needle prompts (``parallel.py``, ``multi.py``: English, question at the end) -------------

DOC_INTRO_QUESTIONS = (
    "This is a test of long-text capability. You need to first read the long document below, and then answer "
    "the final questions one by one based on the information in the document.\n"
)
DOC_INTRO_QUESTION = (
    "This is a test of long-text capability. You need to first read the long document below, and then answer "
    "the final question based on the information in the document.\n"
)
DOC_HEAD = "The content of the long document is as follows\n\n<Document>\n"
DOC_TAIL = "\n</Document>\n\n"
ANSWER_LEAD = "Based on the information in the document, now please answer: "
REASONING_QUESTION = (
    "Given the context described above, who is the eldest relative that '{last_person}' can trace back to in "
    "the context?"
)
REASONING_GUIDE = (
    "\n\n"
    + _ELDEST_EXAMPLES
    + "\nNotes:\n"
    + _NOTES_GENDER_OLDER
    + "3. At the end of your response, remember to put your final answer within \\\\boxed{{}}. For example: "
    "\"So the oldest relative '{last_person}' can trace back to in the provided text is "
    '\\\\boxed{{(your answer here)}}."\n\n'
)
NEEDLE = "Hidden on {place} is the legendary {item}."
NEEDLE_QUESTION = (
    "What legendary item is hidden on {place}? Please answer in the format of 'The legendary item hidden on "
    "the {place} is ____.'"
)
NEEDLE_ANSWER = "The legendary item hidden on the {place} is {item}"


def retrieval_question(questions: Sequence[str]) -> str:
    """``parallel.py``'s join of the needles' questions: the questions up to their ``?`` joined with
    ``、``, then ``Please answer in the format of '`` and the quoted formats (up to their first ``.``)
    joined with ``、``, then ``'``."""
    qs = "、".join(q.split("?")[0] + "?" for q in questions)
    formats = "、".join(q.split("'")[1].split(".")[0] for q in questions)
    return qs + "Please answer in the format of '" + formats + "'"


class Haystack:
    """A seeded haystack measured in words: ``sentences(n)`` is the first ``n`` words of the text from a
    seeded offset (essay) or of the noise paragraph, as sentences, the last one possibly cut mid-sentence
    (NeedleBench cuts its essays at a token count). Prefix-stable in ``n``, so the prompt grows with it."""

    def __init__(self, kind: str, text: str, seed: int) -> None:
        self.kind, self.text = kind, text
        self.offset = random.Random(seed).randrange(1 << 30)
        self._sents: list[list[str]] = []
        self._ends: list[int] = [0]  # words in the first i sentences

    def _grow(self, n_words: int) -> None:
        while self._ends[-1] < n_words:
            m = max(16, len(self._sents))
            if self.kind == "noise":
                more = noise_sentences(len(self._sents) + m)[len(self._sents) :]
            else:
                more = prose_sentences(m, source=self.text, start=self.offset + len(self._sents))
            for sent in more:
                words = sent.split()
                self._sents.append(words)
                self._ends.append(self._ends[-1] + len(words))

    def sentences(self, n_words: int) -> list[str]:
        """The first ``n_words`` words as sentences."""
        self._grow(n_words)
        full = bisect.bisect_right(self._ends, n_words) - 1
        out = [" ".join(w) for w in self._sents[:full]]
        rest = n_words - self._ends[full]
        if rest:
            out.append(" ".join(self._sents[full][:rest]))
        return out


def weave(haystack: Sequence[str], needles: Sequence[str], depths: Sequence[float]) -> tuple[str, list[float]]:
    """The haystack sentences joined by spaces with each needle on its own line (``'\\n' + needle +
    '\\n'``, as NeedleBench wraps them) at the sentence boundary nearest its depth; with the actual depths."""
    items, actual = insert_at_depths(haystack, needles, depths)
    marks = set(needles)
    out: list[str] = []
    for item in items:
        if item in marks:
            out.append("\n" + item + "\n")
        else:
            out.append((" " if out and not out[-1].endswith("\n") else "") + item)
    return "".join(out), actual


# -- configs ---------------------------------------------------------------------------------------------


def _tolerance(default: float = 0.02) -> Any:
    return attrs.field(
        default=default,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )


def _haystack() -> Any:
    return attrs.field(
        default="essay",
        validator=one_of("essay", "noise"),
        metadata={"help": "essay: public-domain prose (the text parameter); noise: RULER's repeated sentences"},
    )


def _text() -> Any:
    return attrs.field(
        default="pride_and_prejudice",
        metadata={"help": "the essay haystack: pride_and_prejudice (bundled) or a UTF-8 text file"},
    )


def _strict() -> Any:
    return attrs.field(
        default=False,
        metadata={"help": "score only \\boxed{} answers, as the reference (false: read a bare first line too)"},
    )


def _questions(value: Any) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value)
    return tuple(str(v).strip().lower().replace("-", "_") for v in items if str(v).strip())


def _valid_questions(_inst: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    if value == ("all",):
        return
    bad = [q for q in value if q not in QUESTION_TYPES]
    if not value or bad or len(set(value)) != len(value):
        raise ParameterError(
            f"{attribute.name} must be distinct ATC question types separated by ';' (or 'all'): "
            f"{', '.join(QUESTION_TYPES)}; got {';'.join(value) or 'nothing'}"
        )


@attrs.frozen
class MultiRetrievalConfig:
    """Needles, haystack, generation budget and tolerance."""

    num_needles: int = attrs.field(
        default=11,
        validator=in_range(2, 100),
        metadata={"help": "needles, at depths i/(n-1) (NeedleBench: one per depth 0, 10, ..., 100 %: 11)"},
    )
    haystack: str = _haystack()
    text: str = _text()
    max_new_tokens: int = attrs.field(
        default=256, validator=at_least(1), metadata={"help": "tokens to generate (~20 per needle's answer)"}
    )
    tolerance: float = _tolerance()


@attrs.frozen
class MultiReasoningConfig:
    """Needles, their spacing, haystack, scoring, generation budget and tolerance."""

    num_needles: int = attrs.field(
        default=2,
        validator=in_range(1, 100),
        metadata={"help": "relation sentences (NeedleBench: 2, 3, 4 or 5, one dataset each)"},
    )
    diff: float = attrs.field(
        default=0.10,
        validator=in_range(0.0, 1.0),
        metadata={"help": "spacing between consecutive needles, fraction of the haystack (NeedleBench: 10 %)"},
    )
    haystack: str = _haystack()
    text: str = _text()
    strict: bool = _strict()
    max_new_tokens: int = attrs.field(
        default=128, validator=at_least(1), metadata={"help": "tokens to generate (reasoning, then \\boxed{})"}
    )
    tolerance: float = _tolerance()


@attrs.frozen
class ATCConfig:
    """Question types, scoring, generation budget and tolerance."""

    questions: tuple[str, ...] = attrs.field(
        default=("eldest_ancestor",),
        converter=_questions,
        validator=_valid_questions,
        metadata={
            "help": "question types asked over one chain, ';'-separated, or all: "
            + ", ".join(QUESTION_TYPES)
            + " (several share the context's KV cache)"
        },
    )
    strict: bool = _strict()
    max_new_tokens: int = attrs.field(
        default=128, validator=at_least(1), metadata={"help": "tokens to generate (reasoning, then \\boxed{})"}
    )
    tolerance: float = _tolerance()

    @property
    def question_types(self) -> tuple[str, ...]:
        """The question types asked, in order (``all``: the four)."""
        return QUESTION_TYPES if self.questions == ("all",) else self.questions


# -- the tasks -------------------------------------------------------------------------------------------


def _too_short(name: str, length: int, need: int, budget: int) -> InputError:
    return InputError(
        f"{name}: a length of {length} tokens is too short; the shortest prompt plus {budget} generated tokens "
        f"already needs {need}"
    )


class _OutOfNames(LongctxError):
    """A chain longer than the name list allows (raised inside a length search, reported as input)."""


def _fit(
    name: str, build: Callable[[int], str], tokenizer: Any, length: int, *, lo: int, budget: int, tol: float
) -> tuple[int, str, int]:
    try:
        fit = fit_length(build, tokenizer, length, lo=lo, reserve=budget, tolerance=tol)
        return fit.n, fit.text, fit.tokens
    except InputError:
        raise _too_short(name, length, count_prompt_tokens(tokenizer, build(lo)) + budget, budget) from None


class MultiRetrieval:
    """``needlebench-multi-retrieval``: several needles at spread depths, all to be retrieved."""

    name = "needlebench-multi-retrieval"
    tags = MappingProxyType({"diffusion": "low", "scope": "high"})
    #: the needles cover every depth: built once per length
    depth_sensitive = False

    def __init__(self, config: MultiRetrievalConfig | None = None, ctx: Any = None) -> None:
        self.config = config or MultiRetrievalConfig()

    def needles(self, seed: int) -> list[dict[str, str]]:
        """``num_needles`` distinct (place, item) facts with their needle sentence and question."""
        rng = random.Random(derive_seed(self.name, seed, "needles"))
        nouns = [w for w in word_list(("noun",)) if w.isalpha() and w.islower() and 4 <= len(w) <= 9]
        adjectives = [w for w in word_list(("adjective",)) if w.isalpha() and w.islower() and 4 <= len(w) <= 9]
        out: list[dict[str, str]] = []
        used: set[str] = set()
        while len(out) < self.config.num_needles:
            place = rng.choice(nouns).capitalize() + " Island"
            item = rng.choice(adjectives).capitalize() + " " + rng.choice(nouns).capitalize()
            words = {place.split()[0], *item.split()}
            if words & used:
                continue  # every keyword and place distinct: no keyword inside another fact
            used |= words
            out.append(
                {
                    "place": place,
                    "item": item,
                    "needle": NEEDLE.format(place=place, item=item),
                    "question": NEEDLE_QUESTION.format(place=place),
                    "answer": NEEDLE_ANSWER.format(place=place, item=item),
                }
            )
        return out

    def depths(self) -> list[float]:
        """Needle ``i`` at ``i / (num_needles − 1)``."""
        k = self.config.num_needles
        return [i / (k - 1) for i in range(k)]

    def haystack(self, seed: int) -> Haystack:
        """The case's haystack (its offset into the text depends on the seed only)."""
        return Haystack(self.config.haystack, self.config.text, derive_seed(self.name, seed, "haystack"))

    def prompt(self, n: int, needles: list[dict[str, str]], hay: Haystack) -> tuple[str, str, list[float]]:
        """The body (no answer prefix) with ``n`` haystack words, its question, the actual depths."""
        context, actual = weave(hay.sentences(n), [x["needle"] for x in needles], self.depths())
        question = retrieval_question([x["question"] for x in needles])
        body = DOC_INTRO_QUESTIONS + DOC_HEAD + context + DOC_TAIL + ANSWER_LEAD + question + "\n"
        return body, question, actual

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens with every needle at its depth (``depth`` is not used)."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        needles = self.needles(seed)
        hay = self.haystack(seed)
        budget = self.config.max_new_tokens
        n, text, tokens = _fit(
            self.name,
            lambda k: render_prompt(tokenizer, self.prompt(k, needles, hay)[0]),
            tokenizer,
            length,
            lo=0,
            budget=budget,
            tol=self.config.tolerance,
        )
        _, question, actual = self.prompt(n, needles, hay)
        keywords = [x["item"] for x in needles]
        yield Case(
            task=self.name,
            prompt=text,
            answer="、".join(x["answer"] for x in needles),
            target_tokens=length,
            actual_tokens=tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=budget,
            query=ANSWER_LEAD + question,
            meta={
                "keywords": keywords,
                "places": [x["place"] for x in needles],
                "needles": [x["needle"] for x in needles],
                "needle_depths": actual,
                "haystack": self.config.haystack,
                "haystack_words": n,
            },
            references=tuple(keywords),
        )

    def score(self, prediction: str, case: Case) -> float:
        """The mean over the needles of ``keyword in prediction``."""
        found = [k in prediction for k in case.golds]
        return sum(found) / len(found)


class MultiReasoning:
    """``needlebench-multi-reasoning``: a kinship chain split into needles; the eldest ancestor."""

    name = "needlebench-multi-reasoning"
    tags = MappingProxyType({"diffusion": "high", "scope": "low"})

    def __init__(self, config: MultiReasoningConfig | None = None, ctx: Any = None) -> None:
        self.config = config or MultiReasoningConfig()

    def needles(self, seed: int) -> tuple[Chain, list[str]]:
        """The chain and its relation sentences in shuffled order (the needles, first one at ``depth``)."""
        chain = ChainStream(derive_seed(self.name, seed)).chain(self.config.num_needles)
        frags = chain.fragments()
        random.Random(derive_seed(self.name, seed, "shuffle")).shuffle(frags)
        return chain, frags

    def depths(self, depth: float) -> list[float]:
        """The first needle at ``depth``, each next one ``diff`` further (capped at the end)."""
        return [min(depth + i * self.config.diff, 1.0) for i in range(self.config.num_needles)]

    def haystack(self, seed: int) -> Haystack:
        """The case's haystack (its offset into the text depends on the seed only)."""
        return Haystack(self.config.haystack, self.config.text, derive_seed(self.name, seed, "haystack"))

    def prompt(self, n: int, frags: list[str], last: str, depth: float, hay: Haystack) -> tuple[str, str, list[float]]:
        """The body with ``n`` haystack words, its tail after the document (the query), actual depths."""
        context, actual = weave(hay.sentences(n), frags, self.depths(depth))
        tail = ANSWER_LEAD + REASONING_QUESTION.format(last_person=last) + REASONING_GUIDE.format(last_person=last)
        return DOC_INTRO_QUESTION + DOC_HEAD + context + DOC_TAIL + tail, tail, actual

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens, the first needle at ``depth``."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        chain, frags = self.needles(seed)
        last = chain.names[-1]
        hay = self.haystack(seed)
        budget = self.config.max_new_tokens
        n, text, tokens = _fit(
            self.name,
            lambda k: render_prompt(tokenizer, self.prompt(k, frags, last, depth, hay)[0]),
            tokenizer,
            length,
            lo=0,
            budget=budget,
            tol=self.config.tolerance,
        )
        _, tail, actual = self.prompt(n, frags, last, depth, hay)
        yield Case(
            task=self.name,
            prompt=text,
            answer=chain.names[0],
            target_tokens=length,
            actual_tokens=tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=budget,
            query=tail.rstrip("\n"),
            meta={
                "chain": chain.names,
                "terms": chain.terms,
                "needles": frags,
                "needle_depths": actual,
                "last_person": last,
                "haystack": self.config.haystack,
                "haystack_words": n,
            },
            references=(chain.names[0],),
        )

    def score(self, prediction: str, case: Case) -> float:
        """Boxed exact match (see the module docstring)."""
        return atc_score(prediction, case.answer, strict=self.config.strict)


class AncestralTraceChallenge:
    """``needlebench-atc``: the shuffled kinship chain is the whole context."""

    name = "needlebench-atc"
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})
    #: no haystack, nothing to place: built once per length
    depth_sensitive = False

    def __init__(self, config: ATCConfig | None = None, ctx: Any = None) -> None:
        self.config = config or ATCConfig()

    def story(self, chain: Chain, seed: int) -> str:
        """The relation sentences shuffled and joined with no separator (``''.join``)."""
        frags = chain.fragments()
        random.Random(derive_seed(self.name, seed, "shuffle", len(chain.terms))).shuffle(frags)
        return "".join(frags)

    def _prompts(self, tokenizer: Any, chain: Chain, seed: int) -> tuple[str | None, list[tuple[str, str, str]]]:
        """``(shared context or None, [(question type, prompt, answer), ...])`` for ``chain``."""
        story = self.story(chain, seed)
        out = []
        if len(self.config.question_types) == 1:
            qtype = self.config.question_types[0]
            fields, answer = atc_question(chain, qtype)
            return None, [(qtype, render_prompt(tokenizer, atc_prompt(story, qtype, fields)), answer)]
        context = atc_shared_context(story)
        for qtype in self.config.question_types:
            fields, answer = atc_question(chain, qtype)
            out.append((qtype, render_prompt(tokenizer, context + atc_question_part(qtype, fields)), answer))
        return context, out

    def _longest(self, tokenizer: Any, chain: Chain, seed: int) -> str:
        """The prompt of the question type whose question part has the most tokens (the context is the
        same for all, so only the short question parts are counted)."""
        qtypes = self.config.question_types
        if len(qtypes) == 1:
            return self._prompts(tokenizer, chain, seed)[1][0][1]
        parts = {q: atc_question_part(q, atc_question(chain, q)[0]) for q in qtypes}
        longest = max(qtypes, key=lambda q: count_prompt_tokens(tokenizer, parts[q]))
        return render_prompt(tokenizer, atc_shared_context(self.story(chain, seed)) + parts[longest])

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case per question type over one chain of as many relations as ``length`` tokens hold."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        stream = ChainStream(derive_seed(self.name, seed))
        budget = self.config.max_new_tokens
        lo, hi = 2, stream.max_links

        def build(k: int) -> str:
            if k > hi:  # not ``hi=`` of fit_length: that would build the longest chain first
                raise _OutOfNames(
                    f"{self.name}: {length} tokens need more than the {hi} relations the name list allows; "
                    "ask for a shorter length"
                )
            return self._longest(tokenizer, stream.chain(k), seed)

        try:
            n, _, _ = _fit(self.name, build, tokenizer, length, lo=lo, budget=budget, tol=self.config.tolerance)
        except _OutOfNames as e:
            raise InputError(str(e)) from None
        # the longest question was fitted; its token count stands for all, but check each
        while True:
            chain = stream.chain(n)
            context, prompts = self._prompts(tokenizer, chain, seed)
            counts = [count_prompt_tokens(tokenizer, p) + budget for _, p, _ in prompts]
            if max(counts) <= length or n <= lo:
                break
            n -= 1
        if max(counts) > length:
            raise _too_short(self.name, length, max(counts), budget)
        for j, ((qtype, prompt, answer), tokens) in enumerate(zip(prompts, counts, strict=True)):
            fields, _ = atc_question(chain, qtype)
            shared = None
            if context is not None:
                at = prompt.find(context)
                shared = prompt[: at + len(context)] if at >= 0 else None
            yield Case(
                task=self.name,
                prompt=prompt,
                answer=answer,
                target_tokens=length,
                actual_tokens=tokens,
                depth=depth,
                seed=seed,
                max_new_tokens=budget,
                query=(QUESTION_LEAD + ATC_PROMPTS[qtype][2]).format(**fields),
                meta={
                    "question_type": qtype,
                    "question": j,
                    "num_relations": n,
                    "total_generations": chain.generations,
                    "chain": chain.names,
                    "terms": chain.terms,
                    **{k: v for k, v in fields.items() if k != "n"},
                },
                references=(answer,),
                context=shared,
            )

    def score(self, prediction: str, case: Case) -> float:
        """Boxed exact match (see the module docstring)."""
        return atc_score(prediction, case.answer, strict=self.config.strict)


TASKS = (MultiRetrieval, MultiReasoning, AncestralTraceChallenge)


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance contracts. The prompts alone are 0.6 to 3 kB (three worked
    examples and notes, eleven questions), so the byte-tokenizer lengths are 4k and 8k; one ATC relation
    is up to ~110 bytes, hence a 5 % tolerance there."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.contrib.conformance import EvaluationContract

        class MultiRetrievalContract(EvaluationContract):
            technique = MultiRetrieval.name
            lengths: ClassVar[tuple[int, ...]] = (4096, 8192)

        class MultiReasoningContract(EvaluationContract):
            technique = MultiReasoning.name
            lengths: ClassVar[tuple[int, ...]] = (4096, 8192)

        class ATCContract(EvaluationContract):
            technique = AncestralTraceChallenge.name
            lengths: ClassVar[tuple[int, ...]] = (4096, 8192)
            length_tolerance: ClassVar[float | None] = 0.05

        return (MultiRetrievalContract, MultiReasoningContract, ATCContract)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    paper = "Li et al. 2024 (NeedleBench), arXiv:2407.11963"
    register(
        MultiRetrieval.name,
        config=MultiRetrievalConfig,
        build=MultiRetrieval,
        summary="NeedleBench multi-needle retrieval: facts at every depth, all to be reported",
        paper=paper,
    )
    register(
        MultiReasoning.name,
        config=MultiReasoningConfig,
        build=MultiReasoning,
        summary="NeedleBench multi-needle reasoning: kinship needles whose chain gives the eldest ancestor",
        paper=paper,
    )
    register(
        AncestralTraceChallenge.name,
        config=ATCConfig,
        build=AncestralTraceChallenge,
        summary="NeedleBench Ancestral Trace Challenge: a shuffled kinship chain fills the context; 4 questions",
        paper=paper,
    )
