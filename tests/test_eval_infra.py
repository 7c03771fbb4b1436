"""The evaluation infrastructure the tasks share: haystacks, chat rendering, the case cache, prefix KV
reuse for multi-question contexts, task-owned ``evaluate``, ``summary.csv`` and the figures."""

from __future__ import annotations

import csv
import json
import random
import uuid
from types import MappingProxyType

import pytest

from longctx import haystack
from longctx.errors import InputError
from longctx.evaluate import (
    RESULTS_FILE,
    Case,
    ChatTokenizer,
    cached_cases,
    count_prompt_tokens,
    fit_length,
    render_prompt,
    run_eval,
    summarize,
    tokenizer_fingerprint,
    write_summary,
)
from longctx.plugins.passkey import Passkey
from longctx.runtime import compose

# -- haystacks -----------------------------------------------------------------------------------------


def test_noise_sentences_cycle_rulers_paragraph():
    s = haystack.noise_sentences(7)
    assert s[:5] == [
        "The grass is green.",
        "The sky is blue.",
        "The sun is yellow.",
        "Here we go.",
        "There and back again.",
    ]
    assert s[5:] == s[:2]
    assert " ".join(haystack.noise_sentences(5)) == haystack.NOISE


def test_prose_is_the_bundled_novel_without_gutenberg_boilerplate():
    text = haystack.prose_text()
    assert text.startswith("Chapter 1\n\nIt is a truth universally acknowledged")
    assert "Gutenberg" not in text and "Paul Graham" not in text
    sents = haystack.prose_sentences(3, start=1)
    assert sents[0].startswith("It is a truth universally acknowledged, that a single man")
    assert all("\n" not in s and "  " not in s for s in haystack.prose_sentences(200))
    # wraps around at the end
    n = len(haystack._prose(haystack.DEFAULT_PROSE))
    last, first = haystack.prose_sentences(2, start=n - 1)
    assert first == haystack.prose_sentences(1)[0] == "Chapter 1" and last != first
    assert haystack.prose_sentences(1, start=n) == haystack.prose_sentences(1, start=0)


