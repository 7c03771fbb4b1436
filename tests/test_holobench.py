"""HoloBench-lite: tables verbalised one sentence per row, relevant rows among auxiliary rows, information
amount and position, gold answers recomputed in plain Python from the rows read back out of the prompt
(not with SQL), the deterministic row-matching scorer by hand, and a tiny-llama run."""

from __future__ import annotations

import itertools
import re
import statistics
import time

import pytest

from longctx.errors import InputError, ParameterError
from longctx.evaluate import Case, count_prompt_tokens, run_eval
from longctx.hooks.evaluation import EvalTask
from longctx.plugins.holobench import (
    KINDS,
    QUESTION_MARK,
    TABLES,
    TEMPLATE,
    HoloBenchConfig,
    HoloBenchLite,
    final_answer,
    match_rows,
)
from longctx.runtime import compose

#: The verbalisation of each table, read back (independent of the generator's format strings).
ROW_RE = {
    "products": re.compile(
        r"^The (?P<name>.+) is a product in the (?P<cat>\w+) category, priced at (?P<price>\d+) dollars, with "
        r"(?P<stock>\d+) units in stock and a rating of (?P<rating>\d) out of 5\.$"
    ),
    "employees": re.compile(
        r"^(?P<name>.+) works in the (?P<cat>\w+) department, earns (?P<salary>\d+) dollars a year, is "
        r"(?P<age>\d+) years old and lives in (?P<city>[\w ]+)\.$"
    ),
    "cities": re.compile(
        r"^The city of (?P<name>\w+) in (?P<cat>\w+) was founded in (?P<founded>\d+), has a population of "
        r"(?P<population>\d+) and covers (?P<area>\d+) square kilometres\.$"
    ),
}
LABEL_TO_COL = {
    "price": "price",
    "number of units in stock": "stock",
    "rating": "rating",
    "salary": "salary",
    "age": "age",
    "population": "population",
    "area": "area",
    "founding year": "founded",
}


class WordTokenizer:
    """A second, coarser tokenizer: one token per word or punctuation mark, plus BOS."""

    def encode(self, text: str) -> list[int]:
        return [0] + [1] * len(re.findall(r"\w+|[^\w\s]", text))


def all_cases(task, tok, length, depth=0.5, seed=0) -> list[Case]:
    return list(task.cases(tok, length=length, depth=depth, seed=seed))


def context_lines(case: Case) -> list[str]:
    return case.prompt.split("**Sentences:**\n```\n", 1)[1].split("\n" + QUESTION_MARK, 1)[0].split("\n")


def read_rows(case: Case) -> tuple[list[dict], list[int], int]:
    """The main-table rows in the prompt (as dicts with int values), their line indices, and the number of
    auxiliary lines (which must each be a row of another table)."""
    table = case.meta["table"]
    rows, idx, aux = [], [], 0
    for i, line in enumerate(context_lines(case)):
        m = ROW_RE[table].match(line)
        if m:
            rows.append({k: int(v) if v.isdigit() else v for k, v in m.groupdict().items()})
            idx.append(i)
        else:
            assert any(ROW_RE[t].match(line) for t in TABLES if t != table), line
            aux += 1
    return rows, idx, aux


def expected_gold(case: Case, rows: list[dict]) -> list[list]:
    """The answer to the case's question, computed from the rows in plain Python."""
    q = case.meta["question"]
    spec = TABLES[case.meta["table"]]
    in_cat = re.escape(spec.in_category).replace(r"\{v\}", r"(?P<v>\w+)")
    kind = case.meta["kind"]
    if kind == "selection":
        m = re.match(rf"List the names of all {spec.plural} whose (?P<label>.+) is greater than (?P<v>-?\d+)\.$", q)
        col, v = LABEL_TO_COL[m["label"]], int(m["v"])
        return sorted([r["name"]] for r in rows if r[col] > v)
    if kind == "count":
        m = re.match(rf"How many {spec.plural} are there {in_cat}\?$", q)
        return [[sum(r["cat"] == m["v"] for r in rows)]]
    if kind in ("sum", "avg"):
        word = "total" if kind == "sum" else "average"
        pre = "all " if kind == "sum" else "the "
        m = re.match(rf"What is the {word} (?P<label>.+) of {pre}{spec.plural} {in_cat}\?$", q)
        vals = [r[LABEL_TO_COL[m["label"]]] for r in rows if r["cat"] == m["v"]]
        return [[sum(vals)]] if kind == "sum" else [[round(statistics.mean(vals), 2)]]
    if kind in ("max", "min"):
        m = re.match(rf"Which {spec.singular} has the (highest|lowest) (?P<label>.+), and what is that .+\?$", q)
        col = LABEL_TO_COL[m["label"]]
        best = (max if kind == "max" else min)(r[col] for r in rows)
        return sorted([r["name"], r[col]] for r in rows if r[col] == best)
    assert kind == "group_count"
    cats = sorted({r["cat"] for r in rows})
    return [[c, sum(r["cat"] == c for r in rows)] for c in cats]


