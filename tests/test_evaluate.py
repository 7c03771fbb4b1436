"""The shared evaluation machinery: cases, length fitting, the resumable evaluation loop, summaries."""

from __future__ import annotations

import json
import math
import random
import re

import pytest

from longctx.errors import InputError
from longctx.evaluate import (
    RESULTS_FILE,
    Case,
    count_prompt_tokens,
    fit_length,
    read_results,
    run_eval,
    split_at_depth,
    summarize,
    write_summary,
)
from longctx.hooks import hookimpl
from longctx.plugins.passkey import Passkey
from longctx.runtime import Generation

# -- helpers --------------------------------------------------------------------------------------------


class CountingTokenizer:
    """Wraps a tokenizer and counts how often it is called."""

    def __init__(self, tok):
        self.tok = tok
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.tok(*args, **kwargs)


class WordTokenizer:
    """A minimal tokenizer: a BOS plus one token per ``width`` characters (rounded up) of each word."""

    def __init__(self, width=3):
        self.width = width
        self.calls = 0

    def __call__(self, text, add_special_tokens=True, **_):
        self.calls += 1
        ids = [1] if add_special_tokens else []
        for w in text.split():
            ids += [5] * math.ceil(len(w) / self.width)
        return {"input_ids": ids}


class Oracle:
    """A fake pipeline that reads the pass key from the prompt (or answers wrongly), with a window."""

    def __init__(self, tokenizer, *, spec="oracle", window=None, wrong=False, interrupt_at=None):
        self.tokenizer = tokenizer
        self.spec = spec
        self.window = window
        self.wrong = wrong
        self.interrupt_at = interrupt_at
        self.calls = 0
        self.queries = []

    def generate(self, prompt, *, query=None, max_new_tokens=32):
        self.calls += 1
        if self.interrupt_at is not None and self.calls >= self.interrupt_at:
            raise KeyboardInterrupt
        self.queries.append(query)
        n = count_prompt_tokens(self.tokenizer, prompt)
        if self.window is not None and n + max_new_tokens > self.window:
            raise InputError(f"the prompt has {n} tokens, the window is {self.window}")
        key = int(re.search(r"The pass key is (\d+)", prompt).group(1))
        text = f" {key + 1 if self.wrong else key}. Remember it."
        return Generation(text=text, prompt_tokens=n, new_tokens=5, seconds=0.25, prefill_seconds=0.1, kv_bytes=4096)


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


# -- Case -------------------------------------------------------------------------------------------------


def test_case_id_is_stable_and_json_round_trips():
    c = Case("t", "prompt text", "42", 100, 98, 0.5, 3, 10, "q?", {"k": 1})
    same = Case("t", "prompt text", "42", 200, 150, 0.1, 9, 5)
    other = Case("t", "prompt text!", "42", 100, 98, 0.5, 3, 10)
    assert c.id == same.id  # task + prompt + answer only
    assert c.id != other.id
    assert re.fullmatch(r"[0-9a-f]{16}", c.id)
    d = c.to_json()
    assert d["id"] == c.id and d["meta"] == {"k": 1}
    assert json.loads(json.dumps(d)) == d
    assert Case.from_json(d) == c


# -- fit_length -----------------------------------------------------------------------------------------


def test_fit_length_exact_arithmetic(byte_tok):
    # "ab"*n + "xyz" is 2n+3 bytes, + BOS, + 10 reserved = 2n + 14 tokens
    tok = CountingTokenizer(byte_tok)
    fit = fit_length(lambda n: "ab" * n + "xyz", tok, 1001, reserve=10)
    assert fit.n == 493 and fit.tokens == 1000 and fit.text == "ab" * 493 + "xyz"
    n, _, tokens = fit_length(lambda n: "ab" * n + "xyz", byte_tok, 1000, reserve=10)
    assert (n, tokens) == (493, 1000)
    # an exact hit is found, not just a near one
    assert fit_length(lambda n: "abc" * n, byte_tok, 3001).n == 1000


def test_fit_length_is_a_search_not_linear_growth(byte_tok):
    tok = CountingTokenizer(byte_tok)
    fit = fit_length(lambda n: "abcd " * n, tok, 200_001)
    assert fit.n == 40_000 and fit.tokens == 200_001
    assert tok.calls <= 16, tok.calls  # linear growth would tokenize ~40k times


