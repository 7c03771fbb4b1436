"""Long-output generation tasks: ``longbench-write`` (LongWriter's length score S_l) and ``golden-thread``
(events placed in the numbered blocks of a generated text) — budgets, prompts, checks, scorers, run_eval."""

from __future__ import annotations

import re

import pytest

import longctx
from longctx.errors import InputError
from longctx.evaluate import ChatTokenizer, count_prompt_tokens, run_eval
from longctx.plugins.long_generation import (
    FINISHED,
    LENGTH_PHRASES,
    SEPARATOR,
    GoldenThread,
    GoldenThreadConfig,
    LongBenchWrite,
    LongBenchWriteConfig,
    count_words,
    filler_words,
    length_score,
    parse_blocks,
    tokens_per_word,
)


def one_case(task, tok, length, seed=0, depth=0.5):
    cases = list(task.cases(tok, length=length, depth=depth, seed=seed))
    assert len(cases) == 1
    return cases[0]


# -- LongWriter's word count and S_l -----------------------------------------------------------------------


def test_count_words_as_longwriter():
    assert count_words("Hello, world! It's 2024.") == 4  # Hello, world, It, s — digits are not words
    assert count_words("长文本 generation") == 4
    assert count_words("") == 0
    assert count_words(filler_words(37)) == 37


@pytest.mark.parametrize(
    "x, y, expected",
    [
        (100, 100, 100.0),
        (100, 130, 90.0),  # 1 − 0.3/3
        (100, 250, 50.0),  # 1 − 1.5/3
        (100, 400, 0.0),  # 1 − 3/3
        (100, 500, 0.0),
        (100, 80, 87.5),  # 1 − (1.25 − 1)/2
        (100, 50, 50.0),  # 1 − (2 − 1)/2
        (90, 30, 0.0),  # 1 − (3 − 1)/2
        (100, 0, 0.0),
    ],
)
def test_length_score_by_hand(x, y, expected):
    assert length_score(x, y) == pytest.approx(expected)


# -- longbench-write ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [512, 2048, 8192])
def test_budget_is_exactly_the_length(byte_tok, length):
    task = LongBenchWrite()
    case = one_case(task, byte_tok, length)
    p = count_prompt_tokens(byte_tok, case.prompt)
    assert case.actual_tokens == case.target_tokens == length == p + case.max_new_tokens
    tau = tokens_per_word(byte_tok)
    x = case.meta["required_words"]
    # x = ⌊max_new_tokens / (h·τ)⌋ with h = 2
    assert x == int(case.max_new_tokens / (2.0 * tau))
    assert case.prompt.endswith("\n\n") and f"{x}" in case.prompt
    assert case.query == case.meta["instruction"] == case.prompt.strip()
    assert any(re.fullmatch(re.escape(ph).replace(r"\{task\}", ".+").replace(r"\{words\}", str(x)), case.query)
               for ph in LENGTH_PHRASES)  # fmt: skip


def test_tokens_per_word_and_headroom(byte_tok):
    # the byte tokenizer spends one token per byte: ~5.5 per word of English prose
    assert 4.5 < tokens_per_word(byte_tok) < 6.5
    a = one_case(LongBenchWrite(LongBenchWriteConfig(headroom=1.0, tokens_per_word=2.0)), byte_tok, 4096)
    assert a.meta["required_words"] == int(a.max_new_tokens / 2.0)


def test_deterministic_and_paired_across_lengths(byte_tok):
    a = one_case(LongBenchWrite(), byte_tok, 2048, seed=5)
    assert a == one_case(LongBenchWrite(), byte_tok, 2048, seed=5)
    assert one_case(LongBenchWrite(), byte_tok, 8192, seed=5).meta["writing_task"] == a.meta["writing_task"]
    assert len({one_case(LongBenchWrite(), byte_tok, 2048, seed=s).prompt for s in range(6)}) > 1


