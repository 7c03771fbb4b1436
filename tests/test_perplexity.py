"""The ``perplexity`` task (YaRN's sliding-window protocol): the window plan, NLLs against hand-computed
cross-entropies and transformers' own loss, per-position buckets, the passages, scoring, run_eval and the
NLL-by-position figure."""

from __future__ import annotations

import math

import pytest
import torch

import longctx
from longctx.errors import InputError
from longctx.evaluate import count_prompt_tokens, run_eval
from longctx.plugins.perplexity import (
    Perplexity,
    PerplexityConfig,
    bucket_edges,
    token_nlls,
    window_plan,
)
from longctx.plugins.perplexity.figures import bucket_curves, nll_by_position


def one_case(task, tok, length, seed=0):
    cases = list(task.cases(tok, length=length, depth=0.5, seed=seed))
    assert len(cases) == 1
    return cases[0]


def hand_nll(model, ids: torch.Tensor) -> torch.Tensor:
    """Per-token NLL of ids[1:] from one full forward (all logits, fp32)."""
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
    return torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="none")


# -- the window plan -----------------------------------------------------------------------------------


def test_window_plan_by_hand():
    # window 5 = BOS + 4 text tokens, stride 2, 10 tokens: [0,4) scores 4, then 2 new tokens per window
    assert window_plan(10, 5, 2) == [(0, 4, 4), (2, 6, 2), (4, 8, 2), (6, 10, 2)]
    assert window_plan(10, 5, 4) == [(0, 4, 4), (4, 8, 4), (8, 10, 2)]
    assert window_plan(10, 20, 256) == [(0, 10, 10)]  # one window: the stride does not matter
    assert window_plan(10, 4, 3, bos=False) == [(0, 4, 4), (3, 7, 3), (6, 10, 3)]


@pytest.mark.parametrize("n, window, stride", [(200, 64, 16), (199, 64, 63), (57, 10, 1), (300, 300, 256)])
def test_every_token_is_scored_exactly_once(n, window, stride):
    plan = window_plan(n, window, stride)
    scored = []
    for begin, end, k in plan:
        assert end - begin <= window - 1 and k <= end - begin
        scored.extend(range(end - k, end))
    assert scored == list(range(n))


def test_stride_beyond_the_window_is_refused():
    with pytest.raises(InputError, match="stride"):
        window_plan(100, 10, 10)


def test_bucket_edges():
    assert bucket_edges(16, 8) == [0, 2, 4, 6, 8, 10, 12, 14, 16]
    assert bucket_edges(10, 3) == [0, 3, 7, 10]


# -- NLLs on tiny models ---------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [None, 240])
def test_one_window_equals_full_forward_cross_entropy(tiny_llama, window):
    task = Perplexity(PerplexityConfig(window=window))
    case = one_case(task, tiny_llama.tokenizer, 200, seed=1)
    with longctx.compose(tiny_llama) as pipe:
        out = task.evaluate(pipe, case)
        ids = pipe.encode(case.prompt)
    ref = hand_nll(tiny_llama.model, ids)
    assert ids[0, 0].item() == tiny_llama.tokenizer.bos_token_id
    m = out["metrics"]
    assert m["tokens"] == ids.shape[1] - 1 == case.actual_tokens - 1
    assert m["windows"] == 1
    assert m["nll"] == pytest.approx(float(ref.mean()), abs=1e-5)
    assert m["ppl"] == pytest.approx(math.exp(float(ref.mean())), rel=1e-5)
    assert m["ppl_windows"] == pytest.approx(m["ppl"], rel=1e-9)
    assert out["score"] == pytest.approx(1 / m["ppl"]) == pytest.approx(task.score(out["prediction"], case), rel=1e-5)
    # each bucket is the mean of its slice of the hand-computed NLLs
    edges = out["bucket_edges"]
    for b in range(8):
        assert m[f"nll_b{b}"] == pytest.approx(float(ref[edges[b] : edges[b + 1]].mean()), abs=1e-5)


