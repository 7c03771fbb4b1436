"""``holobench-lite``: database operations over tables verbalised as sentences, in the style of HoloBench.

Maekawa, Iso & Bhutani 2025, "Holistic Reasoning with Long-Context LMs: A Benchmark for Database
Operations on Massive Textual Data", ICLR 2025, arXiv:2410.11996 (code: ``megagonlabs/holobench``:
``load_context.py``, ``prompts/experiment_prompt.txt``, ``run_eval.py``).

HoloBench turns text-to-SQL databases into long-context reading tasks. Every table row is *verbalised*
as one sentence; the rows of the tables a SQL query reads (the **main** tables) are the relevant
information, the rows of the database's other tables are **auxiliary** text; the query is asked in
natural language and its gold answer is the SQL query run over exactly the main rows that made it into
the context. Four knobs are controlled separately:

* **context length** ``|c|`` — here the case ``length`` (prompt with BOS plus ``max_new_tokens``);
* **information amount** — the tokens of relevant rows (``info_amount``; HoloBench's constant-amount
  setting is 2k), or **information density** ``d``, their fraction of the context (``info_density``;
  its constant-density setting is 0.5). ``load_context`` fills main rows up to the amount, then auxiliary
  rows up to the rest;
* **information position** — how main rows are merged with auxiliary rows (``merge_contexts``):
  ``uniform`` (auxiliary rows spread evenly among the main rows), ``begin`` (main rows first), ``end``
  (main rows last), ``middle`` (main rows in the middle), ``bimodal`` (half the main rows at each end);
  here also ``random`` (a seeded shuffle) and ``depth`` (the main block starts at ``depth`` of the
  auxiliary rows, for depth sweeps);
* **query type** — selection, aggregation (count, sum, average), max/min and grouping.

This module generates the databases instead of loading Spider's: three seeded tables — ``products``
(category, price, stock, rating), ``employees`` (department, salary, age, city) and ``cities`` (country,
population, area, founding year) — one verbalisation template each. One table is the main table; the
other two supply the auxiliary rows, round-robin as ``load_context`` walks the tables. For one
(length, seed) the context is built once and one case is yielded per query kind (``queries``), all
sharing it (the runner prefills it once):

=============  ============================================================================
kind           SQL over the main rows included
=============  ============================================================================
selection      ``SELECT name FROM t WHERE num > v`` (``v`` leaves 1–5 rows)
count          ``SELECT COUNT(*) FROM t WHERE cat = c``
sum            ``SELECT SUM(num) FROM t WHERE cat = c``
avg            ``SELECT ROUND(AVG(num), 2) FROM t WHERE cat = c``
max / min      ``SELECT name, num FROM t WHERE num = (SELECT MAX(num) FROM t)`` (ties: every row)
group_count    ``SELECT cat, COUNT(*) FROM t GROUP BY cat``
=============  ============================================================================

Gold answers come from :mod:`sqlite3` (HoloBench: DuckDB). The prompt is HoloBench's
``experiment_prompt.txt`` verbatim (sentences and question in code fences; the model reasons, then gives
``**Answer:**``). The number of relevant rows is the largest whose sentences fit the information amount;
the number of auxiliary rows is fitted by :func:`longctx.evaluate.fit_length` (a unit is a whole row, so
the default ``tolerance`` is 5 %: a row is ~25 Gemma tokens).

**Scoring.** HoloBench asks GPT-4o-mini to extract the final answer and to label each gold row (at most
50) *Exact*, *Partial* or *No Match*; the score is recall-oriented (extra rows are not penalised). Here
both steps are deterministic: the final answer is the text after the last ``Answer:`` (the whole
prediction when there is none), split into items at line breaks, ``;`` and ``,`` (thousands separators
removed first). A gold row is an **exact** match when one item contains all its values — names and
categories case-insensitively as whole words, numbers as any number in the item, equal for integers, and
for averages within 1 % but at most 0.5 (a mean written to the nearest integer still matches; its
neighbour does not) and at least 0.01 — and **partial** when some of its values appear. ``score`` is
the fraction of gold rows matched exactly; ``metrics()`` adds ``partial_credit`` (exact + ½ partial per
row) and, for selections, ``precision`` (gold names among the main-table names the answer mentions).
An empty gold answer is matched by "No answer" / "none".

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402:
**high diffusion** (the relevant rows are spread through the context and mixed with auxiliary rows of
the same style) and **high scope** (aggregates need every relevant row).
"""

