"""Ada-LEval TSort: the prompt layout, the gold order really restores the book (checked against the raw
novel), segment and hint fitting within tolerance, determinism, the reference's answer extraction by
hand (JSON, unique subsequence, else nothing), and a tiny-llama run."""

from __future__ import annotations

import itertools
import json
import re
import time

import pytest

from longctx.errors import InputError, ParameterError
from longctx.evaluate import Case, count_prompt_tokens, run_eval
from longctx.haystack import prose_text
from longctx.hooks.evaluation import EvalTask
from longctx.plugins.ada_leval import CLOSING, TSort, TSortConfig, extract_order
from longctx.runtime import compose


class WordTokenizer:
    """A second, coarser tokenizer: one token per word or punctuation mark, plus BOS."""

    def encode(self, text: str) -> list[int]:
        return [0] + [1] * len(re.findall(r"\w+|[^\w\s]", text))


def one_case(task, tok, length, seed=0, depth=0.5) -> Case:
    cases = list(task.cases(tok, length=length, depth=depth, seed=seed))
    assert len(cases) == 1
    return cases[0]


def parts(case: Case) -> tuple[str, list[str], str]:
    """(before, the segments as shown, after) read back from the prompt."""
    body = case.prompt.split("the designations of the segments in their original order)\n\n", 1)[1]
    before, rest = body.split("Before the segments:\n", 1)[1].split("\nSegment 1:\n", 1)
    n = case.meta["segments"]
    segs = []
    for j in range(1, n + 1):
        nxt = f"\nSegment {j + 1}:\n" if j < n else "\nAfter the segments:\n"
        seg, rest = rest.split(nxt, 1)
        segs.append(seg)
    after = rest.split("\n" + CLOSING, 1)[0]
    return before, segs, after


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def novel() -> str:
    return flat(re.sub(r"(?m)^Chapter \d+\s*$", "", prose_text()))


@pytest.mark.parametrize("seed", range(5))
def test_gold_order_restores_the_book(byte_tok, novel, seed):
    case = one_case(TSort(), byte_tok, 4096, seed=seed)
    before, segs, after = parts(case)
    gold = json.loads(case.answer)
    n = case.meta["segments"]
    assert sorted(gold) == list(range(1, n + 1)) == sorted(case.meta["gold"])
    ordered = [segs[d - 1] for d in gold]
    # before, the segments in gold order, and after are one contiguous passage of the novel
    assert flat(" ".join([before, *ordered, after])) in novel
    # and the shown order is not the book order (unless the shuffle is the identity)
    if gold != list(range(1, n + 1)):
        assert flat(" ".join(segs)) not in novel
    assert all("Chapter" not in s.split("\n")[0][:8] for s in segs)
    sizes = case.meta["segment_sentences"]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) >= n


def test_prompt_layout(byte_tok):
    case = one_case(TSort(), byte_tok, 4096)
    p = case.prompt
    assert p.startswith(
        "You are an AI assistant. Your job is to sort multiple segments of a book into their original order.\n"
    )
    assert "Sample Output (format only):\nAnswer: [4, 1, 2, 3] (the designations" in p
    assert p.endswith(CLOSING + "Answer:") and case.query == CLOSING + "Answer:"
    assert [int(x) for x in re.findall(r"^Segment (\d+):$", p, re.M)] == [1, 2, 4, 1, 2, 3, 4]  # sample + case
    assert case.max_new_tokens == 32


@pytest.mark.parametrize("length", [4096, 8192, 16384])
def test_length_within_tolerance(byte_tok, length):
    for seed in range(3):
        case = one_case(TSort(), byte_tok, length, seed=seed)
        measured = count_prompt_tokens(byte_tok, case.prompt) + case.max_new_tokens
        assert case.actual_tokens == measured and case.target_tokens == length
        assert length * 0.98 <= measured <= length


def test_second_tokenizer_and_segment_count(byte_tok, novel):
    tok = WordTokenizer()
    case = one_case(TSort(TSortConfig(segments=6)), tok, 3000, seed=2)
    measured = count_prompt_tokens(tok, case.prompt) + case.max_new_tokens
    assert case.actual_tokens == measured and 3000 * 0.98 <= measured <= 3000
    before, segs, after = parts(case)
    assert len(segs) == 6
    assert flat(" ".join([before, *(segs[d - 1] for d in case.meta["gold"]), after])) in novel


def test_hints_take_the_configured_share(byte_tok):
    case = one_case(TSort(), byte_tok, 16384, seed=1)
    before, _, after = parts(case)
    hints = count_prompt_tokens(byte_tok, before + after)
    assert 0.5 * 1000 <= hints <= 1000 + 200  # min(0.2 · 16384, 1000) tokens, give or take a sentence
    none = one_case(TSort(TSortConfig(context_fraction=0.0)), byte_tok, 16384, seed=1)
    b, _, a = parts(none)
    assert len(b) + len(a) < 400  # only the slack left by the last sentence


def test_deterministic(byte_tok):
    a = one_case(TSort(), byte_tok, 4096, seed=3)
    assert a == one_case(TSort(), byte_tok, 4096, seed=3)
    starts = {one_case(TSort(), byte_tok, 4096, seed=s).meta["start_sentence"] for s in range(6)}
    assert len(starts) == 6
    orders = {tuple(one_case(TSort(), byte_tok, 4096, seed=s).meta["gold"]) for s in range(12)}
    assert len(orders) >= 6


# -- the reference's extraction and scoring, by hand -------------------------------------------------------


