"""kv-retrieval (lost in the middle / HELMET json_kv): the exact prompt templates, the gold record present
once at its depth, length fitting, determinism, several keys over one shared context, both reference
scorers by hand, registration, and a tiny-Llama run that reuses the prefilled context."""

from __future__ import annotations

import json
import re

import pytest

from longctx.errors import InputError, ParameterError
from longctx.evaluate import ChatTokenizer, count_prompt_tokens, load_tasks, run_eval
from longctx.hooks.evaluation import EvalTask
from longctx.params import make_config
from longctx.plugins.kv_retrieval import (
    INSTRUCTION,
    KVRetrieval,
    KVRetrievalConfig,
    format_records,
    gold_indices,
    litm_accuracy,
    normalize_answer,
    substring_exact_match,
)

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def cases(task, tok, length, depth=0.5, seed=0):
    return list(task.cases(tok, length=length, depth=depth, seed=seed))


def parse_records(prompt: str) -> list[tuple[str, str]]:
    """The JSON object after ``JSON data:`` in the prompt, as ordered pairs (the reference's format is
    valid JSON)."""
    start = prompt.index("JSON data:\n") + len("JSON data:\n")
    end = prompt.index("}", start) + 1
    return list(json.loads(prompt[start:end], object_pairs_hook=lambda pairs: pairs))


# -- generator ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0.0, 0.25, 0.5, 1.0])
def test_lost_in_the_middle_template_and_gold_record(byte_tok, depth):
    (case,) = cases(KVRetrieval(), byte_tok, 2048, depth)
    records = parse_records(case.prompt)
    k = case.meta["num_pairs"]
    key = case.meta["key"]
    # the exact template: instruction, blank line, JSON data, blank line, key, answer prefix
    expected = INSTRUCTION + "\n\nJSON data:\n" + format_records(records) + f'\n\nKey: "{key}"\nCorresponding value:'
    assert case.prompt == expected
    assert (
        format_records(records[:2])
        == f'{{"{records[0][0]}": "{records[0][1]}",\n "{records[1][0]}": "{records[1][1]}"}}'
    )
    # k distinct uuid keys and values, the gold one at round(depth·(k−1))
    assert len(records) == k and len({u for r in records for u in r}) == 2 * k
    assert all(re.fullmatch(UUID, u) for r in records for u in r)
    i = round(depth * (k - 1))
    assert case.meta["gold_index"] == i and records[i] == (key, case.answer)
    assert case.prompt.count(key) == 2 and case.prompt.count(case.answer) == 1
    assert case.references == (case.answer,) and case.depth == depth
    assert case.query == f'Key: "{key}"\nCorresponding value:' and case.prompt.endswith(case.query)
    assert case.context is None and case.max_new_tokens == 100


def test_helmet_template_context_first_with_demonstrations(byte_tok):
    task = KVRetrieval(KVRetrievalConfig(template="helmet"))
    (case,) = cases(task, byte_tok, 2048, 0.5)
    records = parse_records(case.prompt)
    key = case.meta["key"]
    demos = [(k, dict(records)[k]) for k in case.meta["demo_keys"]]
    assert len(demos) == 2 and key not in case.meta["demo_keys"]
    demo_text = "".join(f'Key: "{k}"\nCorresponding value: {v}\n\n' for k, v in demos)
    expected = (
        "JSON data:\n" + format_records(records) + "\n\n" + INSTRUCTION + "\n\n" + demo_text
        + f'Key: "{key}"\nCorresponding value:'
    )  # fmt: skip
    assert case.prompt == expected
    assert dict(records)[key] == case.answer


def test_gold_indices():
    assert gold_indices(11, 0.5, 1) == [5]
    assert gold_indices(11, 0.0, 1) == [0] and gold_indices(11, 1.0, 1) == [10]
    assert gold_indices(9, 0.3, 5) == [0, 2, 4, 6, 8]  # evenly spaced; depth is not used
    assert gold_indices(2, 0.5, 2) == [0, 1]


@pytest.mark.parametrize("template", ["lost-in-the-middle", "helmet"])
@pytest.mark.parametrize("length", [2048, 4096])
def test_length_fitted_within_one_record(byte_tok, template, length):
    task = KVRetrieval(KVRetrievalConfig(template=template))
    (case,) = cases(task, byte_tok, length, 0.3)
    measured = count_prompt_tokens(byte_tok, case.prompt) + case.max_new_tokens
    assert case.actual_tokens == measured and case.target_tokens == length
    record = len('"00000000-0000-0000-0000-000000000000": "00000000-0000-0000-0000-000000000000",\n ')
    assert measured <= length and length - measured <= max(0.02 * length, record)
    # the largest number of records that fits: one more would not
    more = task._prompts(byte_tok, [*parse_records(case.prompt), ("x" * 36, "y" * 36)], 0.3, 0)["prompts"][0]
    assert count_prompt_tokens(byte_tok, more) + case.max_new_tokens > length


def test_deterministic_and_prefix_stable(byte_tok):
    a = cases(KVRetrieval(), byte_tok, 2048, 0.5, seed=3)
    assert a == cases(KVRetrieval(), byte_tok, 2048, 0.5, seed=3)
    assert {cases(KVRetrieval(), byte_tok, 2048, 0.5, seed=s)[0].answer for s in range(5)}.__len__() == 5
    # a longer haystack extends a shorter one (same seed): the first records are the same
    short, long = (parse_records(cases(KVRetrieval(), byte_tok, n, 0.5, seed=3)[0].prompt) for n in (2048, 4096))
    assert long[: len(short)] == short and len(long) > len(short)


