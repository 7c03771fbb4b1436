"""KITAB over a long catalogue: the constraint verifiers by hand, the gold set re-derived from the prompt
alone, the template, placement and depth, length fitting, determinism, KITAB's parsing and metrics by hand,
registration, and one tiny-llama run."""

from __future__ import annotations

import re

import pytest

from longctx.errors import InputError, ParameterError
from longctx.evaluate import count_prompt_tokens
from longctx.plugins.kitab import (
    CITIES,
    HEADER,
    TITLE_NAMES,
    Book,
    Constraint,
    Kitab,
    KitabConfig,
    kitab_metrics,
    parse_titles,
    process_title,
)

LINE = re.compile(r"^(.*) \((\d{4})\) by (.+?), (.+)$")


def one_case(task, tok, length, depth=0.5, seed=0):
    cases = list(task.cases(tok, length=length, depth=depth, seed=seed))
    assert len(cases) == 1
    return cases[0]


class WordTokenizer:
    """A second, cheap tokenizer: one token per word or punctuation mark, plus BOS."""

    def encode(self, text):
        return [0, *range(len(re.findall(r"\w+|[^\w\s]", text)))]


def catalogue(prompt: str) -> list[tuple[str, int, str]]:
    body = prompt.split(HEADER + "\n", 1)[1].split("Find all books in this list by ", 1)[0]
    lines = body.split("    \n")
    assert lines[-1] == ""
    out = []
    for line in lines[:-1]:
        m = LINE.match(line)
        assert m, line
        out.append((m.group(1), int(m.group(2)), m.group(3)))
    return out


def satisfies(criterion: str, title: str, year: int) -> bool:
    """An independent reading of a KITAB criterion."""
    words = title.split()
    bare = [w.removesuffix("'s") for w in words]
    if m := re.fullmatch(r"Book title starts with the letter (\w)\.", criterion):
        first = words[1] if words[0].lower() in {"the", "a", "an", "of", "in", "and", "for"} else None
        return words[0].lower().startswith(m.group(1)) or bool(first and first.lower().startswith(m.group(1)))
    if m := re.fullmatch(r"Book title ends with the letter (\w)\.", criterion):
        return words[-1].lower().endswith(m.group(1))
    if m := re.fullmatch(r"Book title contains (\d+) words\.", criterion):
        return len(words) == int(m.group(1))
    if criterion == "Book title contains a human name.":
        return any(w in TITLE_NAMES for w in bare)
    if criterion == "Book title doesn't contain a human name.":
        return not any(w in TITLE_NAMES for w in bare)
    if criterion == "Book title contains a city name.":
        return any(w in CITIES for w in bare)
    if criterion == "Book title doesn't contain a city name.":
        return not any(w in CITIES for w in bare)
    if m := re.fullmatch(r"Book was first published between (\d+) and (\d+)\.", criterion):
        return int(m.group(1)) <= year <= int(m.group(2))
    raise AssertionError(criterion)


# -- verifiers, normalisation, parsing by hand ------------------------------------------------------------


def book(title, year=1960):
    return Book(title, year, "Agnes Ashdown", "Vintage House")


def test_constraint_verifiers_by_hand():
    starts = Constraint("starts-with", letter="s")
    assert starts.check(book("Silver Harbor")) and starts.check(book("The Silver Harbor"))
    assert not starts.check(book("Harbor of Silver"))
    assert Constraint("starts-with", letter="t").check(book("The Silver Harbor"))  # the stop word itself
    ends = Constraint("ends-with", letter="r")
    assert ends.check(book("Silver Harbor")) and not ends.check(book("Harbors of Lima"))
    three = Constraint("word-count", count=3)
    assert three.check(book("The Silver Harbor")) and not three.check(book("Silver Harbor"))
    name = Constraint("human-name")
    assert name.check(book("Anna's Lantern")) and name.check(book("A Lantern for Oscar"))
    assert not name.check(book("Lantern of Lima")) and not name.check(book("Annabel"))
    assert Constraint("human-name", negated=True).check(book("Lantern of Lima"))
    city = Constraint("city-name")
    assert city.check(book("Letters from Paris")) and not city.check(book("Parisian Letters"))
    assert not Constraint("city-name", negated=True).check(book("Return to Oslo"))
    years = Constraint("publishing-year", years=(1950, 1960))
    assert years.check(book("X", 1950)) and years.check(book("X", 1960)) and not years.check(book("X", 1961))
    assert years.text() == "Book was first published between 1950 and 1960."
    assert Constraint("human-name", negated=True).text() == "Book title doesn't contain a human name."


