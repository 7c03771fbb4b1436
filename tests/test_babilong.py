"""BABILong qa1–qa5: the bAbI simulator against an independent solver that reads only the fact sentences,
the prompt template, length fitting, fact placement and depth, determinism, the label-set scorer by hand,
registration, and one tiny-llama run through run_eval."""

from __future__ import annotations

import random
import re

import pytest

from longctx.errors import InputError, ParameterError
from longctx.evaluate import count_prompt_tokens
from longctx.plugins.babilong import (
    DEFAULT_PROMPTS,
    LOCATIONS,
    TASK_LABELS,
    Babilong,
    BabilongConfig,
    compare_answers,
    make_story,
    preprocess_output,
    spread_depths,
)

TASKS = ("qa1", "qa2", "qa3", "qa4", "qa5")

# -- an independent solver: regexes over the sentences, a replay of the world ----------------------------

MOVE = re.compile(r"^(\w+) (?:moved to|went to|journeyed to|travelled to|went back to) the (\w+)\.$")
GRAB = re.compile(r"^(\w+) (?:picked up|got|grabbed|took) the (\w+) there\.$")
DROP = re.compile(r"^(\w+) (?:dropped|discarded|put down|left) the (\w+)\.$")
GIVE = re.compile(r"^(\w+) (?:gave|handed|passed) the (\w+) to (\w+)\.$")
REL = re.compile(r"^The (\w+) is (north|south|east|west) of the (\w+)\.$")
FACT = re.compile(
    r"(?:\b[A-Z]\w+ (?:moved to|went to|journeyed to|travelled to|went back to) the \w+\."
    r"|\b[A-Z]\w+ (?:picked up|got|grabbed|took) the \w+ there\."
    r"|\b[A-Z]\w+ (?:dropped|discarded|put down|left) the \w+\."
    r"|\b[A-Z]\w+ (?:gave|handed|passed) the \w+ to \w+\."
    r"|The \w+ is (?:north|south|east|west) of the \w+\.)"
)


def solve(facts: list[str], question: str) -> str | set[str]:
    """The answer to ``question`` from ``facts`` alone; a set when the question is ambiguous."""
    loc: dict[str, str] = {}
    holder: dict[str, str | None] = {}
    lies: dict[str, str] = {}
    trail: dict[str, list[str]] = {}
    gives: list[tuple[str, str, str]] = []
    rel: set[tuple[str, str, str]] = set()
    opposite = {"north": "south", "south": "north", "east": "west", "west": "east"}

    def visit(obj: str, room: str) -> None:
        t = trail.setdefault(obj, [])
        if not t or t[-1] != room:
            t.append(room)

    for f in facts:
        if m := MOVE.match(f):
            p, room = m.groups()
            loc[p] = room
            for o, h in holder.items():
                if h == p:
                    visit(o, room)
        elif m := GRAB.match(f):
            p, o = m.groups()
            holder[o] = p
            visit(o, loc[p])
        elif m := DROP.match(f):
            p, o = m.groups()
            assert holder.get(o) == p, f"{p} drops the {o} without holding it"
            holder[o] = None
            lies[o] = loc[p]
        elif m := GIVE.match(f):
            p, o, q = m.groups()
            assert holder.get(o) == p and loc[p] == loc[q], f"invalid give: {f}"
            holder[o] = q
            gives.append((p, o, q))
        elif m := REL.match(f):
            a, d, b = m.groups()
            rel |= {(a, d, b), (b, opposite[d], a)}
        else:
            raise AssertionError(f"not a fact: {f!r}")

    def one(xs: list[str]) -> str | set[str]:
        return xs[0] if len(set(xs)) == 1 else set(xs)

    if m := re.fullmatch(r"Where is (\w+)\?", question):
        return loc[m.group(1)]
    if m := re.fullmatch(r"Where is the (\w+)\?", question):
        o = m.group(1)
        return loc[holder[o]] if holder.get(o) else lies[o]
    if m := re.fullmatch(r"Where was the (\w+) before the (\w+)\?", question):
        t = trail[m.group(1)]
        assert t[-1] == m.group(2) and t.count(t[-1]) == 1
        return t[-2]
    if m := re.fullmatch(r"What is (\w+) of the (\w+)\?", question):
        return one([x for x, d, y in rel if d == m.group(1) and y == m.group(2)])
    if m := re.fullmatch(r"What is the (\w+) (\w+) of\?", question):
        return one([y for x, d, y in rel if x == m.group(1) and d == m.group(2)])
    if m := re.fullmatch(r"What did (\w+) give to (\w+)\?", question):
        return one([o for p, o, q in gives if p == m.group(1) and q == m.group(2)])
    if m := re.fullmatch(r"Who gave the (\w+) to (\w+)\?", question):
        return one([p for p, o, q in gives if o == m.group(1) and q == m.group(2)])
    if m := re.fullmatch(r"Who did (\w+) give the (\w+) to\?", question):
        return one([q for p, o, q in gives if p == m.group(1) and o == m.group(2)])
    if m := re.fullmatch(r"Who gave the (\w+)\?", question):
        return one([p for p, o, q in gives if o == m.group(1)])
    if m := re.fullmatch(r"Who received the (\w+)\?", question):
        return one([q for p, o, q in gives if o == m.group(1)])
    raise AssertionError(f"unknown question {question!r}")


