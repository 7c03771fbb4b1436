"""Needle threading: the haystack and question strings, needles present and unique, threads that really
chain in their direction, conditional keys, length fitting, determinism, the scorers by hand,
registration, and a tiny-Llama run."""

from __future__ import annotations

import json
import re

import pytest

from longctx.errors import InputError, ParameterError
from longctx.evaluate import count_prompt_tokens, run_eval
from longctx.hooks.evaluation import EvalTask
from longctx.params import make_config
from longctx.plugins.needle_threading import (
    TASKS,
    ConditionalNeedle,
    ConditionalNeedleConfig,
    MultiNeedle,
    MultiNeedleConfig,
    MultiThread,
    MultiThreadConfig,
    SingleNeedle,
    SingleThread,
    SingleThreadConfig,
    format_haystack,
    prefix_match,
    values_found,
)

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PAIR_BYTES = len('"00000000-0000-0000-0000-000000000000": "00000000-0000-0000-0000-000000000000", ')


def one(task, tok, length=2048, depth=0.5, seed=0):
    (case,) = task.cases(tok, length=length, depth=depth, seed=seed)
    return case


def haystack(case) -> list[tuple[str, str]]:
    """The JSON object (the prompt's first line) as ordered pairs; every key distinct."""
    line = case.prompt.split("\n", 1)[0]
    pairs = json.loads(line, object_pairs_hook=lambda p: p)
    assert len({k for k, _ in pairs}) == len(pairs) == case.meta["num_pairs"]
    assert line == format_haystack(pairs)
    return pairs


def follow(pairs: list[tuple[str, str]], key: str) -> tuple[str, list[int]]:
    """Follow a thread from ``key`` until the value is not a key: the final value and the pair indices."""
    index = {k: i for i, (k, _) in enumerate(pairs)}
    path = []
    while key in index:
        path.append(index[key])
        key = pairs[index[key]][1]
    return key, path


# -- the haystack and the single needle ----------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0.0, 0.3, 1.0])
def test_single_needle_prompt_is_the_datasets(byte_tok, depth):
    case = one(SingleNeedle(), byte_tok, 2048, depth)
    pairs = haystack(case)
    key = case.meta["key"]
    question = (
        f'Extract the value corresponding to the specified key in the JSON object. Key: "{key}"\n Corresponding value: '
    )
    assert case.prompt == format_haystack(pairs) + "\n" + question
    i = round(depth * (len(pairs) - 1))
    assert pairs[i] == (key, case.answer) and case.meta["needle_index"] == i
    assert case.prompt.count(key) == 2 and case.prompt.count(case.answer) == 1
    assert all(UUID.fullmatch(u) for p in pairs for u in p)
    assert len({u for p in pairs for u in p}) == 2 * len(pairs)  # values distinct from keys too
    assert case.query == question and case.references == (case.answer,)


def test_multi_needle_keys_present_once_in_random_or_clustered_pairs(byte_tok):
    case = one(MultiNeedle(), byte_tok, 4096)
    pairs = haystack(case)
    keys = case.meta["keys"]
    assert len(set(keys)) == 3 and case.prompt.endswith(
        "Keys: [" + ", ".join(f'"{k}"' for k in keys) + "]\n Corresponding values: "
    )
    assert case.references == tuple(dict(pairs)[k] for k in keys)
    assert json.loads(case.answer) == list(case.references)
    assert all(case.prompt.count(v) == 1 for v in case.references)
    clustered = MultiNeedle(MultiNeedleConfig(placement="clustered", num_needles=4))
    assert clustered.depth_sensitive and not MultiNeedle().depth_sensitive
    c = one(clustered, byte_tok, 4096, 0.25)
    k = c.meta["num_pairs"]
    first = round(0.25 * (k - 4))
    assert sorted(c.meta["needle_indices"]) == list(range(first, first + 4))


def test_conditional_needles_are_exactly_the_marked_keys(byte_tok):
    task = ConditionalNeedle(ConditionalNeedleConfig(num_needles=4, character="&"))
    case = one(task, byte_tok, 4096)
    pairs = haystack(case)
    marked = [(k, v) for k, v in pairs if "&" in k]
    assert len(marked) == 4 and [k for k, _ in marked] == case.meta["keys"]
    assert tuple(v for _, v in marked) == case.references
    for k, _ in marked:
        assert k.count("&") == 1 and UUID.fullmatch(k.replace("&", "0"))  # one hex digit replaced
        assert len(k) == 36 and [i for i, ch in enumerate(k) if ch == "-"] == [8, 13, 18, 23]
    assert all(UUID.fullmatch(k) for k, _ in pairs if "&" not in k)
    assert case.prompt.endswith(
        'Extract the values corresponding to all keys that contain the character "&" in the JSON object.\n'
        " Corresponding values: "
    )
    with pytest.raises(ParameterError):
        make_config(ConditionalNeedleConfig, {"character": "a"}, technique="threading-conditional-needle")
    with pytest.raises(ParameterError):
        make_config(ConditionalNeedleConfig, {"character": "**"}, technique="threading-conditional-needle")