def test_prose_from_a_local_file_and_bad_paths(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("One fish. Two fish.\nRed fish.", encoding="utf-8")
    assert haystack.prose_sentences(4, source=str(p)) == ["One fish.", "Two fish.", "Red fish.", "One fish."]
    with pytest.raises(InputError, match="neither"):
        haystack.prose_text(str(tmp_path / "missing.txt"))


def test_word_list_is_wonderwords_nouns_adjectives_verbs():
    words = haystack.word_list()
    assert len(words) > 7000 and list(words) == sorted(set(words))
    assert all(" " not in w for w in words)
    assert {"apple", "happy", "run"} <= set(words)
    assert set(haystack.word_list(("noun",))) < set(words)
    with pytest.raises(ValueError):
        haystack.word_list(("pronoun",))


def test_seeded_values():
    a, b = random.Random(5), random.Random(5)
    u = haystack.rng_uuid(a)
    assert u == haystack.rng_uuid(b) and uuid.UUID(u).version == 4
    n = haystack.rng_number(a, 7)
    assert len(n) == 7 and n.isdigit() and n[0] != "0"


def test_insert_at_depths_places_needles_at_sentence_boundaries():
    hay = ["aaaa.", "bbbb.", "cccc.", "dddd."]  # 5 chars + a space each: boundaries at 0, 6, 12, 18, 24
    out, actual = haystack.insert_at_depths(hay, ["N1", "N2", "N3"], [0.0, 0.5, 1.0])
    assert out == ["N1", "aaaa.", "bbbb.", "N2", "cccc.", "dddd.", "N3"]
    assert actual == [0.0, 0.5, 1.0]
    out, _ = haystack.insert_at_depths(hay, ["x", "y"], [0.3, 0.3])
    assert out == ["aaaa.", "x", "y", "bbbb.", "cccc.", "dddd."]
    with pytest.raises(InputError):
        haystack.insert_at_depths(hay, ["x"], [1.5])


# -- chat template ------------------------------------------------------------------------------------------

TEMPLATE = "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}<|assistant|>"


def test_render_prompt_completion_and_chat(byte_tok):
    assert render_prompt(byte_tok, "Body.", "\nAnswer:") == "Body.\nAnswer:"
    with pytest.raises(InputError, match="no chat template"):
        ChatTokenizer(byte_tok)
    byte_tok.chat_template = TEMPLATE
    chat = ChatTokenizer(byte_tok)
    text = render_prompt(chat, "Body.", "\nAnswer:")
    assert text == "<bos><|user|>Body.<|end|><|assistant|>Answer:"
    # the rendered BOS is the only one: counting adds nothing more
    assert count_prompt_tokens(chat, text) == len(text.encode()) - len("<bos>") + 1
    assert tokenizer_fingerprint(chat) != tokenizer_fingerprint(byte_tok)


def test_chat_template_reaches_the_model_without_a_second_bos(tiny, tmp_path):
    tiny_llama = tiny("llama", max_position_embeddings=1024)
    tiny_llama.tokenizer.chat_template = TEMPLATE
    seen = []
    with compose(tiny_llama, None) as pipe:
        orig = pipe.encode

        def spy(text, *, add_special_tokens=True):
            ids = orig(text, add_special_tokens=add_special_tokens)
            seen.append(ids[0].tolist())
            return ids

        pipe.encode = spy
        rows = run_eval({"p": pipe}, {"passkey": Passkey()}, lengths=[400], chat_template=True, out_dir=tmp_path)
    bos = tiny_llama.tokenizer.bos_token_id
    assert rows[0]["error"] is None
    assert seen[0][0] == bos and seen[0][1] != bos and seen[0].count(bos) == 1
    assert rows[0]["prompt_tokens"] + rows[0]["max_new_tokens"] == rows[0]["actual_tokens"]


# -- case cache ------------------------------------------------------------------------------------------


class CountingPasskey(Passkey):
    def __init__(self):
        super().__init__()
        self.built = 0

    def cases(self, tokenizer, **kw):
        self.built += 1
        yield from super().cases(tokenizer, **kw)


def test_case_cache_reuses_generated_cases(byte_tok, tmp_path):
    task = CountingPasskey()
    kw = dict(length=300, depth=0.5, seed=3, cache=tmp_path)
    a = cached_cases(task, "passkey", byte_tok, **kw)
    b = cached_cases(task, "passkey", byte_tok, **kw)
    assert task.built == 1 and a == b
    files = list(tmp_path.rglob("*.json"))
    assert len(files) == 1 and files[0].name == "L300-d0.5-s3.json"
    # another seed, another task key, a damaged file: all regenerate
    cached_cases(task, "passkey", byte_tok, length=300, depth=0.5, seed=4, cache=tmp_path)
    cached_cases(task, "passkey:max_new_tokens=5", byte_tok, **kw)
    assert task.built == 3
    files[0].write_text("{not json")
    assert cached_cases(task, "passkey", byte_tok, **kw) == a and task.built == 4
    # no cache: always built
    cached_cases(task, "passkey", byte_tok, length=300, depth=0.5, seed=3, cache=None)
    assert task.built == 5


# -- prefix reuse -----------------------------------------------------------------------------------------


class TwoQuestions:
    """Two questions over one shared context (the KV-reuse path)."""

    name = "two-questions"
    tags = MappingProxyType({"diffusion": "low", "scope": "low"})

    def cases(self, tokenizer, *, length, depth, seed):
        context = "Ann has 3 cats. Bob has 5 dogs. " * 4 + "\n"
        for q, a in (("How many cats does Ann have? ", "3"), ("How many dogs does Bob have? ", "5")):
            prompt = context + q + "Answer:"
            n = count_prompt_tokens(tokenizer, prompt) + 8
            yield Case(self.name, prompt, a, length, n, depth, seed, 8, query=q, context=context)

    def score(self, prediction, case):
        return float(case.answer in prediction)


@pytest.mark.parametrize(
    "spec",
    [None, "positional=pi:factor=2", "attention=streaming-llm:sinks=4,window=32", "kv=sink-window:sinks=4,window=300"],
)
def test_prefix_reuse_gives_the_same_generation(tiny_llama, spec):
    prompt = "Ann has 3 cats. Bob has 5 dogs. " * 4 + "\nHow many cats does Ann have? Answer:"
    context = prompt[: prompt.index("\n") + 1]
    with compose(tiny_llama, spec) as pipe:
        pre = pipe.prefill(context)
        assert pre is not None and pre.tokens == len(context.encode()) + 1
        plain = pipe.generate(prompt, max_new_tokens=12)
        reused = pipe.generate(prompt, max_new_tokens=12, prefix=pre)
        again = pipe.generate(prompt, max_new_tokens=12, prefix=pre)  # the prefix is not consumed
    assert plain.reused_tokens == 0 and reused.reused_tokens == pre.tokens
    assert reused.text == plain.text == again.text
    assert reused.prompt_tokens == plain.prompt_tokens


def test_prefix_that_does_not_match_is_ignored_and_reducers_disable_reuse(tiny_llama):
    with compose(tiny_llama, None) as pipe:
        pre = pipe.prefill("Something else entirely.\n")
        g = pipe.generate("Ann has 3 cats.\nQ?", max_new_tokens=4, prefix=pre)
        assert g.reused_tokens == 0
    with compose(tiny_llama, "reduce=truncate-middle:budget=64") as pipe:
        assert pipe.prefill("Ann has 3 cats.\n") is None


def test_run_eval_prefills_a_shared_context_once(tiny_llama, tmp_path):
    with compose(tiny_llama, None) as pipe:
        calls = []
        orig = pipe.prefill
        pipe.prefill = lambda *a, **k: calls.append(a) or orig(*a, **k)
        rows = run_eval({"p": pipe}, {"two": TwoQuestions()}, lengths=[512], out_dir=tmp_path)
        assert len(calls) == 1 and [r["reused_tokens"] for r in rows] == [rows[0]["reused_tokens"]] * 2
        assert rows[0]["reused_tokens"] > 0 and rows[0]["prefix_seconds"] > 0
        plain = run_eval({"q": pipe}, {"two": TwoQuestions()}, lengths=[512], reuse_prefix=False)
    assert [r["prediction"] for r in plain] == [r["prediction"] for r in rows]
    assert all(r["reused_tokens"] == 0 for r in plain)


# -- tasks with their own evaluate(), sub-metrics, depth-insensitive tasks ----------------------------------


class OwnEvaluate:
    name = "own"
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})
    depth_sensitive = False

    def __init__(self):
        self.depths = []

    def cases(self, tokenizer, *, length, depth, seed):
        self.depths.append(depth)
        yield Case(self.name, "x" * 10, "-", length, 11, depth, seed, 0)

    def score(self, prediction, case):
        raise AssertionError("evaluate() replaces score()")

    def evaluate(self, pipeline, case):
        return {"score": 0.25, "prediction": "p", "seconds": 0.5, "metrics": {"nll": 2.0}, "buckets": [1, 2]}