def test_process_title_and_parse_titles_by_hand():
    assert process_title("The Silver & Gold Harbor!") == "silver and gold harbor"
    assert process_title("A Lantern for Oscar") == "lantern for oscar"
    assert process_title("Anna's Lantern") == "annas lantern"
    text = "Thinking...\nOutput:\n1. Reason: fits. Title: Silver Harbor (1960)\n2. Reason: ok. Title: Return to Lima"
    assert parse_titles(text) == ["Silver Harbor", "Return to Lima"]
    assert parse_titles("1. Reason: r. Title: Alpha\n2. Title: Beta (1999)") == ["Alpha", "Beta"]
    assert parse_titles("All Books: Alpha, Beta") == []
    # only what follows the last Output: counts
    assert parse_titles("Output:\nTitle: Old\nOutput:\nTitle: New") == ["New"]


def test_kitab_metrics_by_hand():
    books = [book("Silver Harbor", 1955), book("Return to Lima", 1970), book("The Lantern", 1958)]
    cons = [Constraint("publishing-year", years=(1950, 1960))]
    gold = ["Silver Harbor", "The Lantern"]
    perfect = kitab_metrics("Title: Silver Harbor\nTitle: The Lantern", books, cons, gold)
    assert perfect == {
        "satisfied_rate": 1.0,
        "unsatisfied_rate": 0.0,
        "not_from_author_rate": 0.0,
        "completeness": 1.0,
        "all_correct": 1.0,
    }
    # one right (mapped by containment: "lantern" in "lantern a novel"), one unsatisfied, one hallucinated
    response = "Title: The Lantern, a novel\nTitle: Return to Lima (1970)\nTitle: Moon Over Quito"
    m = kitab_metrics(response, books, cons, gold)
    assert m == pytest.approx(
        {
            "satisfied_rate": 1 / 3,
            "unsatisfied_rate": 1 / 3,
            "not_from_author_rate": 1 / 3,
            "completeness": 0.5,
            "all_correct": 0.0,
        }
    )
    # fuzzy matching (ratio >= 80) and duplicates of one book count once
    m = kitab_metrics("Title: Silver Harber\nTitle: Silver Harbor", books, cons, gold)
    assert m["satisfied_rate"] == 1.0 and m["completeness"] == 0.5 and m["all_correct"] == 0.0
    empty = kitab_metrics("I could not find it.", books, cons, gold)
    assert empty["completeness"] == 0.0 and empty["all_correct"] == 0.0 and empty["satisfied_rate"] == 0.0


# -- cases ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_constraints", [1, 2])
def test_gold_set_rederived_from_the_prompt(byte_tok, n_constraints):
    task = Kitab(KitabConfig(n_constraints=n_constraints))
    kinds = set()
    for seed in range(8):
        case = one_case(task, byte_tok, 8192, seed=seed)
        author = case.meta["author"]
        criteria = re.findall(r"Criterion \d: (.*?\.)(?= Criterion| Remember)", case.prompt)
        assert len(criteria) == n_constraints
        rows = catalogue(case.prompt)
        own = [(t, y) for t, y, a in rows if a == author]
        assert len(own) == 15
        gold = [t for t, y in own if all(satisfies(c, t, y) for c in criteria)]
        assert gold == case.meta["gold"] == list(case.references)
        assert 1 <= len(gold) <= 5 and len(gold) < len(own)
        assert task.score(case.answer, case) == 1.0
        assert all(g in case.prompt for g in case.references)
        norms = [process_title(t) for t, *_ in rows]
        assert len(norms) == len(set(norms))  # every title unique in the catalogue
        kinds |= {c["kind"] for c in case.meta["constraints"]}
    assert len(kinds) >= 3


def test_prompt_template_is_kitabs(byte_tok):
    case = one_case(Kitab(), byte_tok, 8192, seed=1)
    assert case.prompt.startswith(HEADER + "\n")
    author, born = case.meta["author"], case.meta["birth_year"]
    assert f"Find all books in this list by {author} (born in {born}) that satisfy all the following criteria. " in (
        case.prompt
    )
    assert "Criteria: Criterion 1: " in case.prompt
    assert case.prompt.endswith(
        "Always finish your response with the following format. Do not add any additional text or comments after "
        "the output list.    \nOutput:    \n1. Reason: <reason>. Title: <title>\n2. Reason: <reason>. Title: "
        "<title>    \n...     \nN. Reason: <reason>. Title: <title>\nOutput:\n"
    )
    assert case.answer.startswith("1. Reason: ") and parse_titles(case.answer) == case.meta["gold"]


