"""LongGenBench: the reference's prompt layout, K fitted to the length (or fixed), gold answers recomputed
from the question text, the reference's answer extraction and last-number rule by hand, per-third
metrics, and a tiny-llama run."""

from __future__ import annotations

import re
import time

import pytest

from longctx.errors import InputError
from longctx.evaluate import Case, count_prompt_tokens, run_eval
from longctx.hooks.evaluation import EvalTask
from longctx.plugins.longgenbench import SYSTEM, LongGenBench, LongGenBenchConfig, answer_blocks, last_number
from longctx.runtime import compose

#: Each question form, read back from its text, with the arithmetic that answers it.
SOLVERS = [
    (r"\w+ had (\d+) \w+\. \w+ bought (\d+) more and then gave (\d+) to \w+\.", lambda a, b, c: a + b - c),
    (r"A \w+ holds (\d+) \w+\. How many \w+ are there in (\d+) \w+\?", lambda a, b: a * b),
    (r"\w+ has (\d+) dollars\. \w+ buys (\d+) \w+ for (\d+) dollars each\.", lambda a, b, c: a - b * c),
    (r"\w+ reads (\d+) pages every day for (\d+) days, and then (\d+) more pages", lambda a, b, c: a * b + c),
    (r"^(\d+) \w+ are shared equally among (\d+) friends\.", lambda a, b: a // b),
    (r"A hall has (\d+) rows of chairs with (\d+) chairs in each row\. (\d+) chairs", lambda a, b, c: a * b - c),
    (r"\w+ earns (\d+) dollars a week\. After (\d+) weeks \w+ has spent (\d+) dollars", lambda a, b, c: a * b - c),
    (r"A train travels (\d+) kilometres every hour for (\d+) hours, then (\d+) more", lambda a, b, c: a * b + c),
]


class WordTokenizer:
    """A second, coarser tokenizer: one token per word or punctuation mark, plus BOS."""

    def encode(self, text: str) -> list[int]:
        return [0] + [1] * len(re.findall(r"\w+|[^\w\s]", text))


def solve(question: str) -> int:
    hits = [(p, f) for p, f in SOLVERS if re.search(p, question)]
    assert len(hits) == 1, question
    p, f = hits[0]
    return f(*map(int, re.search(p, question).groups()))


def one_case(task, tok, length, seed=0, depth=0.5) -> Case:
    cases = list(task.cases(tok, length=length, depth=depth, seed=seed))
    assert len(cases) == 1
    return cases[0]


def test_prompt_layout(byte_tok):
    task = LongGenBench()
    case = one_case(task, byte_tok, 8192)
    p = case.prompt
    assert p.startswith(SYSTEM + "\n\nExamples: \nQuestion_1: \n")
    examples, following = p.split("\n\nFollowing Question: \n")
    # 8 examples: the questions, then the answers, each answer ending with "The answer is N."
    assert [int(x) for x in re.findall(r"^Question_(\d+): $", examples, re.M)] == list(range(1, 9))
    assert [int(x) for x in re.findall(r"^Answer_(\d+):$", examples, re.M)] == list(range(1, 9))
    for block in examples.split("Examples: \n", 1)[1].split("Answer_")[1:]:
        assert re.search(r"The answer is \d+\.\s*$", block)
    # the K questions numbered from 9, a blank line, then the answer prefix
    k = case.meta["k"]
    assert [int(x) for x in re.findall(r"^Question_(\d+):$", following, re.M)] == list(range(9, 9 + k))
    assert p.endswith("\n\nAnswer_9:\n") and case.meta["answer_prefix"] == "Answer_9:\n"
    assert p.endswith(case.query) and case.query.startswith("Following Question: \n")


@pytest.mark.parametrize("length", [4096, 8192, 16384])
def test_k_fills_the_length(byte_tok, length):
    task = LongGenBench()
    case = one_case(task, byte_tok, length, seed=1)
    k, per = case.meta["k"], case.meta["answer_tokens"]
    tokens = count_prompt_tokens(byte_tok, case.prompt)
    assert case.actual_tokens == tokens + case.max_new_tokens == length == case.target_tokens
    assert case.max_new_tokens >= k * per
    # K is maximal: one more question does not fit with its answer budget
    more = task.prompt(task.questions(1, k + 1), byte_tok)
    assert count_prompt_tokens(byte_tok, more) + (k + 1) * per > length


def test_k_grows_with_length_and_questions_are_a_shared_prefix(byte_tok):
    task = LongGenBench()
    short, long = one_case(task, byte_tok, 4096, seed=2), one_case(task, byte_tok, 16384, seed=2)
    assert 1 <= short.meta["k"] < long.meta["k"]
    assert long.meta["questions"][: short.meta["k"]] == short.meta["questions"]
    tok = WordTokenizer()
    c = one_case(task, tok, 3000, seed=2)
    assert count_prompt_tokens(tok, c.prompt) + c.max_new_tokens == 3000


def test_gold_answers_recomputed_from_the_questions(byte_tok):
    task = LongGenBench()
    for seed in range(3):
        case = one_case(task, byte_tok, 16384, seed=seed)
        assert [solve(q) for q in case.meta["questions"]] == case.meta["answers"]
        assert all(a >= 0 for a in case.meta["answers"])
    for ex in task.examples():
        assert solve(ex.question) == ex.answer
    assert task.score(case.answer, case) == 1.0


def test_fixed_k(byte_tok):
    task = LongGenBench(LongGenBenchConfig(k=5))
    case = one_case(task, byte_tok, 8192)
    assert case.meta["k"] == 5 and case.actual_tokens == 8192
    with pytest.raises(InputError, match="too short for k=5"):
        one_case(task, byte_tok, 2700)


def test_deterministic(byte_tok):
    a = one_case(LongGenBench(), byte_tok, 4096, seed=4)
    assert a == one_case(LongGenBench(), byte_tok, 4096, seed=4)
    assert a.meta["questions"] != one_case(LongGenBench(), byte_tok, 4096, seed=5).meta["questions"]
    # examples are fixed, whatever the seed
    assert (
        a.prompt.split("Following")[0] == one_case(LongGenBench(), byte_tok, 4096, seed=5).prompt.split("Following")[0]
    )


# -- the reference's parsing and scoring, by hand -------------------------------------------------------


def hand_case(answers=(6, 5, 39), prefix="Answer_9:\n") -> Case:
    return Case(
        task="longgenbench",
        prompt="",
        answer="",
        target_tokens=0,
        actual_tokens=0,
        depth=0.5,
        seed=0,
        max_new_tokens=8,
        meta={"answers": list(answers), "answer_prefix": prefix},
    )


def test_answer_blocks_follow_the_reference():
    text = "Answer_9:\n21 - 15 = 6.\nThe answer is 6.\n\nAnswer_10:\nThe answer is 5.\n\nAnswer_11:\nIt is 39"
    assert answer_blocks(text) == ["21 - 15 = 6.\nThe answer is 6.", "The answer is 5.", "It is 39"]
    # a header without a newline after the colon is not an answer (the regex needs ":\n")
    assert answer_blocks("Answer_9: 6\n\nAnswer_10:\n5") == ["5"]
    assert last_number("so 1,234 apples") == "1234"
    assert last_number("6.0") == "6.0" and last_number("no digits") is None


def test_score_by_hand():
    task, case = LongGenBench(), hand_case()
    full = "21 - 15 = 6.\nThe answer is 6.\n\nAnswer_10:\nThe answer is 5.\n\nAnswer_11:\nThe answer is 39."
    assert task.score(full, case) == 1.0
    assert task.score("The answer is 6.\n\nAnswer_10:\nThe answer is 4.\n\nAnswer_11:\n39", case) == pytest.approx(
        2 / 3
    )
    # the reference compares strings: 6.0 is not 6
    assert task.score("The answer is 6.0.\n\nAnswer_10:\n5\n\nAnswer_11:\n39", case) == pytest.approx(2 / 3)
    # answers are matched by position; unanswered questions count as wrong
    assert task.score("The answer is 6.", case) == pytest.approx(1 / 3)
    assert task.score("", case) == 0.0 and task.score("I could not find it.", case) == 0.0


def test_metrics_per_third():
    task = LongGenBench()
    case = hand_case(answers=list(range(1, 7)))
    # right: 1, 2 (first third), 3 (middle), none of the last third; five answers given
    pred = "1\n\nAnswer_10:\n2\n\nAnswer_11:\n3\n\nAnswer_12:\n0\n\nAnswer_13:\n0"
    m = task.metrics(pred, case)
    assert m == {
        "accuracy": 0.5,
        "answered": 5 / 6,
        "first_third": 1.0,
        "middle_third": 0.5,
        "last_third": 0.0,
    }


def test_too_short(byte_tok):
    with pytest.raises(InputError, match="too short"):
        one_case(LongGenBench(), byte_tok, 1000)


def test_registered():
    from longctx.registry import get_registry

    tech = get_registry().get("evaluation", "longgenbench")
    assert "2410.04199" in tech.paper
    task = tech.build(LongGenBenchConfig(), None)
    assert isinstance(task, EvalTask) and dict(task.tags) == {"diffusion": "low", "scope": "high"}
    assert task.depth_sensitive is False


def test_generation_time_32k_byte_tokenizer(byte_tok):
    one_case(LongGenBench(), byte_tok, 4096)
    t0 = time.perf_counter()
    case = one_case(LongGenBench(), byte_tok, 32768, seed=1)
    assert time.perf_counter() - t0 < 2.0  # target < 1 s
    assert case.actual_tokens == 32768 and case.meta["k"] > 100


def test_tiny_llama_run(tiny, tmp_path, byte_tok):
    task = LongGenBench(LongGenBenchConfig(k=3, shots=1, answer_tokens=4))
    length = count_prompt_tokens(byte_tok, task.prompt(task.questions(0, 3), byte_tok)) + 12
    with compose(tiny("llama", max_position_embeddings=length + 8), None) as pipe:
        rows = run_eval({"p": pipe}, {"lgb": task}, lengths=[length], out_dir=tmp_path)
    (row,) = rows
    assert row["error"] is None and row["max_new_tokens"] == 12 and 0.0 <= row["score"] <= 1.0
    assert set(row["metrics"]) == {"accuracy", "answered", "first_third", "middle_third", "last_third"}


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
    task = LongGenBench()
    for length in (2048, 8192):
        case = one_case(task, gemma_tok, length, seed=2)
        assert count_prompt_tokens(gemma_tok, case.prompt) + case.max_new_tokens == case.actual_tokens == length
        assert case.max_new_tokens >= case.meta["k"] * case.meta["answer_tokens"]
    t0 = time.perf_counter()
    case = one_case(task, gemma_tok, 32768, seed=1)
    seconds = time.perf_counter() - t0
    print(f"\none 32k-token longgenbench case with the Gemma tokenizer: {seconds:.3f} s (K = {case.meta['k']})")
    assert case.actual_tokens == 32768 and seconds < 3.0