# -- layout, shared context, length ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_gold_answers_recomputed_from_the_prompt(byte_tok, seed):
    cases = all_cases(HoloBenchLite(), byte_tok, 4096, seed=seed)
    assert [c.meta["kind"] for c in cases] == list(KINDS)
    for case in cases:
        rows, _, aux = read_rows(case)
        assert len(rows) == case.meta["info_rows"] and aux == case.meta["aux_rows"] > 0
        want = expected_gold(case, rows)
        got = case.meta["gold_rows"]
        if case.meta["kind"] == "avg":
            assert got[0][0] == pytest.approx(want[0][0], abs=0.005)
        else:
            assert got == want, case.meta["sql"]
        assert got, "every query has a non-empty answer"
        if case.meta["kind"] == "selection":
            assert 1 <= len(got) <= 5
        assert HoloBenchLite().score(case.answer, case) == 1.0


@pytest.mark.parametrize("table", ["products", "employees", "cities"])
def test_every_table(byte_tok, table):
    for case in all_cases(HoloBenchLite(HoloBenchConfig(table=table)), byte_tok, 4096, seed=1):
        rows, _, _ = read_rows(case)
        assert case.meta["table"] == table
        want = expected_gold(case, rows)
        if case.meta["kind"] != "avg":
            assert case.meta["gold_rows"] == want


def test_prompt_template_and_shared_context(byte_tok):
    cases = all_cases(HoloBenchLite(), byte_tok, 4096, seed=2)
    ctx = cases[0].context
    assert ctx.endswith("\n") and all(c.context == ctx and c.prompt.startswith(ctx) for c in cases)
    for c in cases:
        lines = "\n".join(context_lines(c))
        assert c.prompt == TEMPLATE.format(context=lines, question=c.meta["question"])
        assert c.prompt.endswith(c.query) and c.query.startswith(QUESTION_MARK)
        assert c.max_new_tokens == 512
    assert cases[0].prompt.startswith("You'll be given a set of sentences to read through carefully.")


@pytest.mark.parametrize("length", [4096, 8192])
def test_length_within_tolerance(byte_tok, length):
    for c in all_cases(HoloBenchLite(), byte_tok, length, seed=3):
        measured = count_prompt_tokens(byte_tok, c.prompt) + c.max_new_tokens
        assert c.actual_tokens == measured and c.target_tokens == length
        assert length * 0.95 <= measured <= length


def test_second_tokenizer_length():
    tok = WordTokenizer()
    for length in (1500, 4000):
        for c in all_cases(HoloBenchLite(HoloBenchConfig(max_new_tokens=64)), tok, length, seed=4):
            measured = count_prompt_tokens(tok, c.prompt) + c.max_new_tokens
            assert c.actual_tokens == measured and length * 0.95 <= measured <= length


def test_information_amount_is_maximal(byte_tok):
    task = HoloBenchLite(HoloBenchConfig(info_amount=1500, queries=("count",)))
    (case,) = all_cases(task, byte_tok, 8192)
    main = [line for line in context_lines(case) if ROW_RE[case.meta["table"]].match(line)]
    assert count_prompt_tokens(byte_tok, "\n".join(main)) == case.meta["info_tokens"] <= 1500
    # one more main row would not fit: the next row has at least ~90 bytes
    assert case.meta["info_tokens"] > 1500 - 130
    # the same information amount at a longer length: the same relevant rows, more auxiliary rows
    (longer,) = all_cases(task, byte_tok, 16384)
    assert longer.meta["info_rows"] == case.meta["info_rows"] and longer.meta["aux_rows"] > case.meta["aux_rows"]
    assert longer.meta["gold_rows"] == case.meta["gold_rows"]


def test_information_density(byte_tok):
    for density in (0.25, 0.5, 0.75):
        task = HoloBenchLite(HoloBenchConfig(info_density=density, queries=("count",)))
        (case,) = all_cases(task, byte_tok, 8192)
        overhead = count_prompt_tokens(byte_tok, TEMPLATE.format(context="", question="")) + case.max_new_tokens
        share = case.meta["info_tokens"] / (8192 - overhead)
        assert density - 0.03 <= share <= density


# -- positions ---------------------------------------------------------------------------------------------


def positions(byte_tok, position, depth=0.5):
    cfg = HoloBenchConfig(position=position, queries=("count",), table="products")
    (case,) = all_cases(HoloBenchLite(cfg), byte_tok, 8192, depth=depth)
    _, idx, aux = read_rows(case)
    assert idx[0] == case.meta["main_first"] and idx[-1] == case.meta["main_last"]
    return idx, len(idx) + aux