def test_too_short_is_an_input_error(byte_tok):
    with pytest.raises(InputError, match="kv-retrieval: a length of 200 tokens is too short"):
        cases(KVRetrieval(), byte_tok, 200)
    with pytest.raises(InputError, match="depth"):
        cases(KVRetrieval(), byte_tok, 2048, depth=1.5)


# -- several keys over one context ------------------------------------------------------------------------------


def test_queries_share_one_context(byte_tok):
    task = KVRetrieval(KVRetrievalConfig(queries=5))
    assert task.depth_sensitive is False and KVRetrieval().depth_sensitive is True
    cs = cases(task, byte_tok, 4096, 0.5)
    assert len(cs) == 5
    context = cs[0].context
    assert context is not None and context.endswith("\n\n")
    records = parse_records(cs[0].prompt)
    k = len(records)
    assert [c.meta["gold_index"] for c in cs] == [round(i * (k - 1) / 4) for i in range(5)]
    for i, c in enumerate(cs):
        assert c.context == context and c.prompt.startswith(context)
        assert c.prompt == context + f'Key: "{c.meta["key"]}"\nCorresponding value:'
        assert records[c.meta["gold_index"]] == (c.meta["key"], c.answer)
        assert c.depth == c.meta["gold_index"] / (k - 1) and c.meta["question"] == i
        assert c.actual_tokens == count_prompt_tokens(byte_tok, c.prompt) + c.max_new_tokens <= 4096
    assert len({c.meta["key"] for c in cs}) == 5 and cs[0].depth == 0.0 and cs[-1].depth == 1.0


def test_queries_share_the_context_under_a_chat_template(byte_tok):
    byte_tok.chat_template = (
        "{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    chat = ChatTokenizer(byte_tok)
    cs = cases(KVRetrieval(KVRetrievalConfig(queries=3, template="helmet")), chat, 4096, 0.5)
    assert cs[0].context.startswith("<|user|>JSON data:\n")
    for c in cs:
        assert c.prompt.startswith(c.context) and c.context == cs[0].context
        assert c.prompt.endswith(f'Key: "{c.meta["key"]}"<|end|><|assistant|>Corresponding value:')
        assert c.actual_tokens == count_prompt_tokens(chat, c.prompt) + c.max_new_tokens <= 4096


# -- scoring ------------------------------------------------------------------------------------------------


def test_litm_accuracy_is_a_case_insensitive_substring():
    v = "0afe857e-cdac-40b3-ad08-8437f7268b27"
    assert litm_accuracy(f" {v}\nKey:", v) == 1.0
    assert litm_accuracy(f'"{v.upper()}"', v) == 1.0
    assert litm_accuracy(v[:-1], v) == 0.0
    assert litm_accuracy(v.replace("-", ""), v) == 0.0
    assert litm_accuracy("", v) == 0.0


def test_helmet_substring_exact_match_normalises():
    v = "0afe857e-cdac-40b3-ad08-8437f7268b27"
    assert normalize_answer("The  Value: 0afe-8B!") == "value 0afe8b"
    # punctuation (the hyphens) is dropped on both sides
    assert substring_exact_match("value is 0afe857ecdac40b3ad088437f7268b27.", v) == 1.0
    assert substring_exact_match(f"Corresponding value: {v.upper()}", v) == 1.0
    assert substring_exact_match("0afe857e-cdac-40b3", v) == 0.0
    assert substring_exact_match("", v) == 0.0


def test_score_follows_the_template(byte_tok):
    (litm,) = cases(KVRetrieval(), byte_tok, 2048)
    (helmet,) = cases(KVRetrieval(KVRetrievalConfig(template="helmet")), byte_tok, 2048)
    for task, case in ((KVRetrieval(), litm), (KVRetrieval(KVRetrievalConfig(template="helmet")), helmet)):
        assert task.score(case.answer, case) == 1.0
        assert task.score(" " + case.answer + "\n\nKey:", case) == 1.0
        assert task.score("I could not find it.", case) == 0.0
    bare = litm.answer.replace("-", "")
    assert KVRetrieval().score(bare, litm) == 0.0  # lost in the middle: the hyphens must be there
    assert KVRetrieval().metrics(bare, litm) == {"accuracy": 0.0, "substring_exact_match": 1.0}


# -- registration and a tiny model ----------------------------------------------------------------------------


def test_registered_with_tags_and_parameters():
    from longctx.registry import get_registry

    tech = get_registry().get("evaluation", "kv-retrieval")
    assert "2307.03172" in tech.paper and "2410.02694" in tech.paper
    task = tech.build(KVRetrievalConfig(), None)
    assert isinstance(task, EvalTask) and dict(task.tags) == {"diffusion": "low", "scope": "low"}
    (t,) = load_tasks(["kv-retrieval:queries=4,template=helmet"]).values()
    assert t.config.queries == 4 and t.config.template == "helmet"
    with pytest.raises(ParameterError):
        make_config(KVRetrievalConfig, {"template": "ruler"}, technique="kv-retrieval")
    with pytest.raises(ParameterError):
        make_config(KVRetrievalConfig, {"queries": "0"}, technique="kv-retrieval")


def test_tiny_llama_run_reuses_the_shared_context(tiny):
    import longctx

    lm = tiny("llama", max_position_embeddings=2048)
    task = KVRetrieval(KVRetrievalConfig(queries=3, max_new_tokens=4))
    with longctx.compose(lm, None) as pipe:
        rows = run_eval({"base": pipe}, {"kv-retrieval:queries=3": task}, lengths=[1536])
    assert len(rows) == 3 and all(r["error"] is None for r in rows)
    assert all(r["reused_tokens"] > 0 for r in rows)
    assert len({r["reused_tokens"] for r in rows}) == 1
    assert all(r["score"] in (0.0, 1.0) and set(r["metrics"]) == {"accuracy", "substring_exact_match"} for r in rows)