# -- threads ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["forward", "backward"])
@pytest.mark.parametrize("depth", [0.0, 0.5, 1.0])
def test_single_thread_really_chains_in_its_direction(byte_tok, direction, depth):
    task = SingleThread(SingleThreadConfig(thread_length=4, direction=direction))
    case = one(task, byte_tok, 4096, depth, seed=2)
    pairs = haystack(case)
    final, path = follow(pairs, case.meta["key"])
    assert final == case.answer and path == case.meta["thread_indices"] and len(path) == 4
    assert path == (sorted(path) if direction == "forward" else sorted(path, reverse=True))
    k = len(pairs)
    assert path[0] == round(depth * (k - 4)) + (3 if direction == "backward" else 0)
    assert case.prompt.endswith(f'Key: "{case.meta["key"]}"\n Final value: ')
    # the thread's values are each used once as a key; the final value appears once
    assert case.prompt.count(case.answer) == 1


@pytest.mark.parametrize("direction", ["forward", "backward", "random"])
def test_multi_thread_threads_chain_and_do_not_touch(byte_tok, direction):
    task = MultiThread(MultiThreadConfig(num_threads=3, thread_length=3, direction=direction))
    case = one(task, byte_tok, 4096, seed=5)
    pairs = haystack(case)
    paths = []
    for start, final, d, spots in zip(
        case.meta["keys"], case.references, case.meta["directions"], case.meta["thread_indices"], strict=True
    ):
        got, path = follow(pairs, start)
        assert got == final and path == spots
        assert path == sorted(path, reverse=d == "backward")
        paths += path
    assert len(set(paths)) == 9  # threads share no pair
    if direction != "random":
        assert set(case.meta["directions"]) == {direction}


# -- length, determinism, errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", TASKS)
@pytest.mark.parametrize("length", [2048, 4096])
def test_length_within_one_pair_of_the_target(byte_tok, cls, length):
    case = one(cls(), byte_tok, length, 0.4, seed=1)
    measured = count_prompt_tokens(byte_tok, case.prompt) + case.max_new_tokens
    assert case.actual_tokens == measured and case.target_tokens == length
    assert measured <= length and length - measured <= max(0.02 * length, PAIR_BYTES)


@pytest.mark.parametrize("cls", TASKS)
def test_deterministic_and_seed_dependent(byte_tok, cls):
    a = one(cls(), byte_tok, 2048, 0.5, seed=4)
    assert a == one(cls(), byte_tok, 2048, 0.5, seed=4)
    assert one(cls(), byte_tok, 2048, 0.5, seed=5).answer != a.answer


def test_too_short_is_an_input_error(byte_tok):
    with pytest.raises(InputError, match="threading-multi-thread: a length of 300 tokens is too short"):
        one(MultiThread(), byte_tok, 300)


# -- scoring ---------------------------------------------------------------------------------------------------


def test_prefix_match_is_the_readme_rule():
    v = "1759edc3-72ae-2244-8b01-63c1cd9d2b7d"
    assert prefix_match(v, v) == 1.0
    assert prefix_match(f' "{v}"\n', v) == 1.0  # quotes dropped (the README literal_evals the response)
    assert prefix_match(f"['{v}']", v) == 1.0
    assert prefix_match(f"{v} and more", v) == 1.0
    assert prefix_match(f"The value is {v}", v) == 0.0  # the answer must come first
    assert prefix_match(v.upper(), v) == 0.0  # exact
    assert prefix_match(v[:-1], v) == 0.0
    assert prefix_match("", v) == 0.0


def test_multi_value_scores_by_hand(byte_tok):
    case = one(MultiNeedle(), byte_tok, 4096)
    a, b, c = case.references
    assert values_found(f"{a}, {c}", case.references) == [True, False, True]
    assert MultiNeedle().score(f'["{a}", "{c}"]', case) == pytest.approx(2 / 3)
    assert MultiNeedle().metrics(f"{a} {c}", case) == {"fraction": pytest.approx(2 / 3), "all": 0.0}
    assert MultiNeedle().score(f"{c} {b} {a}", case) == 1.0  # order is free
    assert MultiNeedle(MultiNeedleConfig(aggregate="all")).score(f"{a} {c}", case) == 0.0
    assert MultiNeedle(MultiNeedleConfig(aggregate="all")).score(case.answer, case) == 1.0
    assert MultiNeedle().score(a[:-1] + "0" if a[-1] != "0" else a[:-1] + "1", case) == 0.0
    assert MultiNeedle().score(a.upper(), case) == 0.0


# -- registration and a tiny model -----------------------------------------------------------------------------


def test_registered_with_tags():
    from longctx.registry import get_registry

    reg = get_registry()
    expected = {
        "threading-single-needle": ("low", "low"),
        "threading-multi-needle": ("low", "high"),
        "threading-conditional-needle": ("high", "high"),
        "threading-single-thread": ("high", "low"),
        "threading-multi-thread": ("high", "high"),
    }
    for name, (diffusion, scope) in expected.items():
        tech = reg.get("evaluation", name)
        assert tech.plugin == "needle-threading" and "2411.05000" in tech.paper
        task = tech.build(tech.config(), None)
        assert isinstance(task, EvalTask) and dict(task.tags) == {"diffusion": diffusion, "scope": scope}


def test_tiny_llama_run(tiny):
    import longctx

    lm = tiny("llama", max_position_embeddings=2048)
    task = SingleThread(SingleThreadConfig(max_new_tokens=6))
    with longctx.compose(lm, None) as pipe:
        (row,) = run_eval({"base": pipe}, {"threading-single-thread": task}, lengths=[1024], depths=[0.5])
    assert row["error"] is None and row["score"] in (0.0, 1.0) and row["prompt_tokens"] == row["actual_tokens"] - 6