from __future__ import annotations

import math
import random
import re
import sqlite3
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, fit_length, render_prompt
from longctx.haystack import word_list
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range, one_of

NAME = "holobench-lite"
PAPER = "Maekawa, Iso & Bhutani 2025 (HoloBench), ICLR 2025, arXiv:2410.11996"

#: HoloBench ``prompts/experiment_prompt.txt``.
TEMPLATE = (
    "You'll be given a set of sentences to read through carefully. Once you've reviewed them, I'll ask you a "
    "question related to the information in those sentences. Your job is to think critically about the "
    "details, analyze the sentences in relation to the question, and then provide your answer. If the "
    "information clearly supports a partial answer, provide that. However, if the evidence is unclear or "
    'insufficient, it is okay to respond with "No answer."\n\n'
    "**Input:**\n- **Sentences:**\n```\n{context}\n```\n\n- **Question:**\n```\n{question}\n```\n\n"
    "**Response:**\n- **Reasoning:**\n"
    "  - [Describe how you thought through the sentences and how they helped you reach your conclusion. If "
    "the evidence is unclear or insufficient to provide a reliable answer, explain why. Your reasoning should "
    "not exceed 10,000 words.]\n"
    "- **Answer:** [Provide an answer only if it is clearly supported by the information in the sentences. "
    'If the evidence is unclear or insufficient, respond with "No answer."]'
)
#: Where the shared context ends in every prompt (the context is everything before it).
QUESTION_MARK = "```\n\n- **Question:**"
POSITIONS = ("uniform", "begin", "middle", "end", "bimodal", "random", "depth")
KINDS = ("selection", "count", "sum", "avg", "max", "min", "group_count")
TABLE_NAMES = ("products", "employees", "cities")
#: HoloBench's judge sees at most this many gold rows (``run_eval.py``: ``k=50``).
MAX_GOLD_ROWS = 50

_ADJ = (
    "Amber Arctic Bold Breezy Bright Brisk Calm Cedar Classic Clever Coastal Cosy Crimson Crystal Dapper Daring "
    "Dusky Eager Electric Emerald Fancy Gentle Golden Grand Handy Happy Humble Indigo Ivory Jolly Keen Lively "
    "Lucky Lunar Mellow Merry Mighty Misty Noble Nimble Olive Polar Proud Quick Quiet Rapid Royal Rustic Sandy "
    "Scarlet Silver Sleek Smart Solar Sturdy Sunny Swift Tidy Urban Velvet Vivid Warm Witty Zesty"
).split()
_ITEMS = (
    "Kettle Lamp Chair Blender Backpack Bottle Clock Desk Drill Fan Grill Heater Helmet Jacket Kite Ladder Mixer "
    "Mug Notebook Oven Pan Pen Pillow Printer Radio Rake Router Scooter Shovel Skillet Speaker Stapler Stool "
    "Tablet Tent Toaster Torch Tripod Umbrella Vase Wallet Watch Whisk Lantern Hammock Puzzle Racket Glove Sled "
    "Easel Globe Camera Compass Blanket Basket Candle Kayak Skates Teapot Cooler"
).split()
_EDITIONS = ("", " Plus", " Pro", " Max", " Mini", " Lite", " Deluxe", " Classic")
_FIRST = (
    "Aaron Abigail Adrian Alice Amara Andre Anita Arjun Beatrice Benjamin Bianca Caleb Carmen Chloe Daniel Daria "
    "Diego Elena Elias Esther Felix Fiona Gabriel Grace Hannah Hugo Ingrid Isaac Ivan Jade Jonas Julia Kai Karen "
    "Laila Leo Lucia Marcus Maya Mila Nadia Noah Olga Omar Paula Pedro Rafael Rosa Samuel Sara Tariq Tessa Ulla "
    "Victor Wanda Yusuf Zara Zoe"
).split()
_LAST = (
    "Adams Alvarez Baker Becker Brooks Chen Costa Cruz Dawson Diaz Evans Fischer Garcia Gomez Hall Hansen Harris "
    "Ito Jensen Kaur Keller Khan Kim Klein Lang Lopez Meyer Moreau Nakamura Nguyen Novak Olsen Ortiz Patel Perez "
    "Quinn Reyes Rossi Russo Sato Schmidt Silva Singh Smith Suzuki Tanaka Torres Varga Vogel Wagner Walsh Weber "
    "Wong Young Zhang"
).split()
_HOMETOWNS = (
    "Ashford Brookvale Clearwater Dunmore Elmstead Foxhollow Greystone Hillcrest Ironbridge Juniper Falls "
    "Kingsport Lakeside"
).split()
_SUFFIXES = ("ton", "ford", "bury", "field", "wick", "dale", "mouth", "stead", "haven", "port")