def one_case(task, tok, length, depth=0.5, seed=0):
    cases = list(task.cases(tok, length=length, depth=depth, seed=seed))
    assert len(cases) == 1
    return cases[0]


class WordTokenizer:
    """A second, cheap tokenizer: one token per word or punctuation mark, plus BOS."""

    def encode(self, text):
        return [0, *range(len(re.findall(r"\w+|[^\w\s]", text)))]


# -- the simulator ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_simulator_answers_match_an_independent_solver(task):
    for seed in range(60):
        story = make_story(task, random.Random(seed))
        facts = [f.text for f in story.facts]
        assert solve(facts, story.question) == story.answer, (seed, facts, story.question)
        assert story.answer in TASK_LABELS[task]
        # the supporting facts are real facts and (except for qa3's "before") one of them names the answer
        assert story.supporting and all(0 <= i < len(facts) for i in story.supporting)
        assert any(story.answer in facts[i] for i in story.supporting)


def test_story_shapes_follow_babi():
    s1 = make_story("qa1", random.Random(1))
    assert len(s1.facts) == 10 and all(f.kind == "move" for f in s1.facts)
    s4 = make_story("qa4", random.Random(1))
    assert len(s4.facts) == 2 and all(REL.match(f.text) for f in s4.facts)
    s2 = make_story("qa2", random.Random(2), 8)
    assert len(s2.facts) == 8 and s2.question.startswith("Where is the ")
    kinds = {f.kind for s in range(20) for f in make_story("qa5", random.Random(s)).facts}
    assert kinds == {"move", "grab", "drop", "give"}
    with pytest.raises(InputError, match="at least 3"):
        make_story("qa3", random.Random(0), 2)


def test_qa3_supporting_facts_are_three_and_qa2_two():
    for seed in range(20):
        assert len(make_story("qa3", random.Random(seed)).supporting) == 3
        assert len(make_story("qa2", random.Random(seed)).supporting) == 2


# -- cases ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_prompt_holds_the_facts_in_order_and_the_answer_follows_from_them(byte_tok, task):
    t = Babilong(task)
    case = one_case(t, byte_tok, 4096, seed=3)
    context = case.prompt.split("<context>\n", 1)[1].split("\n</context>", 1)[0]
    found = FACT.findall(context)
    assert found == case.meta["facts"]  # every fact, in order, and nothing in the prose looks like one
    assert solve(found, case.meta["question"]) == case.answer
    assert case.answer in case.prompt and case.answer in TASK_LABELS[task]
    assert t.score(case.answer, case) == 1.0


