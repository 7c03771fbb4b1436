"""``kitab``: constraint satisfaction over a long book catalogue — list an author's books that meet criteria.

Abdin et al. 2023, "KITAB: Evaluating LLMs on Constraint Satisfaction for Information Retrieval",
arXiv:2310.15511 (data and code: ``huggingface.co/datasets/microsoft/kitab``; the evaluation as maintained in
``microsoft/eureka-ml-insights``: ``prompt_templates/kitab_templates/Template_2b.jinja``,
``data_utils/kitab_utils.py``, ``metrics/kitab_metrics.py``).

**Method.** A KITAB query asks for every book by one author that satisfies one or two constraints; in the
WITH-CONTEXT condition the author's complete bibliography is given and the model must filter it. To make the
context long, the list here is a synthetic *catalogue* of many authors: the queried author's
``books_per_author`` books among other authors' books, whose number is fitted by binary search
(:func:`longctx.evaluate.fit_length`) so that the prompt with BOS plus the generation budget comes within
``tolerance`` of the target. The author's name is KITAB's first, fixed constraint; the others are KITAB's
constraint kinds:

=============== ====================================================== ======================================
kind            criterion                                               verifier (ours)
=============== ====================================================== ======================================
starts-with     ``Book title starts with the letter v.``               first word starts with it, or the
                                                                        second after a stop word (KITAB's)
ends-with       ``Book title ends with the letter e.``                 the last word ends with it
word-count      ``Book title contains 3 words.``                       exactly that many words
human-name      ``Book title contains a human name.`` / ``doesn't``    a word is one of :data:`TITLE_NAMES`
city-name       ``Book title contains a city name.`` / ``doesn't``     a word is one of :data:`CITIES`
publishing-year ``Book was first published between 1950 and 1970.``    the year is in the range (inclusive)
=============== ====================================================== ======================================

Titles are generated from the ``wonderwords`` lists (:func:`longctx.haystack.word_list`) with patterns that
put names and cities in some of them, years follow the author's birth year, publishers are generated too. The
named-entity checks are exact membership in the generator's own lists where KITAB calls Azure's entity
recogniser and a GPT-4 list of names; KITAB's word count accepts ±1 word, here the count is exact (the
titles' lengths are controlled). The gold set is the author's books passing every verifier; a query is kept
when it has between 1 and ``max_gold`` books and excludes at least one of the author's books.

**Depth.** The author's books sit at sorted uniform fractions of the catalogue inside a window of width
``window`` centred on ``depth`` (``window = 1``, the default: spread over the whole catalogue, depth-free).

**Prompt** (``Template_2b``, WITH-CONTEXT, adapted to a many-author catalogue; KITAB's ``"    \\n"`` line ends)::

    The following is a list of books with their authors, publication dates in parenthesis and publishers. List:
    {title} ({year}) by {author}, {publisher}    \\n …
    Find all books in this list by {author} (born in {birth year}) that satisfy all the following criteria.
    Think step-by-step. Give a 1-2 sentence reason for why the books satisfy the criteria. Criteria:
    Criterion 1: … Remember that every book in the output list needs to satisfy all the criteria. Always finish
    your response with the following format. Do not add any additional text or comments after the output list.
    Output:
    1. Reason: <reason>. Title: <title> …

followed by the answer prefix ``"\\nOutput:\\n"`` (the reference lets the model reason before its ``Output:``
list; in completion mode the list starts at once).

**Score** (``kitab_metrics.py``). Titles are read after the last ``"Output:\\n"`` with
``Title: (.*?)\\s*(?:\\(\\d{4}\\))?$`` per line and normalised (lower case, ``&`` → ``and``, punctuation
removed, a leading *the/a/an* dropped). Each is mapped to one of the author's books — equal, else one
containing the other, else fuzzy ratio ≥ 80 (KITAB tries containment first; exact equality first is ours, so
that a title contained in another maps to itself) — or counted as *not from the author*. Per query:
``satisfied_rate`` and ``unsatisfied_rate`` (mapped books passing / failing the constraints, over the
distinct answers), ``not_from_author_rate``, ``completeness`` (share of the gold books among the satisfied
ones) and ``all_correct`` (complete, all satisfied, none from another author). ``score`` is ``all_correct``,
the strictest of KITAB's reported metrics (``score_metric`` picks another); ``metrics`` returns all five
(a rate with no answer to divide by is 0 there, KITAB's NaN).

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402: high
diffusion (the author's books are scattered among many others and each must be checked against the
criteria) and high scope (every matching book must be listed; completeness is scored).
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError, LongctxError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, fit_length, render_prompt
from longctx.haystack import insert_at_depths, word_list
from longctx.hooks import hookimpl
from longctx.metrics import fuzz_ratio
from longctx.params import at_least, in_range, one_of

__all__ = [
    "CITIES",
    "CONSTRAINT_KINDS",
    "TITLE_NAMES",
    "Book",
    "Catalogue",
    "Constraint",
    "Kitab",
    "KitabConfig",
    "kitab_metrics",
    "parse_titles",
    "process_title",
]

#: First names that may appear in titles (the human-name constraint's ground truth).
TITLE_NAMES = (
    "Alice", "Anna", "Arthur", "Clara", "Daniel", "Edgar", "Edith", "Elena", "Emma", "Felix", "George",
    "Hannah", "Harold", "Helen", "Isaac", "Ivan", "Jacob", "Julia", "Laura", "Leo", "Lucy", "Maria",
    "Martin", "Miriam", "Nora", "Oscar", "Paul", "Peter", "Rosa", "Ruth", "Samuel", "Sofia", "Thomas",
    "Victor", "Walter", "Zoe",
)  # fmt: skip
#: Single-word city names that may appear in titles (the city-name constraint's ground truth).
CITIES = (
    "Athens", "Berlin", "Boston", "Cairo", "Chicago", "Dublin", "Florence", "Havana", "Istanbul", "Kyoto",
    "Lagos", "Lima", "Lisbon", "London", "Madrid", "Moscow", "Mumbai", "Nairobi", "Naples", "Oslo", "Paris",
    "Prague", "Quito", "Rome", "Seoul", "Sydney", "Tokyo", "Toronto", "Venice", "Vienna", "Warsaw",
    "Zurich",
)  # fmt: skip
#: Author first names and surnames (never in titles).
AUTHOR_FIRST = (
    "Agnes", "Ambrose", "Beatrix", "Cecil", "Cornelia", "Desmond", "Eleanor", "Ernest", "Florence", "Gideon",
    "Harriet", "Horace", "Imogen", "Jasper", "Josephine", "Lionel", "Mabel", "Magnus", "Nathaniel", "Octavia",
    "Percival", "Philippa", "Reginald", "Rosalind", "Sebastian", "Sylvia", "Theodore", "Ursula", "Vivian",
    "Winifred",
)  # fmt: skip
SURNAMES = (
    "Ashdown", "Bellamy", "Blackwood", "Carrow", "Dunmore", "Ellery", "Fairbairn", "Galloway", "Hargrove",
    "Holloway", "Ingram", "Kendrick", "Lockhart", "Marlowe", "Merriweather", "Northcott", "Oakley", "Pemberton",
    "Quill", "Radcliffe", "Sinclair", "Thorne", "Underhill", "Vance", "Whitlock", "Wexford", "Yardley",
)  # fmt: skip
#: KITAB's stop words (a starts-with check may skip one at the start of a title).
STOPWORDS = frozenset({"a", "an", "the", "in", "is", "of", "on", "for", "with", "to", "and"})
CONSTRAINT_KINDS = ("starts-with", "ends-with", "word-count", "human-name", "city-name", "publishing-year")

HEADER = "The following is a list of books with their authors, publication dates in parenthesis and publishers. List:"
QUESTION = (
    "Find all books in this list by {author} (born in {birth_year}) that satisfy all the following criteria. "
    "Think step-by-step. Give a 1-2 sentence reason for why the books satisfy the criteria. Criteria: {constraints} "
    "Remember that every book in the output list needs to satisfy all the criteria. Always finish your response "
    "with the following format. Do not add any additional text or comments after the output list.    \n"
    "Output:    \n"
    "1. Reason: <reason>. Title: <title>\n"
    "2. Reason: <reason>. Title: <title>    \n"
    "...     \n"
    "N. Reason: <reason>. Title: <title>"
)
ANSWER_PREFIX = "\nOutput:\n"
GOLD_REASON = "The title satisfies all the criteria"


# -- books and constraints -------------------------------------------------------------------------------


@attrs.frozen
class Book:
    """One catalogue entry."""

    title: str
    year: int
    author: str
    publisher: str

    def line(self) -> str:
        """The catalogue line (without KITAB's trailing spaces and newline)."""
        return f"{self.title} ({self.year}) by {self.author}, {self.publisher}"


def _words_of(title: str) -> list[str]:
    return [w.strip(string.punctuation).removesuffix("'s").removesuffix("’s") for w in title.split()]


@attrs.frozen
class Constraint:
    """A KITAB book constraint: its kind and parameter, with its criterion text and verifier."""

    kind: str
    letter: str = ""
    count: int = 0
    negated: bool = False
    years: tuple[int, int] = (0, 0)

    def text(self) -> str:
        """The criterion sentence (KITAB's phrasing)."""
        if self.kind == "starts-with":
            return f"Book title starts with the letter {self.letter}."
        if self.kind == "ends-with":
            return f"Book title ends with the letter {self.letter}."
        if self.kind == "word-count":
            return f"Book title contains {self.count} words."
        if self.kind == "human-name":
            return "Book title doesn't contain a human name." if self.negated else "Book title contains a human name."
        if self.kind == "city-name":
            return "Book title doesn't contain a city name." if self.negated else "Book title contains a city name."
        if self.kind == "publishing-year":
            return f"Book was first published between {self.years[0]} and {self.years[1]}."
        raise ValueError(f"unknown constraint kind {self.kind!r}")

    def check(self, book: Book) -> bool:
        """Whether ``book`` satisfies the constraint."""
        words = book.title.split()
        if self.kind == "starts-with":
            first = [w.lower() for w in words]
            if first and first[0].startswith(self.letter):
                return True
            if first and first[0] in STOPWORDS:
                first.pop(0)
            return bool(first) and first[0].startswith(self.letter)
        if self.kind == "ends-with":
            return bool(words) and words[-1].lower().endswith(self.letter)
        if self.kind == "word-count":
            return len(words) == self.count
        if self.kind == "human-name":
            return any(w in TITLE_NAMES for w in _words_of(book.title)) != self.negated
        if self.kind == "city-name":
            return any(w in CITIES for w in _words_of(book.title)) != self.negated
        if self.kind == "publishing-year":
            return self.years[0] <= book.year <= self.years[1]
        raise ValueError(f"unknown constraint kind {self.kind!r}")


def criteria_text(constraints: Sequence[Constraint]) -> str:
    """``Criterion 1: … Criterion 2: …`` (KITAB's numbering)."""
    return " ".join(f"Criterion {i + 1}: {c.text()}" for i, c in enumerate(constraints))


# -- title normalisation and parsing (kitab_utils.py, kitab_metrics.py) ----------------------------------

_PUNCT = str.maketrans("", "", string.punctuation)


def process_title(title: str) -> str:
    """KITAB's title normalisation: lower case, ``&`` → ``and``, punctuation removed, a leading article dropped."""
    title = title.lower().replace("&", "and").translate(_PUNCT)
    words = title.split()
    if words and words[0] in ("the", "a", "an"):
        title = " ".join(words[1:])
    return title


def parse_titles(response: str) -> list[str]:
    """The titles of a response (``parse_output_reason``): after the last ``"Output:\\n"``, every line's
    ``Title: …`` (a trailing ``(year)`` dropped); none when it says ``All Books`` without an ``Output:``."""
    last = response.rfind("Output:\n")
    if "All Books" in response and last == -1:
        return []
    if last != -1:
        response = response[last + len("Output:\n") :]
    return re.findall(r"Title: (.*?)\s*(?:\(\d{4}\))?$", response, re.MULTILINE)


def kitab_metrics(
    response: str, books: Sequence[Book], constraints: Sequence[Constraint], gold: Sequence[str]
) -> dict[str, float]:
    """KITAB's per-query metrics for ``response`` against the author's ``books`` and the ``gold`` titles.

    Returns ``satisfied_rate``, ``unsatisfied_rate``, ``not_from_author_rate``, ``completeness`` and
    ``all_correct``; a rate with no answer to divide by (KITAB: NaN) is 0.
    """
    by_norm = {process_title(b.title): b for b in books}
    norms = list(by_norm)
    mapped: dict[str, list[str]] = {}
    not_from_author: set[str] = set()
    for raw in parse_titles(response):
        t = process_title(raw)
        if t == "":
            continue
        if t in by_norm:
            hit = t
        else:
            hit = next((n for n in norms if t in n or n in t), None)
            if hit is None:
                hit = next((n for n in norms if fuzz_ratio(n, t) >= 80), None)
        if hit is None:
            not_from_author.add(t)
        else:
            mapped.setdefault(hit, []).append(t)
    satisfied = {n for n in mapped if all(c.check(by_norm[n]) for c in constraints)}
    unsatisfied = set(mapped) - satisfied
    clusters = len(not_from_author) + len(mapped)
    gold_norm = {process_title(g) for g in gold}
    answered = bool(mapped or not_from_author)
    if not gold_norm and not answered:
        return dict.fromkeys(("satisfied_rate", "completeness", "all_correct"), 1.0) | {
            "unsatisfied_rate": 0.0,
            "not_from_author_rate": 0.0,
        }
    sat = len(satisfied) / clusters if clusters else 0.0
    unsat = len(unsatisfied) / clusters if clusters else 0.0
    nfa = len(not_from_author) / clusters if clusters else 0.0
    completeness = 1 - len(gold_norm - satisfied) / len(gold_norm) if gold_norm else 0.0
    all_correct = float(clusters > 0 and completeness == 1 and sat == 1 and nfa == 0)
    return {
        "satisfied_rate": sat,
        "unsatisfied_rate": unsat,
        "not_from_author_rate": nfa,
        "completeness": completeness,
        "all_correct": all_correct,
    }


# -- the catalogue generator -----------------------------------------------------------------------------


def _pool(kind: str) -> list[str]:
    entities = {w.lower() for w in (*TITLE_NAMES, *CITIES)}
    return [w for w in word_list((kind,)) if re.fullmatch(r"[a-z]{3,10}", w) and w not in entities]


class Catalogue:
    """Titles, authors, years and publishers drawn from one seeded generator; every normalised title is
    unique in the catalogue (810 author names: enough for catalogues of ~200k tokens)."""

    PATTERNS: tuple[str, ...] = (
        "{A} {N}",
        "The {A} {N}",
        "{N} of the {A} {N}",
        "The {N} of {C}",
        "{P}'s {N}",
        "A {N} for {P}",
        "{A} {N}s in {C}",
        "{N} and {N}",
        "Letters from {C}",
        "The {A} {N} of {P}",
        "{N}",
        "{A} {N} {N}",
        "Return to {C}",
        "{P} and the {A} {N}",
    )

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.nouns = _pool("noun")
        self.adjectives = _pool("adjective")
        self.norms: set[str] = set()
        self.publishers = [self._publisher() for _ in range(12)]
        self.authors: set[str] = set()

    def _publisher(self) -> str:
        r = self.rng
        return r.choice((f"{r.choice(self.nouns).title()} House", f"{r.choice(self.adjectives).title()} Press"))

    def author(self) -> tuple[str, int]:
        """A new author name and birth year."""
        for _ in range(10000):
            name = f"{self.rng.choice(AUTHOR_FIRST)} {self.rng.choice(SURNAMES)}"
            if name not in self.authors:
                self.authors.add(name)
                return name, self.rng.randint(1850, 1970)
        raise LongctxError("kitab: ran out of author names")

    def title(self, distinct_from: Sequence[str] = ()) -> str:
        """A new title whose normalised form is unique in the catalogue and neither contains nor is contained
        in any of ``distinct_from`` (normalised titles)."""
        r = self.rng
        for _ in range(1000):
            pattern = r.choice(self.PATTERNS)
            out = re.sub(
                r"\{([ANCP])\}",
                lambda m: {
                    "A": lambda: r.choice(self.adjectives).title(),
                    "N": lambda: r.choice(self.nouns).title(),
                    "C": lambda: r.choice(CITIES),
                    "P": lambda: r.choice(TITLE_NAMES),
                }[m.group(1)](),
                pattern,
            )
            out = re.sub(r"^A (?=[AEIOU])", "An ", out).replace(" a A", " an A")
            norm = process_title(out)
            if norm in self.norms or any(norm in n or n in norm for n in distinct_from):
                continue
            self.norms.add(norm)
            return out
        raise LongctxError("kitab: could not draw a new unique title")

    def books(self, author: str, birth: int, n: int, *, distinct: bool = False) -> list[Book]:
        """``n`` books by ``author``, published between age 20 and 80 (up to 2020); with ``distinct`` no
        normalised title of the author's contains another (each answer maps to one book)."""
        out: list[Book] = []
        norms: list[str] = []
        for _ in range(n):
            year = self.rng.randint(birth + 20, min(birth + 80, 2020))
            title = self.title(norms if distinct else ())
            norms.append(process_title(title))
            out.append(Book(title, year, author, self.rng.choice(self.publishers)))
        return out


def _candidates(rng: random.Random, books: Sequence[Book]) -> Constraint:
    """A random constraint whose parameter comes from the author's own books (so it can match some)."""
    kind = rng.choice(CONSTRAINT_KINDS)
    book = rng.choice(books)
    if kind == "starts-with":
        words = [w.lower() for w in book.title.split()]
        word = words[1] if words[0] in STOPWORDS and len(words) > 1 and rng.random() < 0.5 else words[0]
        return Constraint(kind, letter=word[0])
    if kind == "ends-with":
        return Constraint(kind, letter=book.title.split()[-1][-1].lower())
    if kind == "word-count":
        return Constraint(kind, count=len(book.title.split()))
    if kind in ("human-name", "city-name"):
        return Constraint(kind, negated=rng.random() < 0.5)
    span = rng.randint(5, 20)
    start = rng.randint(book.year - span, book.year)
    return Constraint(kind, years=(start, start + span))


# -- the task --------------------------------------------------------------------------------------------


@attrs.frozen
class KitabConfig:
    """Catalogue size, constraints, the main score, generation budget and length tolerance."""

    max_new_tokens: int = attrs.field(
        default=200, validator=at_least(1), metadata={"help": "tokens to generate (the gold list needs ~25 a book)"}
    )
    tolerance: float = attrs.field(
        default=0.02,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )
    books_per_author: int = attrs.field(
        default=15, validator=in_range(2, 200), metadata={"help": "books by the queried author in the catalogue"}
    )
    n_constraints: int = attrs.field(
        default=1,
        validator=in_range(1, 2),
        metadata={"help": "book constraints besides the author (KITAB: one- and two-book-constraints)"},
    )
    max_gold: int = attrs.field(
        default=5, validator=at_least(1), metadata={"help": "at most this many books satisfy the query"}
    )
    window: float = attrs.field(
        default=1.0,
        validator=in_range(0.01, 1.0),
        metadata={"help": "fraction of the catalogue the author's books spread over, centred on depth (1: all)"},
    )
    score_metric: str = attrs.field(
        default="all_correct",
        validator=one_of("all_correct", "completeness", "satisfied_rate"),
        metadata={"help": "which KITAB metric is the score (all reported as metrics)"},
    )


class Kitab:
    """KITAB over a long catalogue (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = "kitab"
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})

    def __init__(self, config: KitabConfig | None = None, ctx: Any = None) -> None:
        self.config = config or KitabConfig()

    @property
    def depth_sensitive(self) -> bool:
        """Depth only moves the author's books when they spread over less than the whole catalogue."""
        return self.config.window < 1.0

    def query(self, seed: int) -> tuple[Catalogue, str, int, list[Book], list[Constraint], list[Book]]:
        """The generator, author, birth year, the author's books, the constraints and the gold books of
        ``seed`` (the same at every length and depth)."""
        c = self.config
        rng = random.Random(derive_seed(self.name, seed, "query"))
        cat = Catalogue(rng)
        author, birth = cat.author()
        books = cat.books(author, birth, c.books_per_author, distinct=True)
        for _ in range(2000):
            constraints = [_candidates(rng, books) for _ in range(c.n_constraints)]
            if len({x.kind for x in constraints}) < len(constraints):
                continue
            gold = [b for b in books if all(x.check(b) for x in constraints)]
            if 1 <= len(gold) <= min(c.max_gold, len(books) - 1):
                return cat, author, birth, books, constraints, gold
        raise LongctxError(f"kitab: no query with 1..{c.max_gold} matching books for seed {seed}")

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One query over a catalogue of ``length`` tokens (prompt with BOS + ``max_new_tokens``)."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"kitab: depth must be between 0 and 1, got {depth}")
        c = self.config
        cat, author, birth, books, constraints, gold = self.query(seed)
        rng = random.Random(derive_seed(self.name, seed, "placement"))
        u = sorted(rng.random() for _ in books)
        lo = min(max(depth - c.window / 2, 0.0), 1.0 - c.window)
        fractions = [lo + x * c.window for x in u]
        others = _Others(cat, rng)
        question = QUESTION.format(author=author, birth_year=birth, constraints=criteria_text(constraints))
        own = [b.line() for b in books]

        def build(n: int) -> tuple[str, list[float]]:
            lines, actual = insert_at_depths(others.lines(n), own, fractions)
            body = HEADER + "\n" + "".join(line + "    \n" for line in lines) + question
            return render_prompt(tokenizer, body, ANSWER_PREFIX), actual

        budget = c.max_new_tokens
        try:
            n, text, tokens = fit_length(
                lambda n: build(n)[0], tokenizer, length, reserve=budget, tolerance=c.tolerance
            )
        except InputError:
            bare = count_prompt_tokens(tokenizer, build(0)[0]) + budget
            raise InputError(
                f"kitab: a length of {length} tokens is too short; the author's {len(books)} books and the "
                f"question plus {budget} generated tokens already need {bare}"
            ) from None
        _, actual = build(n)
        answer = "\n".join(f"{i + 1}. Reason: {GOLD_REASON}. Title: {b.title}" for i, b in enumerate(gold))
        yield Case(
            task=self.name,
            prompt=text,
            answer=answer,
            references=[b.title for b in gold],
            target_tokens=length,
            actual_tokens=tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=budget,
            query=question,
            meta={
                "author": author,
                "birth_year": birth,
                "books": [[b.title, b.year, b.publisher] for b in books],
                "constraints": [attrs.asdict(x) | {"text": x.text()} for x in constraints],
                "gold": [b.title for b in gold],
                "book_depths": actual,
                "other_books": n,
                "constrainedness": 1 - len(gold) / len(books),
            },
        )

    @staticmethod
    def _restore(case: Case) -> tuple[list[Book], list[Constraint]]:
        m = case.meta
        books = [Book(t, y, m["author"], p) for t, y, p in m["books"]]
        constraints = [
            Constraint(x["kind"], x["letter"], x["count"], x["negated"], tuple(x["years"])) for x in m["constraints"]
        ]
        return books, constraints

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """KITAB's five per-query metrics."""
        books, constraints = self._restore(case)
        return kitab_metrics(prediction, books, constraints, case.meta["gold"])

    def score(self, prediction: str, case: Case) -> float:
        """The configured KITAB metric (default ``all_correct``)."""
        return self.metrics(prediction, case)[self.config.score_metric]


class _Others:
    """The other authors' books, appended in seeded batches (three authors' books shuffled together), so the
    first ``n`` lines are the same whatever was asked before."""

    def __init__(self, cat: Catalogue, rng: random.Random) -> None:
        self.cat = cat
        self.rng = rng
        self.out: list[str] = []

    def lines(self, n: int) -> list[str]:
        while len(self.out) < n:
            batch: list[str] = []
            for _ in range(3):
                author, birth = self.cat.author()
                batch += [b.line() for b in self.cat.books(author, birth, self.rng.randint(5, 20))]
            self.rng.shuffle(batch)
            self.out += batch
        return self.out[:n]


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance kit's contract for this task (imported only when asked)."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.plugins.kitab.contract import CONTRACTS

        return CONTRACTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    register(
        "kitab",
        config=KitabConfig,
        build=Kitab,
        summary="KITAB: list an author's books meeting lexical/name/year constraints from a long catalogue",
        paper="Abdin et al. 2023 (KITAB), arXiv:2310.15511",
    )
