"""The synthetic LV-Eval CFI task: LV-Eval's prompt, the true fact among confusing near-miss facts in a
prose haystack at depth, KPR, length fitting, determinism, the keyword-recall-gated F1 by hand, and a
tiny-llama run."""

from __future__ import annotations

import re
import time

import pytest

from longctx.errors import InputError, ParameterError
from longctx.evaluate import Case, count_prompt_tokens, run_eval
from longctx.haystack import prose_text
from longctx.hooks.evaluation import EvalTask
from longctx.plugins.lv_eval import (
    DEEDS,
    FAMOUS,
    FIRST_NAMES,
    IN_NOVEL,
    ROLES,
    SURNAMES,
    TEMPLATES,
    TOWNS,
    LVEvalCFI,
    LVEvalCFIConfig,
)
from longctx.runtime import compose

FACT_RE = re.compile(
    r"^(?P<name>.+?) is the (?P<role>\w+) widely credited with (?P<deed>.+?)(?: in (?P<town>[\w ]+))?\.$"
)
QUESTION_RE = re.compile(
    r"^What is the name of the (?P<role>\w+) widely credited with (?P<deed>.+?)(?: in (?P<town>[\w ]+))?\?$"
)


class WordTokenizer:
    """A second, coarser tokenizer: one token per word or punctuation mark, plus BOS."""

    def encode(self, text: str) -> list[int]:
        return [0] + [1] * len(re.findall(r"\w+|[^\w\s]", text))


def one_case(task, tok, length, depth=0.5, seed=0) -> Case:
    cases = list(task.cases(tok, length=length, depth=depth, seed=seed))
    assert len(cases) == 1
    return cases[0]


def question_of(case: Case) -> str:
    return case.prompt.rsplit("Question: ", 1)[1].split("\n")[0]


def parse(sentence: str, pattern=FACT_RE) -> dict:
    m = pattern.match(sentence)
    assert m, sentence
    return m.groupdict()


# -- prompt layout, length, depth ---------------------------------------------------------------------


@pytest.mark.parametrize("length", [1024, 2048, 4096])
@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_layout_and_length(byte_tok, length, depth):
    case = one_case(LVEvalCFI(), byte_tok, length, depth)
    measured = count_prompt_tokens(byte_tok, case.prompt) + case.max_new_tokens
    assert case.actual_tokens == measured and case.target_tokens == length
    assert length * 0.98 <= measured <= length
    # LV-Eval's factrecall_en template, answer prefix "Answer:"
    head, tail = TEMPLATES["factrecall"].split("{context}")
    assert case.prompt.startswith(head.split("{input}")[0])
    q = question_of(case)
    assert case.prompt.endswith(tail.format(input=q) + "Answer:")
    assert case.query == f"Question: {q}\nAnswer:" and case.prompt.endswith(case.query)
    assert case.max_new_tokens == 16
    # the true fact and every confusing fact appear exactly once
    fact = case.meta["fact"]
    assert case.prompt.count(fact) == 1 and case.prompt.index(fact) == case.meta["fact_start"]
    for cf in case.meta["confusing_facts"]:
        assert case.prompt.count(cf) == 1
    assert case.answer in case.prompt and case.golds == (case.answer,)


def test_second_tokenizer_length(byte_tok):
    tok = WordTokenizer()
    for length in (300, 800, 3000):
        case = one_case(LVEvalCFI(), tok, length, 0.3, seed=2)
        measured = count_prompt_tokens(tok, case.prompt) + case.max_new_tokens
        assert case.actual_tokens == measured and length * 0.98 <= measured <= length