def test_window_places_the_authors_books(byte_tok):
    task = Kitab(KitabConfig(window=0.2))
    assert task.depth_sensitive and not Kitab().depth_sensitive
    for depth, (lo, hi) in ((0.0, (0.0, 0.2)), (0.5, (0.4, 0.6)), (1.0, (0.8, 1.0))):
        case = one_case(task, byte_tok, 16384, depth=depth, seed=2)
        assert all(lo - 0.03 <= d <= hi + 0.03 for d in case.meta["book_depths"]), (depth, case.meta["book_depths"])
        rows = catalogue(case.prompt)
        where = [i / len(rows) for i, (_, _, a) in enumerate(rows) if a == case.meta["author"]]
        assert all(lo - 0.05 <= w <= hi + 0.05 for w in where)
    spread = one_case(Kitab(), byte_tok, 16384, seed=2).meta["book_depths"]
    assert min(spread) < 0.2 and max(spread) > 0.8


@pytest.mark.parametrize("length", [4096, 8192, 16384])
def test_length_within_tolerance_in_two_tokenizers(byte_tok, length):
    for tok in (byte_tok, WordTokenizer()):
        case = one_case(Kitab(), tok, length, seed=3)
        measured = count_prompt_tokens(tok, case.prompt) + case.max_new_tokens
        assert case.actual_tokens == measured
        assert length * 0.98 <= measured <= length


def test_deterministic_and_paired_across_lengths(byte_tok):
    a = one_case(Kitab(), byte_tok, 8192, seed=4)
    assert a == one_case(Kitab(), byte_tok, 8192, seed=4)
    b = one_case(Kitab(), byte_tok, 16384, seed=4)
    assert (b.meta["author"], b.meta["gold"], b.meta["constraints"]) == (
        a.meta["author"],
        a.meta["gold"],
        a.meta["constraints"],
    )
    others_a = [r for r in catalogue(a.prompt) if r[2] != a.meta["author"]]
    others_b = [r for r in catalogue(b.prompt) if r[2] != b.meta["author"]]
    assert others_b[: len(others_a)] == others_a  # a longer catalogue extends a shorter one
    assert one_case(Kitab(), byte_tok, 8192, seed=5).meta["author"] != a.meta["author"] or (
        one_case(Kitab(), byte_tok, 8192, seed=5).meta["gold"] != a.meta["gold"]
    )


def test_score_metric_and_errors(byte_tok):
    case = one_case(Kitab(KitabConfig(score_metric="completeness")), byte_tok, 8192, seed=6)
    task = Kitab(KitabConfig(score_metric="completeness"))
    first = case.answer.split("\n")[0]
    assert task.score(first, case) == pytest.approx(1 / len(case.meta["gold"]))
    assert Kitab().score(first, case) == (1.0 if len(case.meta["gold"]) == 1 else 0.0)
    assert Kitab().score("", case) == 0.0 and Kitab().score("I could not find it.", case) == 0.0
    with pytest.raises(InputError, match="kitab: a length of 1000 tokens is too short"):
        one_case(Kitab(), byte_tok, 1000)
    from longctx.params import make_config

    with pytest.raises(ParameterError):
        make_config(KitabConfig, {"score_metric": "recall"}, technique="kitab")
    with pytest.raises(ParameterError):
        make_config(KitabConfig, {"n_constraints": "3"}, technique="kitab")


# -- registration and a run ------------------------------------------------------------------------------


def test_registered_with_tags():
    from longctx.evaluate import load_tasks
    from longctx.hooks.evaluation import EvalTask
    from longctx.registry import get_registry

    reg = get_registry()
    tech = reg.get("evaluation", "kitab")
    assert "2310.15511" in tech.paper and tech.plugin == "kitab"
    task = tech.build(KitabConfig(), None)
    assert isinstance(task, EvalTask)
    assert dict(task.tags) == {"diffusion": "high", "scope": "high"}
    assert load_tasks(["kitab:n_constraints=2"], reg)["kitab:n_constraints=2"].config.n_constraints == 2


def test_tiny_llama_run_eval(tiny, tmp_path):
    from longctx.evaluate import run_eval
    from longctx.runtime import compose

    task = Kitab(KitabConfig(books_per_author=6, max_gold=2, max_new_tokens=12))
    model = tiny("llama", max_position_embeddings=2048)
    with compose(model, None) as pipe:
        rows = run_eval({"default": pipe}, {"kitab": task}, lengths=[2048], out_dir=tmp_path)
    (row,) = rows
    assert row["error"] is None and row["score"] in (0.0, 1.0)
    assert set(row["metrics"]) == {
        "satisfied_rate",
        "unsatisfied_rate",
        "not_from_author_rate",
        "completeness",
        "all_correct",
    }
    assert row["prompt_tokens"] + 12 == row["actual_tokens"] <= 2048