def hand_case(gold=(2, 4, 3, 1)) -> Case:
    return Case(
        task="ada-leval-tsort",
        prompt="",
        answer=json.dumps(list(gold)),
        target_tokens=0,
        actual_tokens=0,
        depth=0.5,
        seed=0,
        max_new_tokens=8,
        meta={"segments": len(gold), "gold": list(gold)},
    )


def test_extraction_by_hand():
    assert extract_order(" [2, 4, 3, 1]", 4) == [2, 4, 3, 1]
    # not JSON (text follows the list): the unique permutation among the characters
    assert extract_order("Answer: [2, 4, 3, 1]\nBecause it opens the story.", 4) == [2, 4, 3, 1]
    # ... but digits in the trailing text make it ambiguous ("24312" holds 2431 and 4312)
    assert extract_order("Answer: [2, 4, 3, 1]\nBecause segment 2 opens.", 4) == [0, 0, 0, 0]
    assert extract_order("The order is 2, 4, 3 and then 1.", 4) == [2, 4, 3, 1]
    assert extract_order("Answer: 2431", 4) == [2, 4, 3, 1]  # JSON, but not a list
    assert extract_order("1 2 3 4 or maybe 2 4 3 1", 4) == [0, 0, 0, 0]  # several permutations fit
    assert extract_order("no digits", 4) == [0, 0, 0, 0]
    assert extract_order("[2, 4]", 4) == [2, 4]
    # only the text between the first and second "Answer:" is read (the reference's split(...)[1])
    assert extract_order("Answer: [1, 2, 3, 4] Answer: [2, 4, 3, 1]", 4) == [1, 2, 3, 4]
    assert extract_order("3 5 1 4 2", 5) == [3, 5, 1, 4, 2]


def test_score_by_hand():
    task, case = TSort(), hand_case()
    assert task.score(case.answer, case) == 1.0
    assert task.score(" [2, 4, 3, 1]\n\nThe story begins there.", case) == 1.0
    assert task.score(" [2, 4, 3, 1]\n\nSegment 2 comes first", case) == 0.0
    assert task.score("[2, 4, 1, 3]", case) == 0.0
    # the reference's zip would accept a prefix of the gold order, even []; here the whole order counts
    assert task.score("[2, 4]", case) == 0.0 and task.score("[]", case) == 0.0
    assert task.score("", case) == 0.0 and task.score("I could not find it.", case) == 0.0
    assert task.metrics("[1, 1, 2, 3]", case) == {"exact": 0.0, "followed": 0.0}
    assert task.metrics("[4, 3, 2, 1]", case) == {"exact": 0.0, "followed": 1.0}
    # exactly one of the 24 orders scores: chance is 1/24
    assert sum(task.score(json.dumps(list(p)), case) for p in itertools.permutations(range(1, 5))) == 1.0


# -- errors, registration, speed, model run ------------------------------------------------------------------


def test_errors(byte_tok, tmp_path):
    with pytest.raises(InputError, match="too short"):
        one_case(TSort(), byte_tok, 1000)
    small = tmp_path / "small.txt"
    small.write_text("One sentence here. Another one there.\n\nA third one.\n", encoding="utf-8")
    with pytest.raises(InputError, match="too short for"):
        one_case(TSort(TSortConfig(source=str(small))), byte_tok, 4096)
    from longctx.params import make_config

    with pytest.raises(ParameterError):
        make_config(TSortConfig, {"segments": "12"}, technique="ada-leval-tsort")


def test_registered():
    from longctx.registry import get_registry

    tech = get_registry().get("evaluation", "ada-leval-tsort")
    assert "2404.06480" in tech.paper
    task = tech.build(TSortConfig(), None)
    assert isinstance(task, EvalTask) and dict(task.tags) == {"diffusion": "high", "scope": "high"}
    assert task.depth_sensitive is False


def test_generation_time_32k_byte_tokenizer(byte_tok):
    one_case(TSort(), byte_tok, 4096)
    t0 = time.perf_counter()
    case = one_case(TSort(), byte_tok, 32768, seed=1)
    assert time.perf_counter() - t0 < 2.0  # target < 1 s
    assert 32768 * 0.98 <= case.actual_tokens <= 32768


def test_tiny_llama_run(tiny, tmp_path):
    task = TSort(TSortConfig(segments=2, max_new_tokens=6))
    with compose(tiny("llama", max_position_embeddings=2600), None) as pipe:
        rows = run_eval({"p": pipe}, {"tsort": task}, lengths=[2500], out_dir=tmp_path)
    (row,) = rows
    assert row["error"] is None and row["score"] in (0.0, 1.0)
    assert set(row["metrics"]) == {"exact", "followed"}


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
def test_gemma_tokenizer_lengths_and_32k_time(gemma_tok, novel):
    task = TSort()
    for length in (2048, 8192):
        case = one_case(task, gemma_tok, length, seed=2)
        measured = count_prompt_tokens(gemma_tok, case.prompt) + case.max_new_tokens
        assert case.actual_tokens == measured and length * 0.98 <= measured <= length
        before, segs, after = parts(case)
        assert flat(" ".join([before, *(segs[d - 1] for d in case.meta["gold"]), after])) in novel
    t0 = time.perf_counter()
    case = one_case(task, gemma_tok, 32768, seed=1)
    seconds = time.perf_counter() - t0
    print(f"\none 32k-token ada-leval-tsort case with the Gemma tokenizer: {seconds:.3f} s")
    assert 32768 * 0.98 <= case.actual_tokens <= 32768 and seconds < 3.0