def test_prompt_template_is_babilongs(byte_tok):
    t = Babilong("qa1")
    case = one_case(t, byte_tok, 2048)
    p = DEFAULT_PROMPTS["qa1"]
    head = p["instruction"] + "\n\n" + p["post_prompt"] + "\n<context>\n"
    assert case.prompt.startswith(head)
    assert case.prompt.endswith(f"\n</context>\nQuestion: {case.meta['question']}\nAnswer:")
    assert case.query == f"Question: {case.meta['question']}"
    # verbatim reference strings, quirks included
    assert p["post_prompt"].endswith("Do not write anything else after that. ")
    assert "and a question.You need" in DEFAULT_PROMPTS["qa2"]["instruction"]
    assert "$location_1&" in DEFAULT_PROMPTS["qa3"]["post_prompt"]
    # examples on, instruction and post-prompt off
    cfg = BabilongConfig(instruction=False, examples=True, post_prompt=False, answer_prefix=False)
    alt = one_case(Babilong("qa5", cfg), byte_tok, 2048)
    assert alt.prompt.startswith(DEFAULT_PROMPTS["qa5"]["examples"] + "\n\n<context>\n")
    assert alt.prompt.endswith(f"</context>\nQuestion: {alt.meta['question']}")


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("length", [2048, 4096])
def test_length_within_tolerance_in_two_tokenizers(byte_tok, task, length):
    for tok in (byte_tok, WordTokenizer()):
        case = one_case(Babilong(task), tok, length, seed=1)
        measured = count_prompt_tokens(tok, case.prompt) + case.max_new_tokens
        assert case.actual_tokens == measured
        assert length * 0.99 <= measured <= length
        assert case.max_new_tokens == 20


def test_window_puts_facts_around_the_depth(byte_tok):
    t = Babilong("qa2", BabilongConfig(window=0.2))
    assert t.depth_sensitive and not Babilong("qa2").depth_sensitive
    for depth, (lo, hi) in ((0.0, (0.0, 0.2)), (0.25, (0.15, 0.35)), (0.5, (0.4, 0.6)), (1.0, (0.8, 1.0))):
        case = one_case(t, byte_tok, 4096, depth=depth, seed=2)
        assert case.meta["window"] == pytest.approx([lo, hi])
        depths = case.meta["fact_depths"]
        assert depths == sorted(depths)
        assert all(lo - 0.03 <= d <= hi + 0.03 for d in depths), (depth, depths)
    # the default window spreads the facts over the whole background
    spread = one_case(Babilong("qa3"), byte_tok, 8192, seed=2).meta["fact_depths"]
    assert min(spread) < 0.2 and max(spread) > 0.8


def test_spread_depths_by_hand():
    assert spread_depths([0.0, 0.5, 1.0], 0.5, 1.0) == ([0.0, 0.5, 1.0], (0.0, 1.0))
    fr, win = spread_depths([0.0, 0.5, 1.0], 0.9, 0.4)
    assert win == pytest.approx((0.6, 1.0)) and fr == pytest.approx([0.6, 0.8, 1.0])
    with pytest.raises(InputError):
        spread_depths([0.1], 1.5, 0.2)


def test_deterministic_and_paired_across_lengths(byte_tok):
    t = Babilong("qa2")
    a = one_case(t, byte_tok, 4096, seed=7)
    assert a == one_case(Babilong("qa2"), byte_tok, 4096, seed=7)
    b = one_case(t, byte_tok, 2048, seed=7)
    assert b.meta["facts"] == a.meta["facts"] and b.answer == a.answer  # one seed, one story at every length
    stories = {tuple(one_case(t, byte_tok, 2048, seed=s).meta["facts"]) for s in range(6)}
    assert len(stories) == 6


def test_too_short_and_bad_params(byte_tok):
    with pytest.raises(InputError, match="babilong-qa3: a length of 600 tokens is too short"):
        one_case(Babilong("qa3"), byte_tok, 600)
    from longctx.params import make_config

    with pytest.raises(ParameterError):
        make_config(BabilongConfig, {"window": "0"}, technique="babilong-qa1")
    with pytest.raises(InputError):
        one_case(Babilong("qa1"), byte_tok, 2048, depth=1.5)