@attrs.frozen
class TableSpec:
    """A generated table: its columns, how a row is verbalised and how questions name its parts."""

    name: str
    columns: tuple[tuple[str, str], ...]  # (column, sqlite type); the first is ``name``
    sentence: str
    singular: str
    plural: str
    category: str  # the categorical column
    category_values: tuple[str, ...]
    in_category: str  # "in the {v} category"
    numeric: tuple[str, ...]  # columns for selection / max / min / avg
    summable: tuple[str, ...]  # columns for sum
    labels: Any  # column -> the phrase a question uses ("price")

    def verbalise(self, row: Sequence[Any]) -> str:
        """The one-sentence verbalisation of ``row`` (HoloBench: one sentence per row)."""
        return self.sentence.format(**dict(zip((c for c, _ in self.columns), row, strict=True)))


TABLES: dict[str, TableSpec] = {
    "products": TableSpec(
        name="products",
        columns=(
            ("name", "TEXT"),
            ("category", "TEXT"),
            ("price", "INTEGER"),
            ("stock", "INTEGER"),
            ("rating", "INTEGER"),
        ),
        sentence="The {name} is a product in the {category} category, priced at {price} dollars, with {stock} units "
        "in stock and a rating of {rating} out of 5.",
        singular="product",
        plural="products",
        category="category",
        category_values=("Kitchen", "Garden", "Toys", "Office", "Sports", "Electronics", "Books", "Outdoor"),
        in_category="in the {v} category",
        numeric=("price", "stock"),
        summable=("price", "stock"),
        labels=MappingProxyType({"price": "price", "stock": "number of units in stock", "rating": "rating"}),
    ),
    "employees": TableSpec(
        name="employees",
        columns=(("name", "TEXT"), ("department", "TEXT"), ("salary", "INTEGER"), ("age", "INTEGER"), ("city", "TEXT")),
        sentence="{name} works in the {department} department, earns {salary} dollars a year, is {age} years old "
        "and lives in {city}.",
        singular="employee",
        plural="employees",
        category="department",
        category_values=("Sales", "Engineering", "Marketing", "Finance", "Support", "Legal", "Research"),
        in_category="in the {v} department",
        numeric=("salary", "age"),
        summable=("salary",),
        labels=MappingProxyType({"salary": "salary", "age": "age"}),
    ),
    "cities": TableSpec(
        name="cities",
        columns=(
            ("name", "TEXT"),
            ("country", "TEXT"),
            ("population", "INTEGER"),
            ("area", "INTEGER"),
            ("founded", "INTEGER"),
        ),
        sentence="The city of {name} in {country} was founded in {founded}, has a population of {population} and "
        "covers {area} square kilometres.",
        singular="city",
        plural="cities",
        category="country",
        category_values=("Norland", "Estavia", "Sudmark", "Westria", "Caldora", "Veloria"),
        in_category="in {v}",
        numeric=("population", "area", "founded"),
        summable=("population", "area"),
        labels=MappingProxyType({"population": "population", "area": "area", "founded": "founding year"}),
    ),
}