def test_sliding_windows_match_transformers_loss_per_window(tiny_llama):
    """YaRN's loop, written with transformers' own loss: BOS + the window's tokens, labels −100 except the
    last ``trg_len``; ``outputs.loss`` is each window's mean NLL."""
    window, stride = 40, 16
    task = Perplexity(PerplexityConfig(window=window, stride=stride))
    case = one_case(task, tiny_llama.tokenizer, 110, seed=2)
    tok = tiny_llama.tokenizer
    ids = tok(case.prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    losses, count = [], 0
    prev_end, begin = 0, 0
    while True:
        end = min(begin + window - 1, ids.shape[1])
        trg = end - prev_end
        x = torch.cat([torch.tensor([[tok.bos_token_id]]), ids[:, begin:end]], dim=1)
        labels = x.clone()
        labels[:, :-trg] = -100
        with torch.no_grad():
            losses.append(float(tiny_llama.model(input_ids=x, labels=labels).loss))
        count += trg
        prev_end = end
        if end == ids.shape[1]:
            break
        begin += stride
    with longctx.compose(tiny_llama) as pipe:
        out = task.evaluate(pipe, case)
        windows = token_nlls(pipe, case.prompt, window=window, stride=stride)
    assert count == ids.shape[1] == out["metrics"]["tokens"]
    assert [w.numel() for w in windows] == [k for _b, _e, k in window_plan(ids.shape[1], window, stride)]
    for w, loss in zip(windows, losses):
        assert float(w.mean()) == pytest.approx(loss, abs=1e-5)
    assert out["metrics"]["ppl_windows"] == pytest.approx(math.exp(sum(losses) / len(losses)), rel=1e-5)
    # the token-weighted mean differs from YaRN's mean of window means when windows differ in size
    weighted = sum(float(w.sum()) for w in windows) / count
    assert out["metrics"]["nll"] == pytest.approx(weighted, abs=1e-9)


def test_bucket_means_average_back_to_the_total(tiny_llama):
    task = Perplexity(PerplexityConfig(window=64, stride=20, buckets=5))
    case = one_case(task, tiny_llama.tokenizer, 211, seed=3)
    with longctx.compose(tiny_llama) as pipe:
        out = task.evaluate(pipe, case)
    m, edges = out["metrics"], out["bucket_edges"]
    assert edges[0] == 0 and edges[-1] == m["tokens"] and len(edges) == 6
    weighted = sum(m[f"nll_b{b}"] * (edges[b + 1] - edges[b]) for b in range(5)) / m["tokens"]
    assert weighted == pytest.approx(m["nll"], abs=1e-9)


def test_chunked_head_and_softcapping(tiny):
    """The chunked head gives the same NLLs for any chunk size, and applies Gemma's logit soft-capping."""
    lm = tiny("gemma3", final_logit_softcapping=3.0)
    task = Perplexity(PerplexityConfig(chunk=7))
    case = one_case(task, lm.tokenizer, 120)
    with longctx.compose(lm) as pipe:
        out = task.evaluate(pipe, case)
        ids = pipe.encode(case.prompt)
    ref = hand_nll(lm.model, ids)  # transformers applies the soft-capping in forward
    assert out["metrics"]["nll"] == pytest.approx(float(ref.mean()), abs=1e-5)


def test_encoders_are_refused(tiny_bert):
    from longctx.testing import byte_tokenizer

    lm = tiny_bert
    task = Perplexity()
    with longctx.compose(lm.model, None, tokenizer=byte_tokenizer()) as pipe:
        case = one_case(task, byte_tokenizer(), 60)
        with pytest.raises(InputError, match="causal language model"):
            task.evaluate(pipe, case)


# -- passages ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [512, 2048])
def test_passages_fit_the_length_and_follow_each_other(byte_tok, length):
    task = Perplexity()
    first = one_case(task, byte_tok, length, seed=0)
    assert first.prompt.startswith("Chapter 1\n\nIt is a truth universally acknowledged")
    for seed in range(3):
        case = one_case(task, byte_tok, length, seed=seed)
        measured = count_prompt_tokens(byte_tok, case.prompt)
        assert case.actual_tokens == measured and length * 0.99 <= measured <= length
        assert case.max_new_tokens == 0 and case.target_tokens == length
        assert case == one_case(Perplexity(), byte_tok, length, seed=seed)  # deterministic
    second = one_case(task, byte_tok, length, seed=1)
    assert second.prompt != first.prompt
    # seed 1 starts where seed 0's passage (counted in words) ends
    words = len(first.prompt.split())
    assert second.meta["first_word"] == words


def test_local_text_file(tmp_path, byte_tok):
    path = tmp_path / "text.txt"
    path.write_text("alpha beta gamma delta. " * 200, encoding="utf-8")
    task = Perplexity(PerplexityConfig(path=str(path)))
    case = one_case(task, byte_tok, 1000)
    assert case.prompt.startswith("alpha beta") and case.meta["path"] == str(path)
    with pytest.raises(InputError, match="fewer than the length"):
        one_case(task, byte_tok, 20000)
    with pytest.raises(InputError):
        one_case(Perplexity(PerplexityConfig(path=str(tmp_path / "missing.txt"))), byte_tok, 100)


def test_score_is_one_over_perplexity():
    task = Perplexity()
    case = None
    assert task.score("1", case) == 1.0
    assert task.score("4", case) == 0.25
    for bad in ("", "abc", "0.5"):
        with pytest.raises(InputError):
            task.score(bad, case)


def test_registered_with_tags_and_not_depth_sensitive():
    from longctx.registry import get_registry

    tech = get_registry().get("evaluation", "perplexity")
    task = tech.build(tech.config(), None)
    assert dict(task.tags) == {"diffusion": "high", "scope": "high"}
    assert task.depth_sensitive is False


# -- run_eval and the figure ---------------------------------------------------------------------------------


def test_run_eval_and_nll_by_position_figure(tiny_llama, tmp_path):
    task = Perplexity(PerplexityConfig(window=96, stride=32, buckets=4))
    with longctx.compose(tiny_llama) as pipe:
        rows = run_eval({"native": pipe}, {"perplexity": task}, lengths=[160, 200], samples=2, out_dir=tmp_path)
    assert len(rows) == 4 and all(r["error"] is None for r in rows)
    for r in rows:
        assert r["score"] == pytest.approx(1 / r["metrics"]["ppl"])
        assert set(r["metrics"]) >= {"nll", "ppl", "ppl_windows", "nll_b0", "nll_b3"}
        assert r["extra"]["bucket_edges"][-1] == r["metrics"]["tokens"]
    curves = bucket_curves(rows)
    assert set(curves) == {("native", 160), ("native", 200)}
    xs, ys = curves[("native", 160)]
    mine = [r for r in rows if r["target_tokens"] == 160]
    assert ys == pytest.approx([sum(r["metrics"][f"nll_b{b}"] for r in mine) / 2 for b in range(4)])
    assert xs == sorted(xs) and 1 <= xs[0] < xs[-1] < 160
    png = nll_by_position(rows, tmp_path / "nll.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError):
        nll_by_position([], tmp_path / "none.png")


@pytest.mark.real_model
@pytest.mark.slow
def test_gemma_chunked_nll_equals_full_forward():
    lm = longctx.load_model("gemma-3-270m", progress=False)
    task = Perplexity()
    case = one_case(task, lm.tokenizer, 512)
    with longctx.compose(lm) as pipe:
        out = task.evaluate(pipe, case)
        ids = pipe.encode(case.prompt)
    ref = hand_nll(lm.model, ids)
    assert out["metrics"]["tokens"] == ids.shape[1] - 1
    assert out["metrics"]["nll"] == pytest.approx(float(ref.mean()), abs=1e-4)
    assert 2.0 < out["metrics"]["nll"] < 5.0  # a real model on English prose
