"""The real-model smoke set (CI): Gemma 3 270M answers passkey prompts through composed pipelines."""

from __future__ import annotations

import pytest

import longctx
from longctx.evaluate import load_tasks

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def gemma():
    return longctx.load_model("gemma-3-270m", progress=False)


@pytest.fixture(scope="module")
def passkey():
    return load_tasks(["passkey"])["passkey"]


def _accuracy(lm, spec, task, length, depth=0.5, seeds=(0, 1, 2)):
    scores, gens = [], []
    with longctx.compose(lm, spec) as pipe:
        for seed in seeds:
            case = next(iter(task.cases(lm.tokenizer, length=length, depth=depth, seed=seed)))
            g = pipe.generate(case.prompt, query=case.query, max_new_tokens=case.max_new_tokens)
            scores.append(task.score(g.text, case))
            gens.append(g)
    return sum(scores) / len(scores), gens


def test_streaming_llm_keeps_a_key_inside_its_window(gemma, passkey):
    acc, gens = _accuracy(gemma, "attention=streaming-llm:sinks=4,window=1024", passkey, 1024)
    assert acc >= 2 / 3
    # the full-attention layers hold at most sinks + window tokens: 3 full layers x 1 KV head x 256 dims
    full_layer_bytes = 3 * (4 + 1024) * 256 * 4 * 2
    sliding_bytes = 15 * 511 * 256 * 4 * 2
    assert all(g.kv_bytes <= full_layer_bytes + sliding_bytes for g in gens)


def test_bm25_reduction_finds_the_key_in_a_long_prompt(gemma, passkey):
    acc, gens = _accuracy(gemma, "reduce=bm25:budget=256", passkey, 3000, seeds=(0, 1))
    assert acc == 1.0
    assert all(g.prompt_tokens <= 256 + 32 for g in gens)


def test_truncate_middle_keeps_a_key_near_the_start(gemma, passkey):
    acc, _ = _accuracy(gemma, "reduce=truncate-middle:budget=512", passkey, 2000, depth=0.05, seeds=(0, 1))
    assert acc == 1.0