class RowSource:
    """The rows of one generated table, drawn in order from a seeded generator (row ``i`` is the same for
    any number of rows asked for); names are unique within the table."""

    def __init__(self, table: str, seed: int) -> None:
        self.spec = TABLES[table]
        self.rng = random.Random(derive_seed(NAME, seed, "table", table))
        self.rows: list[tuple[Any, ...]] = []
        self.sentences: list[str] = []
        self._names: set[str] = set()

    def _name(self) -> str:
        rng, t = self.rng, self.spec.name
        for attempt in range(10_000):
            if t == "products":
                name = f"{rng.choice(_ADJ)} {rng.choice(_ITEMS)}{_EDITIONS[min(attempt // 50, len(_EDITIONS) - 1)]}"
            elif t == "employees":
                middle = f" {chr(65 + rng.randrange(26))}." if attempt >= 50 else ""
                name = f"{rng.choice(_FIRST)}{middle} {rng.choice(_LAST)}"
            else:
                name = rng.choice(_city_stems()).capitalize() + rng.choice(_SUFFIXES)
            if name not in self._names:
                self._names.add(name)
                return name
        raise InputError(f"{NAME}: the {t} table ran out of distinct names; ask for a shorter length")

    def _row(self) -> tuple[Any, ...]:
        rng, t = self.rng, self.spec.name
        name = self._name()
        cat = rng.choice(self.spec.category_values)
        if t == "products":
            return (name, cat, rng.randint(5, 500), rng.randint(0, 250), rng.randint(1, 5))
        if t == "employees":
            return (name, cat, rng.randrange(30_000, 150_001, 500), rng.randint(21, 65), rng.choice(_HOMETOWNS))
        return (name, cat, rng.randint(5_000, 2_000_000), rng.randint(10, 900), rng.randint(1100, 1950))

    def take(self, n: int) -> list[str]:
        """The sentences of the first ``n`` rows."""
        while len(self.rows) < n:
            row = self._row()
            self.rows.append(row)
            self.sentences.append(self.spec.verbalise(row))
        return self.sentences[:n]


_CITY_STEMS: tuple[str, ...] = ()


def _city_stems() -> tuple[str, ...]:
    global _CITY_STEMS
    if not _CITY_STEMS:
        _CITY_STEMS = tuple(w for w in word_list(("noun",)) if w.isalpha() and w.islower() and 3 <= len(w) <= 7)
    return _CITY_STEMS