def test_fit_length_matches_brute_force_on_a_staircase():
    rng = random.Random(0)
    words = ["a", "bb", "cccc", "dddddd", "eeeeeeeeee", "ff"]
    for trial in range(60):
        tok = WordTokenizer(width=rng.choice([1, 2, 3]))
        base = rng.randint(0, 20)

        def build(n, base=base):
            return " ".join(["x" * base, *(words[i % len(words)] for i in range(n))])

        lo = rng.randint(0, 5)
        hi = rng.choice([None, rng.randint(lo, 400)])
        reserve = rng.randint(0, 10)
        target = rng.randint(15, 500)
        counts = [len(tok(build(n))["input_ids"]) + reserve for n in range(0, 600)]
        if counts[lo] > target:
            with pytest.raises(InputError):
                fit_length(build, tok, target, lo=lo, hi=hi, reserve=reserve)
            continue
        top = hi if hi is not None else 599
        expected = max(n for n in range(lo, top + 1) if counts[n] <= target)
        fit = fit_length(build, tok, target, lo=lo, hi=hi, reserve=reserve)
        assert fit.n == expected, (trial, target, lo, hi)
        assert fit.tokens == counts[expected]


def test_fit_length_tolerance_stops_early(byte_tok):
    exact = CountingTokenizer(byte_tok)
    loose = CountingTokenizer(byte_tok)
    build = lambda n: "The grass is green. " * n  # noqa: E731
    a = fit_length(build, exact, 50_000)
    b = fit_length(build, loose, 50_000, tolerance=0.01)
    assert a.tokens <= 50_000 and b.tokens <= 50_000
    assert b.tokens >= 0.99 * 50_000
    assert loose.calls <= exact.calls


def test_fit_length_errors_and_bounds(byte_tok):
    with pytest.raises(InputError, match="before any filler"):
        fit_length(lambda n: "x" * (50 + n), byte_tok, 40)
    # the upper bound wins when even hi fits
    assert fit_length(lambda n: "x" * n, byte_tok, 1000, hi=30).n == 30
    assert fit_length(lambda n: "x" * n, byte_tok, 1000, lo=7, hi=7).n == 7


def test_split_at_depth():
    sents = ["aaaa.", "bbbb.", "cccc.", "dddd."]  # boundaries at 0, 5, 11, 17, 23 characters
    assert split_at_depth(sents, 0.0) == ("", "aaaa. bbbb. cccc. dddd.", 0.0)
    assert split_at_depth(sents, 1.0) == ("aaaa. bbbb. cccc. dddd.", "", 1.0)
    prefix, suffix, actual = split_at_depth(sents, 0.5)
    assert (prefix, suffix) == ("aaaa. bbbb.", "cccc. dddd.") and actual == 11 / 23
    with pytest.raises(InputError):
        split_at_depth(sents, 1.5)


# -- run_eval with fake pipelines ---------------------------------------------------------------------


def test_run_eval_writes_each_result_and_resumes(byte_tok, tmp_path):
    good, bad = Oracle(byte_tok, spec="good"), Oracle(byte_tok, spec="bad", wrong=True)
    tasks = {"passkey": Passkey()}
    kw = dict(lengths=[300, 500], depths=[0.0, 0.5], samples=2, seed=5, out_dir=tmp_path)
    res = run_eval({"good": good, "bad": bad}, tasks, **kw)
    assert len(res) == 2 * 2 * 2 * 2 and good.calls == 8 and bad.calls == 8
    rows = lines(tmp_path / RESULTS_FILE)
    assert rows == res
    for r in rows:
        for field in (
            "case_id",
            "prompt_hash",
            "pipeline",
            "spec",
            "task",
            "target_tokens",
            "actual_tokens",
            "depth",
            "seed",
            "sample",
            "prediction",
            "answer",
            "score",
            "seconds",
            "prompt_tokens",
            "kv_bytes",
        ):
            assert field in r
        assert r["score"] == (1.0 if r["pipeline"] == "good" else 0.0)
        assert r["prompt_tokens"] + 10 == r["actual_tokens"]
        assert r["error"] is None
        assert r["seed"] == 5 + r["sample"]
    # identical cases across pipelines, and the query reached the pipeline
    ids = lambda p: [r["case_id"] for r in rows if r["pipeline"] == p]  # noqa: E731
    assert ids("good") == ids("bad") and len(set(ids("good"))) == 8
    assert set(good.queries) == {"What is the pass key? The pass key is"}

    # resume: nothing left to run
    good2, bad2 = Oracle(byte_tok, spec="good"), Oracle(byte_tok, spec="bad", wrong=True)
    again = run_eval({"good": good2, "bad": bad2}, tasks, **kw)
    assert good2.calls == bad2.calls == 0
    assert again == res
    # a larger run only does what is new
    more = run_eval({"good": good2, "bad": bad2}, tasks, **{**kw, "samples": 3})
    assert good2.calls == bad2.calls == 4 and len(more) == 24
    assert len(lines(tmp_path / RESULTS_FILE)) == 24
    # the same name with another spec is another pipeline: nothing is reused
    changed = Oracle(byte_tok, spec="good-v2")
    run_eval({"good": changed}, tasks, **kw)
    assert changed.calls == 8