@pytest.mark.parametrize("depth", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_depth_places_the_true_fact(byte_tok, depth):
    case = one_case(LVEvalCFI(LVEvalCFIConfig(confusing=0)), byte_tok, 4096, depth, seed=5)
    article = case.prompt.split("Article: ", 1)[1].rsplit("\n\nPlease answer", 1)[0]
    at = article.index(case.meta["fact"])
    rest = len(article) - len(case.meta["fact"])
    assert abs(at / rest - depth) <= 0.05
    assert abs(case.meta["fact_depth"] - depth) <= 0.05


def test_depth_extremes(byte_tok):
    cfg = LVEvalCFIConfig(confusing=0)
    first = one_case(LVEvalCFI(cfg), byte_tok, 2048, 0.0)
    last = one_case(LVEvalCFI(cfg), byte_tok, 2048, 1.0)
    assert first.prompt.split("Article: ", 1)[1].startswith(first.meta["fact"])
    assert last.prompt.split("\n\nPlease answer the following questions based on the above")[0].endswith(
        last.meta["fact"]
    )


def test_deterministic_and_paired(byte_tok):
    task = LVEvalCFI()
    a = one_case(task, byte_tok, 2048, 0.4, seed=7)
    b = one_case(LVEvalCFI(), byte_tok, 2048, 0.4, seed=7)
    assert a == b and a.id == b.id
    # one seed asks the same question with the same confusing facts at every length and depth
    c = one_case(task, byte_tok, 4096, 0.9, seed=7)
    assert (c.answer, c.meta["confusing_facts"], question_of(c)) == (
        a.answer,
        a.meta["confusing_facts"],
        question_of(a),
    )
    answers = {one_case(task, byte_tok, 1024, 0.5, seed=s).answer for s in range(8)}
    assert len(answers) >= 6


# -- confusing facts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_confusing_facts_are_near_misses_that_do_not_answer(byte_tok, seed):
    case = one_case(LVEvalCFI(LVEvalCFIConfig(confusing=4)), byte_tok, 4096, 0.5, seed=seed)
    true = parse(case.meta["fact"])
    q = parse(question_of(case), QUESTION_RE)
    assert (q["role"], q["deed"], q["town"]) == (true["role"], true["deed"], true["town"])
    assert true["name"] == case.answer
    true_tokens = set(case.answer.lower().split())
    subjects = {(true["role"], true["deed"], true["town"])}
    assert len(case.meta["confusing_facts"]) == 4
    for cf_text, cf_name, changed in zip(
        case.meta["confusing_facts"], case.meta["confusing_answers"], case.meta["confusing_changed"], strict=True
    ):
        cf = parse(cf_text)
        assert cf["name"] == cf_name and cf_text != case.meta["fact"]
        # a different person, sharing no name token with the answer
        assert not (set(cf_name.lower().split()) & true_tokens)
        # exactly one slot of the subject changed, so it never answers the question
        diff = [k for k in ("role", "deed", "town") if cf[k] != true[k]]
        assert diff == [changed]
        subjects.add((cf["role"], cf["deed"], cf["town"]))
    assert len(subjects) == 5  # all distinct
    # the slots come from the lists
    assert true["role"] in ROLES and true["deed"] in DEEDS and true["town"] in TOWNS


def test_confusing_kinds_cycle_through_every_slot(byte_tok):
    case = one_case(LVEvalCFI(LVEvalCFIConfig(confusing=3)), byte_tok, 2048, 0.5, seed=1)
    assert sorted(case.meta["confusing_changed"]) == ["deed", "role", "town"]


def test_no_name_occurs_in_the_haystack_novel():
    words = {w.lower() for w in re.findall(r"[A-Za-z]+", prose_text())}
    for name in (*FIRST_NAMES, *SURNAMES):
        assert name.lower() not in words, name
    for person, _, _ in FAMOUS:
        if person not in IN_NOVEL:
            assert not any(w.lower() in words for w in person.split()), person


def test_kpr_replaces_the_famous_person(byte_tok):
    for seed in range(5):
        case = one_case(LVEvalCFI(LVEvalCFIConfig(kpr=True, confusing=2)), byte_tok, 2048, 0.5, seed=seed)
        original, replaced = case.meta["kpr_original"], case.meta["kpr_replacement"]
        assert replaced == case.answer != original
        assert original not in case.prompt  # memory cannot be confirmed from the context
        fact = parse(case.meta["fact"])
        assert fact["town"] is None and (original, fact["role"], fact["deed"]) in FAMOUS
        for cf in case.meta["confusing_facts"]:
            p = parse(cf)
            assert p["role"] == fact["role"] and p["deed"] != fact["deed"]
        task = LVEvalCFI(LVEvalCFIConfig(kpr=True, confusing=2))
        m = task.metrics(original, case)
        assert m["memory"] == 1.0 and m["f1_gated"] == 0.0
        assert task.metrics(case.answer, case)["memory"] == 0.0


# -- scoring by hand ----------------------------------------------------------------------------------


def hand_case(answer="Quentin Everhart", keywords=None, confusing=("Marisol Abernathy",)) -> Case:
    return Case(
        task="lv-eval-cfi",
        prompt="",
        answer=answer,
        target_tokens=0,
        actual_tokens=0,
        depth=0.5,
        seed=0,
        max_new_tokens=16,
        meta={"answer_keywords": keywords or answer, "confusing_answers": list(confusing)},
    )


def test_gated_f1_by_hand():
    task, case = LVEvalCFI(), hand_case()
    assert task.score("Quentin Everhart", case) == 1.0
    assert task.score(" Quentin Everhart.\nQuestion", case) == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    # "the" is dropped by normalisation: [geologist, is, quentin, everhart] → P = 1/2, R = 1, F1 = 2/3
    assert task.score("The geologist is Quentin Everhart.", case) == pytest.approx(2 / 3)
    # one of two keyword tokens: recall 1/2 ≥ 0.2 passes the gate; F1 = 2·1·½/(1 + ½) = 2/3
    assert task.score("Everhart", case) == pytest.approx(2 / 3)
    assert task.score("Marisol Abernathy", case) == 0.0
    assert task.score("", case) == 0.0
    assert task.score("I could not find it.", case) == 0.0


def test_the_keyword_gate_zeroes_word_overlap_without_the_keywords():
    task = LVEvalCFI()
    case = hand_case(answer="Everhart founded the library in 1843", keywords="1843")
    # "the" normalised away: 3 of the 5 answer words, not the keyword: plain F1 = 2·1·0.6/1.6 = 0.75; gated: 0
    assert task.metrics("Everhart founded the library", case)["f1"] == pytest.approx(0.75)
    assert task.score("Everhart founded the library", case) == 0.0
    assert task.score("Everhart founded the library in 1843", case) == 1.0


def test_metrics_flag_confusion():
    task, case = LVEvalCFI(), hand_case()
    m = task.metrics("Marisol Abernathy", case)
    assert m == {"f1_gated": 0.0, "f1": 0.0, "keyword_recall": 0.0, "confused": 1.0}
    m = task.metrics("Quentin Everhart", case)
    assert m["confused"] == 0.0 and m["keyword_recall"] == 1.0 and m["f1"] == 1.0


def test_scores_of_real_cases(byte_tok):
    task = LVEvalCFI(LVEvalCFIConfig(confusing=2))
    case = one_case(task, byte_tok, 2048, 0.5, seed=3)
    assert task.score(case.answer, case) == 1.0
    for cf in case.meta["confusing_answers"]:
        assert task.score(cf, case) == 0.0 and task.metrics(cf, case)["confused"] == 1.0


# -- errors, registration, templates --------------------------------------------------------------------


def test_too_short_and_bad_params(byte_tok):
    with pytest.raises(InputError, match="too short"):
        one_case(LVEvalCFI(), byte_tok, 300)
    from longctx.params import make_config

    with pytest.raises(ParameterError):
        make_config(LVEvalCFIConfig, {"template": "nope"}, technique="lv-eval-cfi")
    with pytest.raises(ParameterError):
        make_config(LVEvalCFIConfig, {"confusing": "99"}, technique="lv-eval-cfi")


def test_mixup_template(byte_tok):
    case = one_case(LVEvalCFI(LVEvalCFIConfig(template="mixup")), byte_tok, 2048)
    assert case.prompt.startswith("Please answer the following question based on the given passages. Questions")
    assert "Only give me the answer and do not output any other explanation and evidence.\n\nQuestion: " in case.prompt


def test_registered():
    from longctx.evaluate import load_tasks
    from longctx.registry import get_registry

    reg = get_registry()
    tech = reg.get("evaluation", "lv-eval-cfi")
    assert "2402.05136" in tech.paper
    task = tech.build(LVEvalCFIConfig(), None)
    assert isinstance(task, EvalTask) and dict(task.tags) == {"diffusion": "low", "scope": "low"}
    tasks = load_tasks(["lv-eval-cfi:kpr=true,confusing=2"], reg)
    (t,) = tasks.values()
    assert t.config.kpr and t.config.confusing == 2


def test_generation_time_32k_byte_tokenizer(byte_tok):
    task = LVEvalCFI()
    one_case(task, byte_tok, 1024)
    t0 = time.perf_counter()
    case = one_case(task, byte_tok, 32768, 0.5, seed=1)
    assert time.perf_counter() - t0 < 2.0  # target < 1 s
    assert 32768 * 0.98 <= case.actual_tokens <= 32768


def test_tiny_llama_run(tiny, tmp_path):
    model = tiny("llama", max_position_embeddings=1200)
    task = LVEvalCFI(LVEvalCFIConfig(max_new_tokens=4))
    with compose(model, None) as pipe:
        rows = run_eval({"p": pipe}, {"lv": task}, lengths=[1024], out_dir=tmp_path)
    (row,) = rows
    assert row["error"] is None and 0.0 <= row["score"] <= 1.0
    assert set(row["metrics"]) == {"f1_gated", "f1", "keyword_recall", "confused"}
    assert row["prompt_tokens"] <= 1024 - 4


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
    task = LVEvalCFI()
    for length in (1024, 8192):
        case = one_case(task, gemma_tok, length, 0.3, seed=2)
        measured = count_prompt_tokens(gemma_tok, case.prompt) + case.max_new_tokens
        assert case.actual_tokens == measured and length * 0.98 <= measured <= length
        assert gemma_tok(case.prompt)["input_ids"][0] == gemma_tok.bos_token_id
    t0 = time.perf_counter()
    case = one_case(task, gemma_tok, 32768, 0.5, seed=1)
    seconds = time.perf_counter() - t0
    print(f"\none 32k-token lv-eval-cfi case with the Gemma tokenizer: {seconds:.3f} s")
    assert 32768 * 0.98 <= case.actual_tokens <= 32768 and seconds < 3.0