class WithMetrics(Passkey):
    def metrics(self, prediction, case):
        return {"has_digit": float(any(c.isdigit() for c in prediction))}


def test_task_owned_evaluate_and_depth_insensitive_tasks(tiny_llama, tmp_path):
    task = OwnEvaluate()
    with compose(tiny_llama, None) as pipe:
        rows = run_eval({"p": pipe}, {"own": task}, lengths=[100, 200], depths=[0.0, 1.0], out_dir=tmp_path)
    assert task.depths == [0.5, 0.5] and len(rows) == 2
    assert rows[0]["score"] == 0.25 and rows[0]["metrics"] == {"nll": 2.0} and rows[0]["extra"] == {"buckets": [1, 2]}
    summary = summarize(rows, {"own": task.tags})
    assert summary[-1]["metrics"] == {"nll": 2.0} and summary[-1]["diffusion"] == "high"


def test_metrics_are_recorded_and_summarised(tiny):
    with compose(tiny("llama", max_position_embeddings=1024), None) as pipe:
        rows = run_eval({"p": pipe}, {"passkey": WithMetrics()}, lengths=[300], depths=[0.0, 1.0])
    assert all(set(r["metrics"]) == {"has_digit"} for r in rows)
    by_len = [r for r in summarize(rows) if r["depth"] is None]
    assert by_len[0]["metrics"]["has_digit"] == pytest.approx(sum(r["metrics"]["has_digit"] for r in rows) / 2)


# -- summary.csv and figures ------------------------------------------------------------------------------


def _fake_rows():
    rows = []
    for pipe, good in (("a", 1.0), ("b", 0.0)):
        for length in (1024, 2048):
            for depth in (0.0, 1.0):
                rows.append(
                    {
                        "task": "t",
                        "pipeline": pipe,
                        "target_tokens": length,
                        "depth": depth,
                        "score": good if depth == 0.0 else 0.5,
                        "seconds": 1.0,
                        "metrics": {"f1": 0.5},
                    }
                )
    return rows