def test_interrupt_loses_nothing_finished(byte_tok, tmp_path):
    tasks = {"passkey": Passkey()}
    kw = dict(lengths=[300], depths=[0.0, 0.5, 1.0], samples=2, out_dir=tmp_path)
    first = Oracle(byte_tok, interrupt_at=4)
    with pytest.raises(KeyboardInterrupt):
        run_eval({"p": first}, tasks, **kw)
    assert len(lines(tmp_path / RESULTS_FILE)) == 3
    # a torn last line (a writer killed mid-line) is ignored and does not corrupt what follows
    with (tmp_path / RESULTS_FILE).open("a") as fh:
        fh.write('{"task": "passkey", "case_id": "tor')
    second = Oracle(byte_tok)
    res = run_eval({"p": second}, tasks, **kw)
    assert second.calls == 3 and len(res) == 6
    assert len(read_results(tmp_path / RESULTS_FILE)) == 6


def test_input_error_is_a_result_not_a_crash(byte_tok, tmp_path):
    small = Oracle(byte_tok, spec="small", window=400)
    res = run_eval({"small": small}, {"passkey": Passkey()}, lengths=[300, 600], out_dir=tmp_path)
    by_len = {r["target_tokens"]: r for r in res}
    assert by_len[300]["error"] is None and by_len[300]["score"] == 1.0
    assert "window is 400" in by_len[600]["error"] and by_len[600]["score"] == 0.0
    summary = {(s["length"], s["depth"]): s for s in summarize(res)}
    assert summary[(600, None)]["errors"] == 1 and summary[(600, None)]["seconds"] is None


def test_lc_run_evaluate_wraps_each_task_and_pipeline(byte_tok):
    from longctx.registry import get_registry

    reg = get_registry()
    seen = []

    class Tracer:
        @hookimpl(wrapper=True)
        def lc_run_evaluate(self, task, pipeline, run):
            rows = yield
            seen.append((task, pipeline, len(rows)))
            return rows

    tracer = Tracer()
    reg.pm.register(tracer, name="test-tracer")
    try:
        run_eval(
            {"a": Oracle(byte_tok, spec="spec-a"), "b": Oracle(byte_tok, spec="spec-b")},
            {"pk": Passkey(), "pk2": Passkey()},
            lengths=[300],
            depths=[0.5, 1.0],
            registry=reg,
        )
    finally:
        reg.pm.unregister(tracer)
    assert seen == [("pk", "spec-a", 2), ("pk", "spec-b", 2), ("pk2", "spec-a", 2), ("pk2", "spec-b", 2)]


def test_progress_bar_goes_to_stderr(byte_tok, capsys):
    run_eval({"p": Oracle(byte_tok)}, {"passkey": Passkey()}, lengths=[300], progress=True)
    out = capsys.readouterr()
    assert out.out == ""


# -- summaries --------------------------------------------------------------------------------------------