def merge(
    main: list[str], aux: list[str], position: str, depth: float, rng: random.Random
) -> tuple[list[str], list[int]]:
    """Merge the main and auxiliary rows by a HoloBench position strategy (plus ``random`` and ``depth``).

    Returns the merged rows and the indices of the main rows in it."""
    m, n = len(main), len(aux)
    tagged_main = [(True, s) for s in main]
    tagged_aux = [(False, s) for s in aux]
    if m == 0 or n == 0:
        merged = tagged_main + tagged_aux
    elif position == "uniform":  # auxiliary row i at index floor(i·(m+n)/n): spread evenly
        slots = {math.floor(i * (m + n) / n) for i in range(n)}
        it_main, it_aux = iter(tagged_main), iter(tagged_aux)
        merged = [next(it_aux) if k in slots else next(it_main) for k in range(m + n)]
    elif position == "begin":
        merged = tagged_main + tagged_aux
    elif position == "end":
        merged = tagged_aux + tagged_main
    elif position == "middle":
        merged = tagged_aux[: n // 2] + tagged_main + tagged_aux[n // 2 :]
    elif position == "bimodal":
        merged = tagged_main[: m // 2] + tagged_aux + tagged_main[m // 2 :]
    elif position == "random":
        merged = tagged_main + tagged_aux
        rng.shuffle(merged)
    elif position == "depth":
        k = round(depth * n)
        merged = tagged_aux[:k] + tagged_main + tagged_aux[k:]
    else:
        raise InputError(f"{NAME}: unknown position {position!r}; choose from {', '.join(POSITIONS)}")
    return [s for _, s in merged], [i for i, (is_main, _) in enumerate(merged) if is_main]


# -- queries -------------------------------------------------------------------------------------------


@attrs.frozen
class Query:
    """One query: its kind, natural-language question and SQL."""

    kind: str
    question: str
    sql: str
    numeric: bool = False  # gold values compared with tolerance (averages)


def make_query(kind: str, spec: TableSpec, rows: Sequence[tuple[Any, ...]], rng: random.Random) -> Query:
    """A query of ``kind`` over the included ``rows`` of ``spec`` (values chosen so the answer is non-empty)."""
    t, cat = spec.name, spec.category
    cols = [c for c, _ in spec.columns]
    present = sorted({r[cols.index(cat)] for r in rows})
    if kind == "selection":
        col = rng.choice(spec.numeric)
        values = sorted({r[cols.index(col)] for r in rows}, reverse=True)
        # thresholds leaving 1-5 rows strictly above
        ok = [v for v in values if 1 <= sum(r[cols.index(col)] > v for r in rows) <= 5]
        v = rng.choice(ok) if ok else min(values) - 1
        q = f"List the names of all {spec.plural} whose {spec.labels[col]} is greater than {v}."
        return Query(kind, q, f"SELECT name FROM {t} WHERE {col} > {v} ORDER BY name")
    if kind in ("count", "sum", "avg"):
        c = rng.choice(present)
        where = f"{spec.in_category.format(v=c)}"
        cond = f"{cat} = '{c}'"
        if kind == "count":
            return Query(kind, f"How many {spec.plural} are there {where}?", f"SELECT COUNT(*) FROM {t} WHERE {cond}")
        col = rng.choice(spec.summable if kind == "sum" else spec.numeric)
        if kind == "sum":
            q = f"What is the total {spec.labels[col]} of all {spec.plural} {where}?"
            return Query(kind, q, f"SELECT SUM({col}) FROM {t} WHERE {cond}")
        q = f"What is the average {spec.labels[col]} of the {spec.plural} {where}?"
        return Query(kind, q, f"SELECT ROUND(AVG({col}), 2) FROM {t} WHERE {cond}", numeric=True)
    if kind in ("max", "min"):
        col = rng.choice(spec.numeric)
        word = "highest" if kind == "max" else "lowest"
        label = spec.labels[col]
        q = f"Which {spec.singular} has the {word} {label}, and what is that {label}?"
        agg = kind.upper()
        return Query(kind, q, f"SELECT name, {col} FROM {t} WHERE {col} = (SELECT {agg}({col}) FROM {t}) ORDER BY name")
    if kind == "group_count":
        q = f"How many {spec.plural} are there in each {cat}?"
        return Query(kind, q, f"SELECT {cat}, COUNT(*) FROM {t} GROUP BY {cat} ORDER BY {cat}")
    raise InputError(f"{NAME}: unknown query kind {kind!r}; choose from {', '.join(KINDS)}")


def run_sql(spec: TableSpec, rows: Sequence[tuple[Any, ...]], sql: str) -> list[list[Any]]:
    """Run ``sql`` with :mod:`sqlite3` over a fresh in-memory table holding ``rows``."""
    with sqlite3.connect(":memory:") as con:
        cols = ", ".join(f"{c} {ty}" for c, ty in spec.columns)
        con.execute(f"CREATE TABLE {spec.name} ({cols})")
        con.executemany(f"INSERT INTO {spec.name} VALUES ({', '.join('?' * len(spec.columns))})", rows)
        return [list(r) for r in con.execute(sql).fetchall()]


def format_value(v: Any) -> str:
    """A gold value as the answer text writes it (integers plainly, averages without trailing zeros)."""
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.2f}".rstrip("0").rstrip(".")
    return str(v)


def format_gold(rows: Sequence[Sequence[Any]]) -> str:
    """The gold answer as text that matches every gold row exactly: ``"a, b"`` for one-column rows,
    ``"name: value; …"`` for two-column rows, ``"No answer."`` for none."""
    if not rows:
        return "No answer."
    if all(len(r) == 1 for r in rows):
        return ", ".join(format_value(r[0]) for r in rows)
    return "; ".join(": ".join(format_value(v) for v in r) for r in rows)


# -- scoring -------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_ANSWER = re.compile(r"answer\s*:", re.IGNORECASE)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def final_answer(prediction: str) -> str:
    """The text after the last ``Answer:`` (markdown emphasis removed), or the whole prediction."""
    text = prediction.replace("*", "")
    marks = list(_ANSWER.finditer(text))
    return text[marks[-1].end() :] if marks else text


def answer_items(text: str) -> list[str]:
    """The final answer split into items at line breaks, ``;`` and ``,`` (thousands separators kept whole)."""
    text = _THOUSANDS.sub("", text)
    return [s.strip() for s in re.split(r"[\n;,]", text) if s.strip()]


def _value_in(value: Any, text: str, numeric: bool) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        tol = max(0.01, min(0.5, 0.01 * abs(value))) if numeric else 0.0
        return any(abs(float(x) - float(value)) <= tol + 1e-9 for x in _NUMBER.findall(text))
    return re.search(rf"(?<!\w){re.escape(str(value))}(?!\w)", text, re.IGNORECASE) is not None


def match_rows(prediction: str, gold: Sequence[Sequence[Any]], *, numeric: bool = False) -> list[str]:
    """Label each gold row (at most 50) ``"exact"``, ``"partial"`` or ``"none"`` against ``prediction``."""
    final = final_answer(prediction)
    items = answer_items(final)
    whole = _THOUSANDS.sub("", final)
    labels = []
    for row in list(gold)[:MAX_GOLD_ROWS]:
        if any(all(_value_in(v, item, numeric) for v in row) for item in items):
            labels.append("exact")
        elif any(_value_in(v, whole, numeric) for v in row):
            labels.append("partial")
        else:
            labels.append("none")
    return labels


_NO_ANSWER = re.compile(r"\b(no answer|none|no such|there (are|is) no)\b", re.IGNORECASE)


@attrs.frozen
class HoloBenchConfig:
    """Table, queries, information amount and position, generation budget and length tolerance."""

    table: str = attrs.field(
        default="random",
        validator=one_of("random", *TABLE_NAMES),
        metadata={"help": "the main (queried) table: products, employees, cities, or random per seed"},
    )
    queries: tuple[str, ...] = attrs.field(
        default=KINDS,
        converter=tuple,
        metadata={"help": "query kinds, one case each over the shared context: " + ";".join(KINDS)},
    )
    info_amount: int = attrs.field(
        default=0,
        validator=at_least(0),
        metadata={"help": "tokens of relevant (main-table) rows; 0 = use info_density (HoloBench: 2048)"},
    )
    info_density: float = attrs.field(
        default=0.5,
        validator=in_range(0.0, 1.0),
        metadata={"help": "fraction of the context that is relevant rows, when info_amount is 0 (HoloBench: 0.5)"},
    )
    position: str = attrs.field(
        default="uniform",
        validator=one_of(*POSITIONS),
        metadata={"help": "where the relevant rows go: " + ", ".join(POSITIONS) + " (HoloBench default: uniform)"},
    )
    max_new_tokens: int = attrs.field(
        default=512, validator=at_least(1), metadata={"help": "tokens to generate (reasoning, then the answer)"}
    )
    tolerance: float = attrs.field(
        default=0.05,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction; a unit is a whole row)"},
    )

    @queries.validator
    def _check_queries(self, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
        from longctx.errors import ParameterError

        bad = [k for k in value if k not in KINDS]
        if bad or not value:
            raise ParameterError(f"queries must be a non-empty list of {', '.join(KINDS)}; got {';'.join(value)!r}")


class HoloBenchLite:
    """The HoloBench-lite task (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = NAME
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})

    def __init__(self, config: HoloBenchConfig | None = None, ctx: Any = None) -> None:
        self.config = config or HoloBenchConfig()
        #: only the ``depth`` position uses the depth; the others are built once per length
        self.depth_sensitive = self.config.position == "depth"

    def main_table(self, seed: int) -> str:
        """The queried table for ``seed``."""
        if self.config.table != "random":
            return self.config.table
        return random.Random(derive_seed(self.name, seed, "main")).choice(TABLE_NAMES)

    def prompt(self, context: str, question: str, tokenizer: Any = None) -> str:
        """HoloBench's prompt for ``context`` (sentences joined by newlines) and ``question``."""
        return render_prompt(tokenizer, TEMPLATE.format(context=context, question=question), "")

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case per query kind over one shared context of ``length`` tokens (prompt with BOS +
        ``max_new_tokens``)."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        cfg = self.config
        budget = cfg.max_new_tokens
        table = self.main_table(seed)
        spec = TABLES[table]
        main_src = RowSource(table, seed)
        others = [RowSource(t, seed) for t in TABLE_NAMES if t != table]

        def aux_rows(n: int) -> list[str]:
            per = [src.take((n - i + 1) // 2) for i, src in enumerate(others)]
            return [per[i % 2][i // 2] for i in range(n)]

        # 1. the information amount: the most main rows whose sentences fit it
        overhead = count_prompt_tokens(tokenizer, self.prompt("", "", tokenizer)) + budget
        amount = cfg.info_amount or math.floor(cfg.info_density * max(0, length - overhead))
        if overhead >= length:
            raise InputError(
                f"{self.name}: a length of {length} tokens is too short; the prompt without rows plus {budget} "
                f"generated tokens already needs {overhead}"
            )
        try:
            m = fit_length(lambda k: "\n".join(main_src.take(k)), tokenizer, amount).n
        except InputError:
            m = 0
        if m == 0:
            raise InputError(
                f"{self.name}: an information amount of {amount} tokens holds no row; raise info_amount, "
                f"info_density or the length (one row is about {count_prompt_tokens(tokenizer, main_src.take(1)[0])} "
                "tokens)"
            )
        main = main_src.take(m)
        rows = main_src.rows[:m]
        queries = [
            make_query(k, spec, rows, random.Random(derive_seed(self.name, seed, "query", k, m))) for k in cfg.queries
        ]
        longest = max(queries, key=lambda q: count_prompt_tokens(tokenizer, q.question)).question
        merge_rng_seed = derive_seed(self.name, seed, "merge")

        def context(n: int) -> tuple[str, list[int]]:
            merged, idx = merge(main, aux_rows(n), cfg.position, depth, random.Random(merge_rng_seed))
            return "\n".join(merged), idx

        # 2. the auxiliary rows: as many as fit the length
        try:
            n = fit_length(
                lambda n: self.prompt(context(n)[0], longest, tokenizer),
                tokenizer,
                length,
                reserve=budget,
                tolerance=cfg.tolerance,
            ).n
        except InputError:
            need = count_prompt_tokens(tokenizer, self.prompt(context(0)[0], longest, tokenizer)) + budget
            raise InputError(
                f"{self.name}: a length of {length} tokens is too short for an information amount of {amount} "
                f"tokens ({m} rows); the prompt with them alone needs {need}; lower info_amount or raise the length"
            ) from None
        text, idx = context(n)
        info_tokens = count_prompt_tokens(tokenizer, "\n".join(main))
        for q in queries:
            prompt = self.prompt(text, q.question, tokenizer)
            gold = run_sql(spec, rows, q.sql)
            meta: dict[str, Any] = {
                "table": table,
                "kind": q.kind,
                "question": q.question,
                "sql": q.sql,
                "gold_rows": gold,
                "numeric": q.numeric,
                "info_rows": m,
                "aux_rows": n,
                "info_tokens": info_tokens,
                "info_amount": amount,
                "position": cfg.position,
                "main_first": idx[0] if idx else None,
                "main_last": idx[-1] if idx else None,
            }
            if q.kind == "selection":
                meta["main_names"] = [r[0] for r in rows]
            answer = format_gold(gold)
            yield Case(
                task=self.name,
                prompt=prompt,
                answer=answer,
                references=(answer,),
                target_tokens=length,
                actual_tokens=count_prompt_tokens(tokenizer, prompt) + budget,
                depth=depth,
                seed=seed,
                max_new_tokens=budget,
                query=prompt[prompt.index(QUESTION_MARK) :],
                meta=meta,
                context=prompt[: prompt.index(QUESTION_MARK)],
            )

    # -- scoring ----------------------------------------------------------------------------------------

    def _labels(self, prediction: str, case: Case) -> list[str]:
        return match_rows(prediction, case.meta["gold_rows"], numeric=bool(case.meta.get("numeric")))

    def score(self, prediction: str, case: Case) -> float:
        """The fraction of gold rows (at most 50) the final answer matches exactly; for an empty gold answer,
        1.0 when the answer says there is none."""
        gold = case.meta["gold_rows"]
        if not gold:
            return 1.0 if _NO_ANSWER.search(final_answer(prediction)) else 0.0
        labels = self._labels(prediction, case)
        return labels.count("exact") / len(labels)

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """``exact`` (the score), ``partial_credit`` (exact + ½ partial per gold row) and, for selections,
        ``precision`` (gold names among the main-table names the final answer mentions)."""
        gold = case.meta["gold_rows"]
        if not gold:
            s = self.score(prediction, case)
            return {"exact": s, "partial_credit": s}
        labels = self._labels(prediction, case)
        out = {
            "exact": labels.count("exact") / len(labels),
            "partial_credit": (labels.count("exact") + 0.5 * labels.count("partial")) / len(labels),
        }
        if case.meta.get("kind") == "selection":
            final = final_answer(prediction)
            named = [x for x in case.meta.get("main_names", ()) if _value_in(x, final, False)]
            golds = {r[0] for r in gold}
            out["precision"] = sum(x in golds for x in named) / len(named) if named else 0.0
        return out


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance contract of ``holobench-lite`` (resolved lazily). Its answers
    are computed by SQL, not copied from the context; lengths are 4k/8k bytes so that a whole row (~100
    bytes) fits the 5 % tolerance with the byte tokenizer."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.contrib.conformance.contracts import EvaluationContract

        class HoloBenchContract(EvaluationContract):
            technique = NAME
            lengths = (4096, 8192)
            gold_in_context = False
            params = {"max_new_tokens": 128}  # noqa: RUF012 - a contract declaration

        return {NAME: HoloBenchContract}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    register(
        NAME,
        config=HoloBenchConfig,
        build=HoloBenchLite,
        summary="HoloBench-style holistic reasoning: SQL queries over generated tables verbalised as sentences "
        "among distractor rows, deterministic row matching",
        paper=PAPER,
    )