def test_summary_csv_has_one_line_per_cell(tmp_path):
    rows = summarize(_fake_rows(), {"t": {"diffusion": "low", "scope": "high"}})
    write_summary(
        tmp_path,
        {"by_depth": [r for r in rows if r["depth"] is not None], "by_length": [r for r in rows if r["depth"] is None]},
    )
    with (tmp_path / "summary.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 12 and table[0]["diffusion"] == "low" and table[0]["f1"] == "0.5"
    a1024 = [r for r in table if r["pipeline"] == "a" and r["length"] == "1024"]
    assert [(r["depth"], float(r["score"])) for r in a1024] == [("0.0", 1.0), ("1.0", 0.5), ("", 0.75)]


def test_figures_are_drawn(tmp_path):
    from longctx.figures import draw_figures

    paths = draw_figures(_fake_rows(), tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["heatmap-t-a.png", "heatmap-t-b.png", "lines-t.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000
    # unbounded scores (perplexities) get no figure
    assert draw_figures([{**r, "score": 12.0} for r in _fake_rows()], tmp_path / "x") == []


def test_lc_eval_writes_csv_and_figures(tiny, tmp_path, monkeypatch):
    import longctx.models
    from longctx.evaluate import run_eval_specs
    from longctx.spec import PipelineSpec

    monkeypatch.setattr(longctx.models, "load_model", lambda name: tiny("llama", max_position_embeddings=1024))
    specs = {"default": PipelineSpec(), "pi": PipelineSpec.from_words(["positional=pi:factor=2"])}
    summary = run_eval_specs(
        specs, tasks=["passkey"], lengths=[300, 400], depths=[0.0, 1.0], out_dir=tmp_path, case_cache=tmp_path / "c"
    )
    assert summary["tasks"] == {"passkey": {"diffusion": "low", "scope": "low"}}
    assert (tmp_path / "summary.csv").exists() and len(summary["figures"]) == 3
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert len((tmp_path / RESULTS_FILE).read_text().splitlines()) == 8
    assert list((tmp_path / "c").rglob("*.json"))


def test_fit_length_with_chat_tokenizer_counts_the_template(byte_tok):
    byte_tok.chat_template = TEMPLATE
    chat = ChatTokenizer(byte_tok)
    fit = fit_length(lambda n: render_prompt(chat, "word " * n, "\nA:"), chat, 300, reserve=5)
    assert fit.tokens == count_prompt_tokens(chat, fit.text) + 5 <= 300
    assert 300 - fit.tokens < 5


def test_a_prompt_identical_at_two_lengths_is_recorded_under_each(tiny, tmp_path):
    """A case whose prompt does not depend on the length (an untruncated real-data sample) gets one
    result per length cell, not the first length's row reused."""

    class Fixed(TwoQuestions):
        def cases(self, tokenizer, *, length, depth, seed):
            prompt = "Ann has 3 cats.\nHow many cats? Answer:"
            yield Case("fixed", prompt, "3", length, count_prompt_tokens(tokenizer, prompt) + 4, depth, seed, 4)

    with compose(tiny("llama"), None) as pipe:
        rows = run_eval({"p": pipe}, {"fixed": Fixed()}, lengths=[100, 200], out_dir=tmp_path)
        again = run_eval({"p": pipe}, {"fixed": Fixed()}, lengths=[100, 200], out_dir=tmp_path)
    assert [r["target_tokens"] for r in rows] == [100, 200] and rows[0]["case_id"] == rows[1]["case_id"]
    assert again == rows and len((tmp_path / RESULTS_FILE).read_text().splitlines()) == 2


def test_task_cache_key_is_part_of_the_case_cache_key(byte_tok, tmp_path):
    task = CountingPasskey()
    key = ["a"]
    task.cache_key = lambda: key[0]
    cached_cases(task, "passkey", byte_tok, length=300, depth=0.5, seed=0, cache=tmp_path)
    cached_cases(task, "passkey", byte_tok, length=300, depth=0.5, seed=0, cache=tmp_path)
    key[0] = "b"  # the data changed
    cached_cases(task, "passkey", byte_tok, length=300, depth=0.5, seed=0, cache=tmp_path)
    assert task.built == 2