def test_summarize_hand_made_results(tmp_path):
    def r(pipeline, length, depth, score, seconds, error=None):
        return {
            "task": "t",
            "pipeline": pipeline,
            "spec": f"spec-{pipeline}",
            "target_tokens": length,
            "depth": depth,
            "score": score,
            "seconds": seconds,
            "error": error,
        }

    results = [
        r("a", 1000, 0.0, 1.0, 1.0),
        r("a", 1000, 0.0, 0.0, 3.0),
        r("a", 1000, 1.0, 1.0, 2.0),
        r("a", 2000, 0.0, 0.0, None, error="too long"),
        r("b", 1000, 0.0, 1.0, 4.0),
    ]
    rows = summarize(results)
    key = {(s["pipeline"], s["length"], s["depth"]): s for s in rows}
    assert len(rows) == 7
    assert key[("a", 1000, 0.0)] == {
        "task": "t",
        "pipeline": "a",
        "spec": "spec-a",
        "length": 1000,
        "depth": 0.0,
        "n": 2,
        "score": 0.5,
        "seconds": 2.0,
        "errors": 0,
    }
    assert key[("a", 1000, 1.0)]["score"] == 1.0 and key[("a", 1000, 1.0)]["n"] == 1
    assert key[("a", 1000, None)]["score"] == pytest.approx(2 / 3)
    assert key[("a", 1000, None)]["seconds"] == pytest.approx(2.0) and key[("a", 1000, None)]["n"] == 3
    assert key[("a", 2000, None)]["errors"] == 1 and key[("a", 2000, None)]["score"] == 0.0
    assert key[("b", 1000, None)]["score"] == 1.0 and key[("b", 1000, None)]["seconds"] == 4.0
    # ordered: per pipeline, per length, depths then the per-length row
    order = [(s["pipeline"], s["length"], s["depth"]) for s in rows]
    assert order[:4] == [("a", 1000, 0.0), ("a", 1000, 1.0), ("a", 1000, None), ("a", 2000, 0.0)]
    path = write_summary(tmp_path, rows)
    assert path.name == "summary.json" and json.loads(path.read_text()) == rows


# -- run_eval on composed tiny models ---------------------------------------------------------------------


def test_run_eval_two_composed_pipelines(tiny_llama, tiny, tmp_path):
    """The default pipeline on tiny Llama (a 256-token window) against PI x4 on another (1024 tokens):
    the too-long prompts become error results, the others run; every result is on disk before the next
    generation starts, and a second run generates nothing."""
    from longctx.registry import get_registry
    from longctx.runtime import compose

    reg = get_registry()
    results_file = tmp_path / RESULTS_FILE
    log = []

    class Counter:
        @hookimpl(wrapper=True)
        def lc_run_generate(self, pipeline, prompt, run):
            log.append(len(lines(results_file)) if results_file.exists() else 0)
            return (yield)

    counter = Counter()
    reg.pm.register(counter, name="test-counter")
    try:
        with (
            compose(tiny_llama, None, registry=reg) as p1,
            compose(tiny("llama"), "positional=pi:factor=4", registry=reg) as p2,
        ):
            assert (p1.max_context, p2.max_context) == (256, 1024)
            pipes = {"default": p1, "pi": p2}
            kw = dict(lengths=[300, 400], depths=[0.0, 1.0], samples=1, seed=0, out_dir=tmp_path, registry=reg)
            res = run_eval(pipes, {"passkey": Passkey()}, **kw)
            assert log == list(range(8))
            assert len(res) == 8 and lines(results_file) == res
            assert [r["pipeline"] for r in res] == ["default"] * 4 + ["pi"] * 4
            for r in res[:4]:
                assert "window is 256 tokens" in r["error"] and r["score"] == 0.0
            for r in res[4:]:
                assert r["error"] is None
                assert r["prompt_tokens"] + 10 == r["actual_tokens"] <= r["target_tokens"]
                assert r["kv_bytes"] > 0 and r["seconds"] > 0
                assert r["score"] in (0.0, 1.0) and isinstance(r["prediction"], str)
            assert [r["case_id"] for r in res[:4]] == [r["case_id"] for r in res[4:]]
            assert {r["spec"] for r in res} == {str(p1.spec), str(p2.spec)}
            assert "pi:factor=4" in str(p2.spec)
            # resume: no generation at all
            again = run_eval(pipes, {"passkey": Passkey()}, **kw)
            assert len(log) == 8 and again == res
    finally:
        reg.pm.unregister(counter)


def test_run_eval_specs_composes_one_at_a_time(tiny, tmp_path, monkeypatch):
    import longctx.models
    from longctx.evaluate import run_eval_specs
    from longctx.spec import PipelineSpec

    loads = []

    def fake_load(name):
        loads.append(name)
        return tiny("llama", max_position_embeddings=1024)

    monkeypatch.setattr(longctx.models, "load_model", fake_load)
    specs = {"default": PipelineSpec(), "pi": PipelineSpec.from_words(["positional=pi:factor=2"])}
    summary = run_eval_specs(specs, tasks=["passkey"], lengths=[300], depths=[0.5], out_dir=tmp_path, model="tiny")
    assert loads == ["tiny"]
    assert [r["pipeline"] for r in summary["by_length"]] == ["default", "pi"]
    assert all(r["n"] == 1 for r in summary["by_length"])
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert len(lines(tmp_path / RESULTS_FILE)) == 2
    ids = {r["case_id"] for r in lines(tmp_path / RESULTS_FILE)}
    assert len(ids) == 1