def test_scoring_and_metrics(byte_tok):
    task = LongBenchWrite()
    case = one_case(task, byte_tok, 4096)
    x = case.meta["required_words"]
    assert task.score(case.answer, case) == 1.0 and count_words(case.answer) == x
    assert task.score("", case) == 0.0 and task.score("I could not find it.", case) == 0.0
    assert task.score(filler_words(2 * x), case) == pytest.approx(length_score(x, 2 * x) / 100) == pytest.approx(2 / 3)
    m = task.metrics(filler_words(x // 2), case)
    assert m == {"words": x // 2, "required_words": x, "length_ratio": (x // 2) / x, "reached": 0.0}
    assert task.metrics(filler_words(x), case)["reached"] == 1.0


def test_longbench_write_too_short_is_an_input_error(byte_tok):
    with pytest.raises(InputError, match=r"longbench-write.*too short"):
        one_case(LongBenchWrite(), byte_tok, 150)


def test_chat_template_counts_the_template(tiny_llama):
    tok = tiny_llama.tokenizer
    tok.chat_template = "{% for m in messages %}<|user|>{{ m['content'] }}{% endfor %}<|assistant|>"
    chat = ChatTokenizer(tok)
    case = one_case(LongBenchWrite(), chat, 1024)
    assert case.prompt.startswith("<|user|>") and case.prompt.endswith("<|assistant|>")
    assert count_prompt_tokens(chat, case.prompt) + case.max_new_tokens == 1024


# -- golden-thread -----------------------------------------------------------------------------------------


def test_plan_follows_the_reference_instruction_kinds():
    task = GoldenThread()
    for seed in range(20):
        n = 8 + seed
        plan = task.plan(seed, n)
        kinds = {}
        for b, e, kind in plan["checks"]:
            assert 1 <= b <= n
            kinds.setdefault(kind, []).append((b, e))
        assert len(kinds["single"]) == 5 and len({e for _b, e in kinds["single"]}) == 5
        r, p = plan["range"], plan["periodic"]
        assert [b for b, _e in kinds["range"]] == list(range(r["first"], r["last"] + 1))
        assert r["last"] - r["first"] + 1 == max(2, n // 10)
        assert [b for b, _e in kinds["periodic"]] == list(range(p["start"], n + 1, p["every"]))
        assert 2 <= p["every"] <= max(2, n // 4)


def test_prompt_layout_and_budget(byte_tok):
    task = GoldenThread(GoldenThreadConfig(block_words=20, scenario="skyscraper"))
    case = one_case(task, byte_tok, 4096, seed=2)
    n, plan = case.meta["blocks"], case.meta
    assert count_prompt_tokens(byte_tok, case.prompt) + case.max_new_tokens == 4096 == case.actual_tokens
    assert plan["unit"] == "Floor" and n >= 4
    assert case.prompt.endswith(f"*** started ***\n{SEPARATOR} Floor 1:")
    for b, e in plan["single"]:
        assert f'In Floor {b}, mention "{e}".' in case.prompt
    r, p = plan["range"], plan["periodic"]
    assert f'In every floor from Floor {r["first"]} to Floor {r["last"]}, mention "{r["event"]}".' in case.prompt
    assert f'Every {p["every"]} floors, starting from Floor {p["start"]}, mention "{p["event"]}".' in case.prompt
    assert f"Write {n} entries" in case.prompt and FINISHED in case.prompt
    # N = ⌊max_new_tokens / (h·τ·(w + 4))⌋
    assert n == int(case.max_new_tokens / (1.25 * tokens_per_word(byte_tok) * 24))
    assert case == one_case(GoldenThread(GoldenThreadConfig(block_words=20, scenario="skyscraper")), byte_tok, 4096, 2)


def test_parse_blocks():
    text = "#*# Week 1: a\n#*# Week 2: b the book club\n#*# week 3: c\n#*# Week 2: again\nno header here"
    blocks = parse_blocks(text, "Week")
    assert set(blocks) == {1, 2, 3}
    assert "book club" in blocks[2] and "again" not in blocks[2]


def test_scoring_by_hand(byte_tok):
    task = GoldenThread(GoldenThreadConfig(block_words=20, scenario="diary", singles=2))
    case = one_case(task, byte_tok, 4096, seed=4)
    checks = case.meta["checks"]
    assert task.score(case.answer, case) == 1.0
    assert task.score("", case) == 0.0 and task.score("I could not find it.", case) == 0.0
    n = case.meta["blocks"]
    # drop the events of the first check's block: exactly those checks fail
    first = checks[0][0]
    lost = [c for c in checks if c[0] == first]
    blocks = case.answer.split("\n")
    body = [f"{SEPARATOR} Week {first}: A quiet one." if line.startswith(f"{SEPARATOR} Week {first}:") else line
            for line in blocks]  # fmt: skip
    if first == 1:
        body[0] = " A quiet one."
    got = task.score("\n".join(body), case)
    assert got == pytest.approx(1 - len(lost) / len(checks))
    # punctuation and case do not matter; the block does
    b, e, _k = checks[-1]
    one = f" x\n{SEPARATOR} Week {b}: THE {e.upper()}!!"
    assert task.score(one, case) == pytest.approx(sum(1 for c in checks if c[0] == b and c[1] == e) / len(checks))
    m = task.metrics(one, case)
    assert m["completion"] == pytest.approx((1 + (b != 1)) / n)
    assert m["found"] == pytest.approx(
        sum(1 for c in checks if c[0] == b and c[1] == e) / sum(1 for c in checks if c[0] in {1, b})
    )
    full = task.metrics(case.answer, case)
    assert full["single"] == full["range"] == full["periodic"] == full["found"] == full["completion"] == 1.0


def test_golden_thread_too_short_is_an_input_error(byte_tok):
    with pytest.raises(InputError, match=r"golden-thread.*too short"):
        one_case(GoldenThread(), byte_tok, 2048)


# -- registration, run_eval, speed ---------------------------------------------------------------------------


def test_registered_with_tags():
    from longctx.evaluate import load_tasks

    tasks = load_tasks(["longbench-write", "golden-thread:block_words=40"])
    assert dict(tasks["longbench-write"].tags) == {"diffusion": "low", "scope": "high"}
    assert dict(tasks["golden-thread:block_words=40"].tags) == {"diffusion": "high", "scope": "high"}
    assert tasks["golden-thread:block_words=40"].config.block_words == 40


def test_run_eval_on_tiny_llama(tiny_llama):
    task = LongBenchWrite(LongBenchWriteConfig(min_words=2))
    with longctx.compose(tiny_llama) as pipe:
        rows = run_eval({"native": pipe}, {"longbench-write": task}, lengths=[128])
    (row,) = rows
    assert row["error"] is None and row["max_new_tokens"] == 128 - row["prompt_tokens"]
    case = next(task.cases(tiny_llama.tokenizer, length=128, depth=0.5, seed=0))
    assert row["score"] == pytest.approx(task.score(row["prediction"], case))
    assert row["metrics"]["words"] == count_words(row["prediction"])


def test_32k_cases_are_fast(byte_tok):
    import time

    for task in (LongBenchWrite(), GoldenThread()):
        t0 = time.perf_counter()
        case = one_case(task, byte_tok, 32768)
        assert time.perf_counter() - t0 < 2.0 and case.actual_tokens == 32768