def test_positions(byte_tok):
    idx, total = positions(byte_tok, "begin")
    assert idx == list(range(len(idx)))
    idx, total = positions(byte_tok, "end")
    assert idx == list(range(total - len(idx), total))
    idx, total = positions(byte_tok, "middle")
    assert idx == list(range(idx[0], idx[0] + len(idx)))
    assert abs(idx[0] - (total - idx[-1] - 1)) <= 1
    idx, total = positions(byte_tok, "bimodal")
    half = len(idx) // 2
    assert idx[:half] == list(range(half)) and idx[half:] == list(range(total - (len(idx) - half), total))
    idx, total = positions(byte_tok, "uniform")  # auxiliary rows spread evenly: no long runs of either
    gaps = [b - a for a, b in itertools.pairwise(idx)]
    assert max(gaps) <= 3 and idx[0] <= 2 and total - idx[-1] <= 3
    a, _ = positions(byte_tok, "random")
    b, _ = positions(byte_tok, "random")
    assert a == b and a != list(range(len(a)))


@pytest.mark.parametrize("depth", [0.0, 0.3, 1.0])
def test_depth_position(byte_tok, depth):
    idx, total = positions(byte_tok, "depth", depth)
    aux = total - len(idx)
    assert idx == list(range(round(depth * aux), round(depth * aux) + len(idx)))
    assert HoloBenchLite(HoloBenchConfig(position="depth")).depth_sensitive
    assert not HoloBenchLite().depth_sensitive


def test_deterministic(byte_tok):
    a = all_cases(HoloBenchLite(), byte_tok, 4096, seed=9)
    b = all_cases(HoloBenchLite(), byte_tok, 4096, seed=9)
    assert a == b
    c = all_cases(HoloBenchLite(), byte_tok, 4096, seed=10)
    assert a[0].prompt != c[0].prompt


# -- scoring by hand --------------------------------------------------------------------------------------


def hand_case(gold, kind="selection", numeric=False, names=()) -> Case:
    return Case(
        task="holobench-lite",
        prompt="",
        answer="",
        target_tokens=0,
        actual_tokens=0,
        depth=0.5,
        seed=0,
        max_new_tokens=8,
        meta={"gold_rows": gold, "kind": kind, "numeric": numeric, "main_names": list(names)},
    )


def test_final_answer_extraction():
    pred = "- **Reasoning:**\n  - I looked at the answer: rows.\n- **Answer:** Amber Kettle, Bold Lamp"
    assert final_answer(pred).strip() == "Amber Kettle, Bold Lamp"
    assert final_answer("no marker here") == "no marker here"


def test_row_matching_by_hand():
    gold = [["Amber Kettle", 120], ["Bold Lamp", 80]]
    assert match_rows("Answer: Amber Kettle: 120\nBold Lamp: 80", gold) == ["exact", "exact"]
    # Bold Lamp's value is wrong: partial; an extra row is not penalised (recall-oriented)
    assert match_rows("Answer: Amber Kettle (120); Bold Lamp (81); Cosy Fan (5)", gold) == ["exact", "partial"]
    # values in different items do not make an exact match
    assert match_rows("Answer: Amber Kettle\n80 and 120", gold) == ["partial", "partial"]
    assert match_rows("Answer: No answer.", gold) == ["none", "none"]
    # names match whole words only, case-insensitively
    assert match_rows("Answer: amber kettle 120", [["Amber Kettle", 120]]) == ["exact"]
    assert match_rows("Answer: Amber Kettles 1200", [["Amber Kettle", 120]]) == ["none"]
    # thousands separators are read as one number
    assert match_rows("Answer: 1,234,567", [[1234567]]) == ["exact"]


def test_scores_by_hand():
    task = HoloBenchLite()
    sel = hand_case(
        [["Amber Kettle"], ["Bold Lamp"], ["Cosy Fan"]], names=["Amber Kettle", "Bold Lamp", "Cosy Fan", "Dapper Mug"]
    )
    assert task.score("Answer: Amber Kettle, Bold Lamp, Cosy Fan", sel) == 1.0
    assert task.score("Answer: Amber Kettle and Cosy Fan", sel) == pytest.approx(2 / 3)
    m = task.metrics("Answer: Amber Kettle, Dapper Mug", sel)
    assert m["exact"] == pytest.approx(1 / 3) and m["precision"] == 0.5
    count = hand_case([[7]], kind="count")
    assert task.score("Reasoning: I counted. Answer: 7", count) == 1.0
    assert task.score("Answer: 8", count) == 0.0
    assert task.score("", count) == 0.0 and task.score("I could not find it.", count) == 0.0
    avg = hand_case([[52375.5]], kind="avg", numeric=True)
    assert task.score("Answer: about 52,376 dollars", avg) == 1.0  # the mean to the nearest integer
    assert task.score("Answer: 52,377", avg) == 0.0
    small = hand_case([[3.33]], kind="avg", numeric=True)  # 1 % of 3.33: 0.0333
    assert task.score("Answer: 3.3", small) == 1.0 and task.score("Answer: 3", small) == 0.0
    two = hand_case([["Garden", 5], ["Kitchen", 3]], kind="group_count")
    assert task.score("Answer: Garden: 5; Kitchen: 4", two) == 0.5
    assert task.metrics("Answer: Garden: 5; Kitchen: 4", two)["partial_credit"] == 0.75
    empty = hand_case([], kind="selection")
    assert task.score("Answer: No answer.", empty) == 1.0 and task.score("Answer: Amber Kettle", empty) == 0.0


