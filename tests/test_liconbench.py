"""LIConBench (LongICLBench) with synthetic labels: the label space, learnability from the prompt alone,
round-robin demonstrations, the prompt template, length fitting, shared contexts, determinism, the
reference's answer normalisation and accuracy by hand, registration, and one tiny-llama run."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from longctx.errors import InputError, ParameterError
from longctx.evaluate import count_prompt_tokens
from longctx.plugins.liconbench import (
    CATEGORIES,
    INSTRUCTION,
    TEMPLATES,
    Liconbench,
    LiconbenchConfig,
    make_label_space,
    normalize_prediction,
)

DEMO = re.compile(r"service query: (.*)\nintent category: (\S+)\n")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text)


def demos_of(prompt: str) -> list[tuple[str, str]]:
    return DEMO.findall(prompt)


def test_question(prompt: str) -> str:
    return prompt.rsplit("service query: ", 1)[1].split("\n", 1)[0]


test_question.__test__ = False  # a helper, not a test


def classify(prompt: str) -> str:
    """A keyword-overlap learner that sees only the prompt: the label whose demonstrations share the most
    words with the test query, counting only words seen with a single label (ties: none)."""
    vocab: dict[str, Counter] = {}
    for text, label in demos_of(prompt):
        vocab.setdefault(label, Counter()).update(set(words(text)))
    query = set(words(test_question(prompt)))
    shared = {w for w in query if sum(w in c for c in vocab.values()) > 1}  # not diagnostic of one label
    scores = {label: sum(1 for w in query - shared if w in c) for label, c in vocab.items()}
    best = max(scores.values())
    winners = [label for label, s in scores.items() if s == best]
    return winners[0] if len(winners) == 1 else ""


class WordTokenizer:
    """A second, cheap tokenizer: one token per word or punctuation mark, plus BOS."""

    def encode(self, text):
        return [0, *range(len(re.findall(r"\w+|[^\w\s]", text)))]


def cases_of(task, tok, length, seed=0):
    return list(task.cases(tok, length=length, depth=0.5, seed=seed))


# -- the label space --------------------------------------------------------------------------------------


def test_label_space_is_disjoint_and_learnable():
    space = make_label_space(random.Random(0), 77, 5)
    assert len(space.labels) == len(set(space.labels)) == 77
    assert all(re.fullmatch(r"[a-z]+_[a-z]+", label) for label in space.labels)
    kws = [w for ks in space.keywords for w in ks]
    assert len(kws) == len(set(kws)) == 77 * 5  # disjoint prototypes
    label_words = {w for label in space.labels for w in label.split("_")}
    template_words = {w for t in TEMPLATES for w in re.findall(r"[a-z]+", t)}
    assert not set(kws) & (label_words | template_words)
    rng = random.Random(1)
    for label in range(0, 77, 7):
        a = set(words(space.example(label, rng, 3)))
        b = set(words(space.example(label, rng, 3)))
        # 3 of 5 keywords each: any two examples of a label share a keyword (pigeonhole)
        assert a & b & set(space.keywords[label])
        others = {w for i, ks in enumerate(space.keywords) if i != label for w in ks}
        assert not a & others


@pytest.mark.parametrize("length", [8192, 20000])
def test_learnable_from_the_prompt_alone(byte_tok, length):
    task = Liconbench()
    for seed in range(4):
        (case,) = cases_of(task, byte_tok, length, seed)
        assert classify(case.prompt) == case.answer
        assert case.answer in {label for _, label in demos_of(case.prompt)}  # the test label is demonstrated
        assert case.answer in case.prompt


# -- demonstrations, template, lengths ----------------------------------------------------------------------


def test_round_robin_and_prefix_extension(byte_tok):
    task = Liconbench(LiconbenchConfig(num_labels=20))
    (short,) = cases_of(task, byte_tok, 4096, seed=3)
    (long,) = cases_of(task, byte_tok, 16384, seed=3)
    d_short, d_long = demos_of(short.prompt), demos_of(long.prompt)
    assert d_long[: len(d_short)] == d_short  # a longer context only adds rounds
    labels = [label for _, label in d_long]
    assert len(set(labels[:20])) == 20  # round 1: every label once
    assert all(labels[i] == labels[i + 20] for i in range(len(labels) - 20))  # the same order every round
    assert long.meta["demonstrations"] == len(d_long) and long.meta["labels_shown"] == 20
    assert short.meta["labels_shown"] == min(20, len(d_short))


def test_prompt_template_is_longiclbenchs(byte_tok):
    (case,) = cases_of(Liconbench(), byte_tok, 8192)
    assert case.prompt.startswith(INSTRUCTION + " The examples are as follows: \nservice query: ")
    assert case.prompt.endswith(f"service query: {case.meta['query_text']}\nintent category:")
    assert case.query == f"service query: {case.meta['query_text']}"
    assert case.max_new_tokens == 100
    (inst,) = cases_of(Liconbench(LiconbenchConfig(num_labels=10, with_instruction=True)), byte_tok, 4096)
    head = inst.prompt.split(" The examples are as follows: \n")[0]
    assert head.startswith(INSTRUCTION + CATEGORIES)
    listed = head[len(INSTRUCTION + CATEGORIES) :].rstrip(".\n").split(", ")
    assert len(listed) == 10 and inst.answer in listed


@pytest.mark.parametrize("length", [8192, 16384, 32768])
def test_length_within_tolerance_in_two_tokenizers(byte_tok, length):
    for tok in (byte_tok, WordTokenizer()):
        (case,) = cases_of(Liconbench(), tok, length, seed=2)
        measured = count_prompt_tokens(tok, case.prompt) + case.max_new_tokens
        assert case.actual_tokens == measured
        assert length * 0.98 <= measured <= length


def test_shared_context_for_several_queries(byte_tok):
    task = Liconbench(LiconbenchConfig(n_queries=4, num_labels=30))
    cases = cases_of(task, byte_tok, 8192, seed=5)
    assert len(cases) == 4 and len({c.id for c in cases}) == 4
    ctx = cases[0].context
    assert ctx and ctx.endswith("\n") and all(c.context == ctx and c.prompt.startswith(ctx) for c in cases)
    for c in cases:
        assert c.prompt[len(ctx) :] == f"service query: {c.meta['query_text']}\nintent category:"
        assert c.actual_tokens <= 8192 and classify(c.prompt) == c.answer


def test_deterministic_and_different_across_seeds(byte_tok):
    a = cases_of(Liconbench(), byte_tok, 8192, seed=7)
    assert a == cases_of(Liconbench(), byte_tok, 8192, seed=7)
    answers = {cases_of(Liconbench(), byte_tok, 8192, seed=s)[0].answer for s in range(5)}
    assert len(answers) == 5


def test_too_short_and_bad_params(byte_tok):
    with pytest.raises(InputError, match="liconbench: a length of 200 tokens is too short"):
        cases_of(Liconbench(), byte_tok, 200)
    from longctx.params import make_config

    with pytest.raises(ParameterError, match="per_example"):
        make_config(LiconbenchConfig, {"per_example": "6"}, technique="liconbench")
    with pytest.raises(ParameterError):
        make_config(LiconbenchConfig, {"num_labels": "1"}, technique="liconbench")


# -- scoring ----------------------------------------------------------------------------------------------


def test_normalize_prediction_by_hand():
    q = "my cat and dog stopped working"
    assert normalize_prediction(" brisk_harbor\nservice query: next one", q) == "brisk_harbor"
    assert normalize_prediction("Brisk_Harbor  ", q) == "brisk_harbor"
    assert normalize_prediction("service query: x", q) == ""
    # the model echoed the test query: what follows "intent category:" counts
    assert normalize_prediction(f"{q}\nintent category: calm_lake\nservice query: z", q) == "calm_lake"
    assert normalize_prediction(f"{q} calm_lake\nmore", q) == "calm_lake"
    assert normalize_prediction("", q) == ""


def test_score_by_hand(byte_tok):
    task = Liconbench()
    (case,) = cases_of(task, byte_tok, 8192)
    gold = case.answer
    assert task.score(gold, case) == 1.0
    assert task.score(f" {gold.upper()}\nservice query: what", case) == 1.0
    assert task.score(f"{gold} because", case) == 0.0  # exact match of the first line
    assert task.score("", case) == 0.0 and task.score("I could not find it.", case) == 0.0
    other = next(label for _, label in demos_of(case.prompt) if label != gold)
    assert task.score(other, case) == 0.0


# -- registration and a run ------------------------------------------------------------------------------


def test_registered_with_tags():
    from longctx.evaluate import load_tasks
    from longctx.hooks.evaluation import EvalTask
    from longctx.registry import get_registry

    reg = get_registry()
    tech = reg.get("evaluation", "liconbench")
    assert "2404.02060" in tech.paper and tech.plugin == "liconbench"
    task = tech.build(LiconbenchConfig(), None)
    assert isinstance(task, EvalTask) and task.depth_sensitive is False
    assert dict(task.tags) == {"diffusion": "high", "scope": "high"}
    assert load_tasks(["liconbench:num_labels=28"], reg)["liconbench:num_labels=28"].config.num_labels == 28


def test_tiny_llama_run_eval_reuses_the_context(tiny, tmp_path):
    from longctx.evaluate import run_eval
    from longctx.runtime import compose

    task = Liconbench(LiconbenchConfig(num_labels=6, n_queries=2, max_new_tokens=8))
    model = tiny("llama", max_position_embeddings=1024)
    with compose(model, None) as pipe:
        rows = run_eval({"default": pipe}, {"liconbench": task}, lengths=[1024], out_dir=tmp_path)
    assert len(rows) == 2
    for row in rows:
        assert row["error"] is None and row["score"] in (0.0, 1.0)
        assert row["prompt_tokens"] + 8 == row["actual_tokens"] <= 1024
    assert rows[1]["reused_tokens"] > 0  # the second query reused the prefilled demonstrations