# -- scoring (compare_answers) by hand ----------------------------------------------------------------------


def test_preprocess_output_by_hand():
    assert preprocess_output("The Kitchen. Then the garden") == "the kitchen"
    assert preprocess_output("garden<context>kitchen") == "garden"
    assert preprocess_output("garden <example> kitchen") == "garden "
    # the reference cuts at "Question" after lower-casing: it never fires
    assert preprocess_output("garden Question kitchen") == "garden question kitchen"


def test_compare_answers_by_hand():
    labels = TASK_LABELS["qa1"]
    q = "Where is Mary?"
    assert compare_answers("bathroom", "The most recent location of Mary is bathroom.", q, labels)
    assert compare_answers("bathroom", "BATHROOM", q, labels)
    assert not compare_answers("bathroom", "bathroom or kitchen", q, labels)  # two labels
    assert not compare_answers("bathroom", "kitchen. bathroom", q, labels)  # first sentence only
    assert not compare_answers("bathroom", "", q, labels)
    assert not compare_answers("bathroom", "I could not find it.", q, labels)
    # labels mentioned in the question never count
    q3 = "Where was the apple before the kitchen?"
    assert compare_answers("bathroom", "Before the kitchen the apple was in the bathroom.", q3, labels)
    assert not compare_answers("kitchen", "kitchen", q3, labels)
    q5 = "Who gave the milk to Fred?"
    assert compare_answers("Jeff", "Jeff gave the milk to Fred", q5, TASK_LABELS["qa5"])
    assert not compare_answers("Jeff", "Bill", q5, TASK_LABELS["qa5"])
    assert TASK_LABELS["qa1"] == frozenset(LOCATIONS)
    assert TASK_LABELS["qa5"] == frozenset({"Bill", "Fred", "Jeff", "Mary", "apple", "football", "milk"})


def test_score_uses_the_case_question(byte_tok):
    t = Babilong("qa1")
    case = one_case(t, byte_tok, 2048, seed=4)
    person = case.meta["question"].split()[-1].rstrip("?")
    assert t.score(f"The most recent location of {person} is {case.answer}.", case) == 1.0
    other = next(r for r in LOCATIONS if r != case.answer)
    assert t.score(f"The most recent location of {person} is {other}.", case) == 0.0


# -- registration and a run ------------------------------------------------------------------------------


def test_registered_with_tags():
    from longctx.evaluate import load_tasks
    from longctx.hooks.evaluation import EvalTask
    from longctx.registry import get_registry

    reg = get_registry()
    tags = {}
    for task in TASKS:
        tech = reg.get("evaluation", f"babilong-{task}")
        assert "2406.10149" in tech.paper and tech.plugin == "babilong"
        built = tech.build(BabilongConfig(), None)
        assert isinstance(built, EvalTask) and built.name == f"babilong-{task}"
        tags[task] = dict(built.tags)
    assert tags["qa1"] == {"diffusion": "low", "scope": "low"}
    assert tags["qa3"] == {"diffusion": "high", "scope": "low"}
    tasks = load_tasks(["babilong-qa2:window=0.5"], reg)
    assert tasks["babilong-qa2:window=0.5"].config.window == 0.5


def test_tiny_llama_run_eval(tiny, tmp_path):
    from longctx.evaluate import run_eval
    from longctx.runtime import compose

    model = tiny("llama", max_position_embeddings=1024)
    with compose(model, None) as pipe:
        rows = run_eval({"default": pipe}, {"babilong-qa4": Babilong("qa4")}, lengths=[1024], out_dir=tmp_path)
    assert len(rows) == 1
    row = rows[0]
    assert row["error"] is None and row["score"] in (0.0, 1.0)
    assert row["prompt_tokens"] + 20 == row["actual_tokens"] <= 1024
    assert (tmp_path / "results.jsonl").exists()