def test_gold_caps_at_50_rows():
    gold = [[f"Item{i}"] for i in range(60)]
    assert len(match_rows("Answer: Item1", gold)) == 50


# -- errors, registration, speed, model run ------------------------------------------------------------


def test_errors(byte_tok):
    with pytest.raises(InputError, match="too short"):
        all_cases(HoloBenchLite(), byte_tok, 1000)
    with pytest.raises(InputError, match="info_amount"):
        all_cases(HoloBenchLite(HoloBenchConfig(info_amount=20_000)), byte_tok, 8192)
    with pytest.raises(InputError, match="no row"):
        all_cases(HoloBenchLite(HoloBenchConfig(info_amount=10)), byte_tok, 8192)
    from longctx.params import make_config

    cfg = make_config(HoloBenchConfig, {"queries": "count;max", "position": "end"}, technique="holobench-lite")
    assert cfg.queries == ("count", "max")
    with pytest.raises(ParameterError):
        make_config(HoloBenchConfig, {"queries": "count;join"}, technique="holobench-lite")
    with pytest.raises(ParameterError):
        make_config(HoloBenchConfig, {"position": "sideways"}, technique="holobench-lite")


def test_registered():
    from longctx.registry import get_registry

    tech = get_registry().get("evaluation", "holobench-lite")
    assert "2410.11996" in tech.paper
    task = tech.build(HoloBenchConfig(), None)
    assert isinstance(task, EvalTask) and dict(task.tags) == {"diffusion": "high", "scope": "high"}


def test_generation_time_32k_byte_tokenizer(byte_tok):
    all_cases(HoloBenchLite(), byte_tok, 4096)
    t0 = time.perf_counter()
    cases = all_cases(HoloBenchLite(), byte_tok, 32768, seed=1)
    assert time.perf_counter() - t0 < 2.0  # target < 1 s for all seven cases
    assert all(32768 * 0.95 <= c.actual_tokens <= 32768 for c in cases)


def test_tiny_llama_run_shares_the_context(tiny, tmp_path):
    model = tiny("llama", max_position_embeddings=2100)
    task = HoloBenchLite(HoloBenchConfig(queries=("count", "max"), max_new_tokens=4))
    with compose(model, None) as pipe:
        rows = run_eval({"p": pipe}, {"holo": task}, lengths=[2048], out_dir=tmp_path)
    assert len(rows) == 2 and all(r["error"] is None and 0.0 <= r["score"] <= 1.0 for r in rows)
    assert rows[1]["reused_tokens"] > 1000  # the second question reused the prefilled context
    assert set(rows[0]["metrics"]) == {"exact", "partial_credit"}


# -- Gemma 3 270M's tokenizer (real_model) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma_tok():
    """Gemma 3 270M's tokenizer: from the converted model's folder when it is there (fast), else by loading
    the model (which converts it once)."""
    import transformers

    from longctx.models import cache_dir, load_model

    folder = cache_dir() / "gemma-3-270m"
    if (folder / "longctx-converted.json").is_file() and (folder / "tokenizer.json").is_file():
        return transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return load_model("gemma-3-270m").tokenizer


@pytest.mark.real_model
def test_gemma_tokenizer_lengths_and_32k_time(gemma_tok):
    task = HoloBenchLite()
    for length in (2048, 8192):
        for case in all_cases(task, gemma_tok, length, seed=2):
            measured = count_prompt_tokens(gemma_tok, case.prompt) + case.max_new_tokens
            assert case.actual_tokens == measured and length * 0.95 <= measured <= length
    t0 = time.perf_counter()
    cases = all_cases(task, gemma_tok, 32768, seed=1)
    seconds = time.perf_counter() - t0
    print(f"\nseven 32k-token holobench-lite cases with the Gemma tokenizer: {seconds:.3f} s")
    assert all(32768 * 0.95 <= c.actual_tokens <= 32768 for c in cases) and seconds < 3.0
