"""RULER's synthetic tasks: the reference's templates and configurations, needle counts and formats,
depth placement, chain/word-count correctness, determinism, lengths, RULER's scoring, registration, a
tiny-Llama run, and (slow) the time to generate a 32k-token case."""

from __future__ import annotations

import math
import re
import time
import uuid
from collections import Counter

import pytest

from longctx.errors import InputError, ParameterError
from longctx.evaluate import Case, ChatTokenizer, count_prompt_tokens, load_tasks, run_eval
from longctx.haystack import NOISE, word_list
from longctx.plugins.ruler import TASKS
from longctx.plugins.ruler import cwe as cwe_mod
from longctx.plugins.ruler import fwe as fwe_mod
from longctx.plugins.ruler import niah as niah_mod
from longctx.plugins.ruler import qa as qa_mod
from longctx.plugins.ruler import vt as vt_mod
from longctx.plugins.ruler.common import DEPTHS, essay_sentences, insert_at, nearest_boundary, previous_boundary

# -- the reference's strings, verbatim (NVIDIA/RULER scripts/data/synthetic/constants.py, niah.py) --------

RULER_NIAH_NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
RULER_NIAH_TEMPLATE = (
    "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {type_needle_v} afterwards.\n{context}\nWhat are all the special magic "
    "{type_needle_v} for {query} mentioned in the provided text?"
)
RULER_NIAH_PREFIX = " The special magic {type_needle_v} for {query} mentioned in the provided text are"
RULER_VT_TEMPLATE = (
    "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\n"
    "Question: Find all variables that are assigned the value {query} in the text above."
)
RULER_VT_PREFIX = (
    " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are "
    "assigned the value {query}, they are: "
)
RULER_CWE_TEMPLATE = (
    "Below is a numbered list of words. In these words, some appear more often than others. Memorize the "
    "ones that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?"
)
RULER_CWE_PREFIX = " Answer: The top 10 words that appear most often in the list are:"
RULER_FWE_TEMPLATE = (
    "Read the following coded text and track the frequency of each coded word. Find the three most "
    "frequently appeared coded words. {context}\nQuestion: Do not provide any explanation. Please ignore "
    "the dots '....'. What are the three most frequently appeared words in the above coded text?"
)
RULER_FWE_PREFIX = " Answer: According to the coded text above, the three most frequently appeared words are:"
RULER_QA_TEMPLATE = (
    "Answer the question based on the given documents. Only give me the answer and do not output any "
    "other words.\n\nThe following are given documents.\n\n{context}\n\nAnswer the question based on the "
    "given documents. Only give me the answer and do not output any other words.\n\nQuestion: {query}"
)
RULER_QA_PREFIX = " Answer:"

#: scripts/synthetic.yaml (niah entries): type_haystack, type_needle_k, type_needle_v, k, v, q
SYNTHETIC_YAML = {
    "ruler-niah-single-1": ("noise", "words", "numbers", 1, 1, 1),
    "ruler-niah-single-2": ("essay", "words", "numbers", 1, 1, 1),
    "ruler-niah-single-3": ("essay", "words", "uuids", 1, 1, 1),
    "ruler-niah-multikey-1": ("essay", "words", "numbers", 4, 1, 1),
    "ruler-niah-multikey-2": ("needle", "words", "numbers", 1, 1, 1),
    "ruler-niah-multikey-3": ("needle", "uuids", "uuids", 1, 1, 1),
    "ruler-niah-multivalue": ("essay", "words", "numbers", 1, 4, 1),
    "ruler-niah-multiquery": ("essay", "words", "numbers", 1, 1, 4),
}
NEEDLE_RE = re.compile(r"One of the special magic (words|numbers|uuids) for (.+?) is: (.+?)\.(?=\s|$)")
ADJS, NOUNS = set(word_list(("adjective",))), set(word_list(("noun",)))


def task_of(name, **params):
    config, cls = TASKS[name]
    return cls(config(**params))


def one(task, tok, length, depth=0.5, seed=0) -> Case:
    cases = list(task.cases(tok, length=length, depth=depth, seed=seed))
    assert len(cases) == 1
    return cases[0]


def check_length(tok, case, tolerance):
    measured = count_prompt_tokens(tok, case.prompt) + case.max_new_tokens
    assert case.actual_tokens == measured
    assert case.target_tokens * (1 - tolerance) <= measured <= case.target_tokens


def is_word_key(text):
    parts = text.split("-")
    return any("-".join(parts[:i]) in ADJS and "-".join(parts[i:]) in NOUNS for i in range(1, len(parts)))


def check_format(kind, text):
    if kind == "numbers":
        assert re.fullmatch(r"[1-9]\d{6}", text), text
    elif kind == "uuids":
        assert uuid.UUID(text).version == 4 and str(uuid.UUID(text)) == text
    else:
        assert is_word_key(text), text


# -- templates and configurations ---------------------------------------------------------------------


def test_templates_are_rulers():
    assert niah_mod.NEEDLE == RULER_NIAH_NEEDLE
    assert niah_mod.TEMPLATE == RULER_NIAH_TEMPLATE and niah_mod.ANSWER_PREFIX == RULER_NIAH_PREFIX
    assert vt_mod.TEMPLATE == RULER_VT_TEMPLATE and vt_mod.ANSWER_PREFIX == RULER_VT_PREFIX
    assert cwe_mod.TEMPLATE.format(num_cw=10, context="{context}") == RULER_CWE_TEMPLATE
    assert cwe_mod.ANSWER_PREFIX.format(num_cw=10) == RULER_CWE_PREFIX
    assert fwe_mod.TEMPLATE == RULER_FWE_TEMPLATE and fwe_mod.ANSWER_PREFIX == RULER_FWE_PREFIX
    assert qa_mod.TEMPLATE == RULER_QA_TEMPLATE and qa_mod.ANSWER_PREFIX == RULER_QA_PREFIX
    assert qa_mod.DOCUMENT == "Document {i}:\n{document}"
    assert DEPTHS[:5] == (0, 3, 5, 8, 10) and DEPTHS[-3:] == (95, 97, 100) and len(DEPTHS) == 40


def test_single_answer_rewrite_and_query_join():
    t = niah_mod.singular_template(RULER_NIAH_TEMPLATE + RULER_NIAH_PREFIX).format(
        type_needle_v="number", context="C", query="k"
    )
    assert t == (
        "A special magic number is hidden within the following text. Make sure to memorize it. I will quiz you "
        "about the number afterwards.\nC\nWhat is the special magic number for k mentioned in the provided "
        "text? The special magic number for k mentioned in the provided text is"
    )
    assert niah_mod.join_query(["a"]) == "a"
    assert niah_mod.join_query(["a", "b"]) == "a, and b"  # RULER's ", ".join(all but last) + ", and " + last
    assert niah_mod.join_query(["a", "b", "c", "d"]) == "a, b, c, and d"


@pytest.mark.parametrize("name", list(SYNTHETIC_YAML))
def test_variant_defaults_are_synthetic_yaml(name):
    config, _ = TASKS[name]
    c = config()
    assert (
        c.type_haystack,
        c.type_needle_k,
        c.type_needle_v,
        c.num_needle_k,
        c.num_needle_v,
        c.num_needle_q,
    ) == SYNTHETIC_YAML[name]
    assert c.max_new_tokens == 128
    assert (vt_mod.VariableTrackingConfig().num_chains, vt_mod.VariableTrackingConfig().num_hops) == (1, 4)
    cw = cwe_mod.CommonWordsConfig()
    assert (cw.freq_cw, cw.freq_ucw, cw.num_cw, cw.max_new_tokens) == (30, 3, 10, 120)
    assert (fwe_mod.FrequentWordsConfig().alpha, fwe_mod.FrequentWordsConfig().max_new_tokens) == (2.0, 50)
    assert (vt_mod.VariableTrackingConfig().max_new_tokens, qa_mod.FactQAConfig().max_new_tokens) == (30, 32)


# -- NIAH ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SYNTHETIC_YAML))
def test_niah_layout_counts_formats(byte_tok, name):
    haystack, kt, vt, k, v, q = SYNTHETIC_YAML[name]
    length = 4096 if haystack == "needle" else 2048
    task = task_of(name)
    case = one(task, byte_tok, length, depth=0.5, seed=3)
    check_length(byte_tok, case, 0.03 if haystack == "needle" else 0.02)
    single = q * v == 1
    tv = vt[:-1] if single else vt
    query = niah_mod.join_query(case.meta["queried_keys"])
    head = ("A" if single else "Some") + f" special magic {tv} " + ("is" if single else "are") + " hidden"
    assert case.prompt.startswith(head + " within the following text. Make sure to memorize it. ")
    tail = (
        f"What {'is' if single else 'are all'} the special magic {tv} for {query} mentioned in the provided text?"
        f" The special magic {tv} for {query} mentioned in the provided text {'is' if single else 'are'}"
    )
    assert case.prompt.endswith("\n" + tail) and case.query == tail
    needles = NEEDLE_RE.findall(case.prompt)
    assert all(t == vt for t, _, _ in needles)  # the needle keeps the plural
    by_key: dict[str, list[str]] = {}
    for _, key, value in needles:
        by_key.setdefault(key, []).append(value)
        check_format(kt, key)
        check_format(vt, value)
    asked = case.meta["queried_keys"]
    assert len(asked) == q and len(set(asked)) == q
    if haystack == "needle":
        assert len(needles) > 20  # distractors, fresh keys and values
        assert all(len(by_key[a]) == 1 for a in asked)
        assert len({val for _, _, val in needles}) == len(needles)
    else:
        assert len(needles) == max(k, q) * v and len(by_key) == max(k, q)
    refs = [val for a in asked for val in by_key[a]]
    assert sorted(case.references) == sorted(refs) and len(refs) == q * v
    for r in refs:
        assert case.prompt.count(r) == 1
    assert task.score(case.answer, case) == 1.0
    # the rest of the context is the haystack
    context = case.prompt.split("\n", 1)[1].rsplit("\n", 1)[0]
    rest = NEEDLE_RE.sub("", context)
    if haystack == "noise":
        lines = [x for x in rest.split("\n") if x]
        assert all(x == NOISE for x in lines[:-1]) and NOISE.startswith(lines[-1])
    elif haystack == "essay":
        assert " ".join(rest.split()) == essay_sentences().prefix(case.meta["haystack_units"])[0]
    else:
        assert rest.strip("\n") == "" and context.count("\n") == len(needles) - 1


@pytest.mark.parametrize("name", ["ruler-niah-single-1", "ruler-niah-single-2", "ruler-niah-multikey-2"])
@pytest.mark.parametrize("depth", [0.0, 0.2, 0.5, 0.8, 1.0])
def test_niah_depth_places_the_answer_needle(byte_tok, name, depth):
    case = one(task_of(name), byte_tok, 4096, depth=depth, seed=1)
    answer = case.references[0]
    start = case.prompt.index("\n") + 1
    end = case.prompt.rindex("\n")
    context = case.prompt[start:end]
    needle = next(m for m in NEEDLE_RE.finditer(context) if m.group(3) == answer)
    others = [m for m in NEEDLE_RE.finditer(context) if m.group(3) != answer]
    before, after = context[: needle.start()].strip(), context[needle.end() :].strip()
    if case.meta["type_haystack"] != "needle":  # the haystack without the other needles
        before, after = NEEDLE_RE.sub("", before).strip(), NEEDLE_RE.sub("", after).strip()
    fraction = len(before) / (len(before) + len(after))
    assert abs(fraction - depth) <= 0.03, (fraction, case.meta["depth_placed"])
    assert abs(case.meta["depth_placed"] - depth) <= 0.03
    if depth == 0.0 and not others:
        assert context.startswith(needle.group(0))
    if depth == 1.0 and not others:
        assert context.endswith(needle.group(0))
    assert case.depth == depth


def test_niah_other_needles_at_rulers_depths(byte_tok):
    task = task_of("ruler-niah-multikey-1")
    case = one(task, byte_tok, 8192, depth=0.3, seed=2)
    depths = sorted(n["depth"] for n in case.meta["needles"] if not n["answer"])
    # three distinct depths of RULER's grid (up to the nearest sentence boundary), none at the asked one
    assert len(depths) == 3
    assert all(min(abs(d - g / 100) for g in DEPTHS) < 0.03 for d in depths)
    assert abs(case.meta["depth_placed"] - 0.3) < 0.03


def test_niah_placement_ruler_ignores_depth(byte_tok):
    task = task_of("ruler-niah-single-2", placement="ruler")
    assert task.depth_sensitive is False and task_of("ruler-niah-single-2").depth_sensitive is True
    a, b = (one(task, byte_tok, 2048, depth=d, seed=4) for d in (0.0, 1.0))
    assert a.prompt == b.prompt and a.depth == 0.0 and b.depth == 1.0
    assert min(abs(a.meta["depth_placed"] - g / 100) for g in DEPTHS) < 0.03


def test_niah_deterministic_and_paired(byte_tok):
    task = task_of("ruler-niah-multivalue")
    a = one(task, byte_tok, 2048, depth=0.5, seed=7)
    assert a == one(task_of("ruler-niah-multivalue"), byte_tok, 2048, depth=0.5, seed=7)
    other_length = one(task, byte_tok, 1024, depth=0.1, seed=7)
    assert other_length.references == a.references and other_length.meta["keys"] == a.meta["keys"]
    answers = {one(task, byte_tok, 1024, seed=s).references for s in range(5)}
    assert len(answers) == 5


def test_niah_parameters_override(byte_tok):
    task = load_tasks(["ruler-niah-single-1:type_needle_v=uuids,type_needle_k=numbers,num_needle_v=2"])
    [(key, t)] = task.items()
    assert key == "ruler-niah-single-1:type_needle_k=numbers,type_needle_v=uuids,num_needle_v=2"
    case = one(t, byte_tok, 2048)
    [(_, k1, v1), (_, k2, v2)] = NEEDLE_RE.findall(case.prompt)
    assert k1 == k2 and re.fullmatch(r"\d{7}", k1)
    assert {v1, v2} == set(case.references) and all(uuid.UUID(v).version == 4 for v in (v1, v2))
    assert "Some special magic uuids are hidden" in case.prompt
    with pytest.raises(ParameterError):
        load_tasks(["ruler-niah-single-1:type_haystack=paul_graham"])
    with pytest.raises(ParameterError, match="at most 40"):
        load_tasks(["ruler-niah-single-2:num_needle_k=10,num_needle_v=5"])


def test_niah_too_short_names_the_task(byte_tok):
    with pytest.raises(InputError, match=r"ruler-niah-multikey-1: a length of 300 tokens is too short"):
        one(task_of("ruler-niah-multikey-1"), byte_tok, 300)


# -- variable tracking -----------------------------------------------------------------------------------


def resolve(lines):
    """Each variable's value from ``VAR X = 12345`` / ``VAR Y = VAR X`` lines, in order."""
    values = {}
    for line in lines:
        m = re.fullmatch(r"VAR ([A-Z]+) = (?:(\d+)|VAR ([A-Z]+)) ?\.?", line.strip())
        if m:
            values[m.group(1)] = m.group(2) or values[m.group(3)]
    return values


@pytest.mark.parametrize("haystack", ["noise", "essay"])
def test_vt_chains_hold_the_value(byte_tok, haystack):
    task = vt_mod.VariableTracking(vt_mod.VariableTrackingConfig(type_haystack=haystack, num_chains=2))
    case = one(task, byte_tok, 4096, seed=5)
    check_length(byte_tok, case, 0.02)
    example, main = case.prompt.rsplit("Memorize and track the chain(s)", 1)
    value = case.meta["value"]
    assert main.endswith(
        f"\nQuestion: Find all variables that are assigned the value {value} in the text above. Answer: According "
        f"to the chain(s) of variable assignment in the text above, 5 variables are assigned the value {value}, "
        "they are: "
    )
    assert case.query.startswith("Question: Find all variables that are assigned the value " + value)
    pieces = re.findall(r"VAR [A-Z]+ = (?:\d+|VAR [A-Z]+) ?\.?", main)
    values = resolve(pieces)
    assert len(values) == 10 and len(set(values.values())) == 2
    holders = sorted(k for k, v in values.items() if v == value)
    assert holders == sorted(case.references) and len(holders) == 5
    assert all(re.fullmatch(r"[A-Z]{5}", r) for r in case.references)
    assert 10000 <= int(value) <= 99998
    if haystack == "noise":
        # RULER's chain lines: "VAR X = v", then "VAR Y = VAR X " with the trailing space, one per line
        lines = main.split("\n")
        chain = [x for x in lines if x.startswith("VAR ")]
        assert len(chain) == 10 and sum(x.endswith(" ") for x in chain) == 8
        assert all(x in (NOISE, "") or x.startswith("VAR ") or NOISE.startswith(x) for x in lines[2:-2])
    else:
        assert all(p.endswith(".") for p in pieces)
    # the chain order is kept in the text
    refs = case.references
    assert [main.index(f"VAR {r} =") for r in refs] == sorted(main.index(f"VAR {r} =") for r in refs)
    # RULER's one-shot example: 3-letter names, value resolved correctly, answer after "they are: " + " "
    assert example.startswith("Memorize and track the chain(s) of variable assignment")
    m = re.search(r"assigned the value (\d+), they are:  ((?:[A-Z]{3} ?){5})\n\n$", example)
    assert m, example[-200:]
    ex_values = resolve(re.findall(r"VAR [A-Z]+ = (?:\d+|VAR [A-Z]+) ?\.?", example))
    # RULER gives every chain of its example the same value and answers with the first chain's names
    ex_answer = m.group(2).split()
    assert len(set(ex_answer)) == 5 and all(ex_values[x] == m.group(1) for x in ex_answer)
    assert sum(v == m.group(1) for v in ex_values.values()) == 10
    assert task.score(case.answer, case) == 1.0
    assert task.score(" ".join(case.references[:2]), case) == pytest.approx(0.4)


def test_vt_example_renamed_per_seed_and_deterministic(byte_tok):
    task = vt_mod.VariableTracking()
    a, b = one(task, byte_tok, 2048, seed=0), one(task, byte_tok, 2048, seed=1)
    ea, eb = (c.prompt.rsplit("Memorize and track", 1)[0] for c in (a, b))
    assert ea != eb and len(ea) == len(eb)  # same layout, fresh names and value
    assert a == one(vt_mod.VariableTracking(), byte_tok, 2048, seed=0)
    assert one(task, byte_tok, 2048, depth=0.0, seed=0).prompt == a.prompt  # depth means nothing
    assert vt_mod.VariableTracking.depth_sensitive is False
    no_shot = one(vt_mod.VariableTracking(vt_mod.VariableTrackingConfig(add_fewshot=False)), byte_tok, 2048)
    assert no_shot.prompt.count("Memorize and track") == 1


# -- common words ------------------------------------------------------------------------------------


def parse_list(text):
    items = re.split(r"(?:^| )(\d+)\. ", text)[1:]
    numbers, words = [int(x) for x in items[0::2]], items[1::2]
    assert numbers == list(range(1, len(words) + 1))
    return words


@pytest.mark.parametrize(("length", "freqs", "example"), [(2048, (6, 1), (20, 3, 1)), (8192, (30, 3), (40, 10, 3))])
def test_cwe_answers_are_the_most_common_words(byte_tok, length, freqs, example):
    task = cwe_mod.CommonWords()
    case = one(task, byte_tok, length, seed=2)
    check_length(byte_tok, case, 0.02)
    shot, main = case.prompt.split("\nBelow is a numbered list of words.")
    main_list = main.split("\n")[1]
    counts = Counter(parse_list(main_list))
    top = [w for w, c in counts.items() if c == freqs[0]]
    assert sorted(top) == sorted(case.references) and len(top) == 10
    assert all(c == freqs[1] for w, c in counts.items() if w not in top)
    assert case.meta["short_setting"] == (length < 4096)
    assert case.prompt.endswith(
        "\nQuestion: What are the 10 most common words in the above list? Answer: The top 10 words that appear "
        "most often in the list are:"
    )
    # the worked example: its own list, then its answer after the answer prefix
    ex_list = shot.split("\n")[1]
    ex_counts = Counter(parse_list(ex_list))
    assert len(ex_counts) == example[0]
    ex_top = sorted(w for w, c in ex_counts.items() if c == example[1])
    answer = shot.split("Answer: The top 10 words that appear most often in the list are: ")[1]
    assert sorted(parse_list(answer)) == ex_top and len(ex_top) == 10
    assert task.score(case.answer, case) == 1.0
    assert task.score(" ".join(case.references[:3]).upper(), case) == pytest.approx(0.3)


def test_cwe_word_pool_and_its_limit(byte_tok, monkeypatch):
    base, extra = cwe_mod.word_pool()
    assert base == word_list(("noun", "adjective", "verb")) and len(base) > 8000
    assert extra and not set(base) & set(extra) and all(re.fullmatch(r"[a-z]{3,}", w) for w in extra)
    monkeypatch.setattr(cwe_mod, "word_pool", lambda: (base[:40], extra[:20]))
    with pytest.raises(InputError, match="more than the 60 distinct words"):
        one(cwe_mod.CommonWords(), byte_tok, 16384)
    with pytest.raises(ParameterError):
        load_tasks(["ruler-cwe:freq_cw=3,freq_ucw=3"])


# -- frequent words ----------------------------------------------------------------------------------


def test_zeta_and_counts_by_hand():
    assert fwe_mod.zeta(2.0) == pytest.approx(math.pi**2 / 6, rel=1e-14)
    assert fwe_mod.zeta(4.0) == pytest.approx(math.pi**4 / 90, rel=1e-14)
    assert fwe_mod.zeta(3.0) == pytest.approx(1.2020569031595942, rel=1e-14)
    assert fwe_mod.zeta(1.5) == pytest.approx(2.612375348685488, rel=1e-13)
    # int(100 k^-2 / (pi^2/6)): 60.79, 15.20, 6.75, 3.80, 2.43
    assert fwe_mod.counts(100, 5, 2.0) == [60, 15, 6, 3, 2]
    with pytest.raises(ValueError):
        fwe_mod.zeta(1.0)


def test_zeta_matches_scipy():
    special = pytest.importorskip("scipy.special")
    for s in (1.1, 1.7, 2.0, 2.5, 5.0):
        assert fwe_mod.zeta(s) == pytest.approx(float(special.zeta(s)), rel=1e-13)


@pytest.mark.parametrize("length", [2048, 4096])
def test_fwe_answers_are_the_most_frequent_coded_words(byte_tok, length):
    task = fwe_mod.FrequentWords()
    case = one(task, byte_tok, length, seed=6)
    check_length(byte_tok, case, 0.02)
    context = case.prompt.split("Find the three most frequently appeared coded words. ")[1].split("\nQuestion:")[0]
    counts = Counter(context.split(" "))
    ranked = counts.most_common()
    assert ranked[0][0] == "..."
    assert [w for w, _ in ranked[1:4]] == list(case.references)
    assert ranked[3][1] > ranked[4][1]
    assert case.meta["vocab_size"] == (length - 50) // 50
    assert all(re.fullmatch(r"[a-z]{6}", w) for w in counts if w != "...")
    n = case.meta["num_words"]
    assert sorted(counts.values(), reverse=True) == [c for c in fwe_mod.counts(n, len(counts), 2.0) if c]
    assert task.min_words(case.meta["vocab_size"]) <= n
    assert task.score(case.answer, case) == 1.0 and task.score("...", case) == 0.0


def test_fwe_min_words_and_too_short(byte_tok):
    task = fwe_mod.FrequentWords()
    lo = task.min_words(100)
    for n in range(lo, lo + 200):
        c = fwe_mod.counts(n, 5, 2.0)
        assert c[3] > c[4]
    c = fwe_mod.counts(lo - 1, 5, 2.0)
    assert not c[3] > c[4]
    with pytest.raises(InputError, match="ruler-fwe"):
        one(task, byte_tok, 250)


# -- QA stand-in -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(qa_mod.QUESTIONS))
def test_qa_golden_document_and_references(byte_tok, kind):
    task = qa_mod.FactQA(qa_mod.FactQAConfig(question=kind))
    case = one(task, byte_tok, 4096, depth=0.5, seed=8)
    check_length(byte_tok, case, 0.02)
    docs = re.findall(r"Document (\d+):\n(.*?)(?=\n\nDocument \d+:|\n\nAnswer the question)", case.prompt, re.S)
    assert [int(i) for i, _ in docs] == list(range(1, len(docs) + 1))
    gold = docs[case.meta["gold_document"] - 1][1]
    town = case.meta["town"]
    assert town in gold and all(r in gold for r in case.references)
    assert all(case.prompt.count(r) == 1 for r in case.references)  # the answer is unambiguous
    # the town's other paragraphs are there (RULER's same-article paragraphs), without the answer
    assert sum(town in d for _, d in docs) == 3
    question = qa_mod.QUESTIONS[kind][1].format(town=town)
    assert case.prompt.endswith(f"\n\nQuestion: {question} Answer:")
    assert case.query == f"Question: {question} Answer:"
    assert abs(case.meta["depth_placed"] - 0.5) < 0.1
    assert task.score(case.answer, case) == 1.0


def test_qa_depth_and_match_part(byte_tok):
    task = qa_mod.FactQA(qa_mod.FactQAConfig(question="founder"))
    first, last = (one(task, byte_tok, 4096, depth=d, seed=3) for d in (0.0, 1.0))
    assert first.meta["gold_document"] == 1 and last.meta["gold_document"] == last.meta["documents"]
    full, surname = first.references
    assert full.endswith(" " + surname)
    assert task.score(f"It was {surname.upper()}.", first) == 1.0  # string_match_part: any reference
    assert task.score("Nobody", first) == 0.0
    assert task.tags == {"diffusion": "low", "scope": "low"}


# -- scoring by hand ----------------------------------------------------------------------------------


def test_string_match_all_and_part_by_hand():
    task = task_of("ruler-niah-multivalue")
    case = Case("t", "p", "a", 1, 1, 0.5, 0, 1, references=("1234567", "2345678", "3456789", "4567890"))
    assert task.score("1234567 and 3456789", case) == 0.5
    assert task.score("\x00 1234567\x1f2345678 3456789 4567890 \n", case) == 1.0
    assert task.score("12345678", case) == 0.5  # substrings count, as in RULER: 1234567 and 2345678
    assert task.score("", case) == 0.0
    words = Case("t", "p", "a", 1, 1, 0.5, 0, 1, references=("Quiet-Harbor", "x"))
    assert task.score("QUIET-HARBOR", words) == 0.5
    qa = qa_mod.FactQA()
    assert qa.score("the x", words) == 1.0 and qa.score("nothing", words) == 0.0


# -- shared helpers ----------------------------------------------------------------------------------


def test_insertion_helpers():
    assert insert_at("A. B. C.", [(2, "N"), (0, "M"), (8, "E")], " ") == (
        "M A. N B. C. E",
        [(5, 6), (0, 1), (13, 14)],
    )
    assert insert_at("L1\nL2", [(2, "X "), (2, "Y ")], "\n")[0] == "L1\nX \nY \nL2"
    assert nearest_boundary([0, 10, 20], 14) == 10 and nearest_boundary([0, 10, 20], 16) == 20
    assert nearest_boundary([0, 10, 20], 15) == 10  # ties go to the earlier one
    assert previous_boundary([0, 10, 20], 19) == 10 and previous_boundary([0, 10, 20], 5) == 0
    text, bounds = essay_sentences().prefix(40)
    assert len(text.split(" ")) == 40 and bounds[0] == 0 and bounds[-1] == len(text)
    assert all(text[b - 1] in ".?!\"'”’" for b in bounds[1:-1])


# -- registration, chat templates, a tiny model ---------------------------------------------------------


def test_registered_tasks_and_tags():
    from longctx.hooks.evaluation import EvalTask
    from longctx.registry import get_registry

    reg = get_registry()
    assert set(TASKS) == {*SYNTHETIC_YAML, "ruler-vt", "ruler-cwe", "ruler-fwe", "ruler-qa"}
    for name in TASKS:
        tech = reg.get("evaluation", name)
        assert tech.plugin == "ruler" and "2404.06654" in tech.paper
        task = tech.build(tech.config(), None)
        assert isinstance(task, EvalTask) and task.name == name
        assert set(task.tags) == {"diffusion", "scope"}
        assert getattr(task, "depth_sensitive", True) is (name not in ("ruler-vt", "ruler-cwe", "ruler-fwe"))
    assert "stand-in" in reg.get("evaluation", "ruler-qa").summary
    assert "stand-in" in reg.get("evaluation", "ruler-qa").paper
    assert dict(TASKS["ruler-cwe"][1]().tags) == {"diffusion": "high", "scope": "high"}


def test_chat_template_prompts_end_with_the_answer_prefix(byte_tok):
    byte_tok.chat_template = (
        "{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    chat = ChatTokenizer(byte_tok)
    case = one(task_of("ruler-niah-single-1"), chat, 1024, seed=1)
    key = case.meta["queried_keys"][0]
    assert case.prompt.startswith("<|user|>A special magic number")
    assert case.prompt.endswith(
        f"mentioned in the provided text?<|end|><|assistant|> The special magic number for {key} mentioned in "
        "the provided text is"
    )
    assert case.query.startswith("What is the special magic number") and case.prompt.endswith(case.query)
    check_length(chat, case, 0.02)


def test_run_eval_on_tiny_llama(tiny, tmp_path):
    from longctx.runtime import compose

    task = task_of("ruler-niah-single-1", max_new_tokens=8)
    with compose(tiny("llama", max_position_embeddings=1024), None) as pipe:
        [row] = run_eval({"tiny": pipe}, {"ruler-niah-single-1": task}, lengths=[700], out_dir=tmp_path)
    assert row["error"] is None and row["task"] == "ruler-niah-single-1"
    assert row["prompt_tokens"] + 8 == row["actual_tokens"] <= 700
    assert row["score"] == task.score(row["prediction"], Case.from_json({**row, "prompt": "", "references": []}))


# -- Gemma's tokenizer and the 32k timing -----------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma_tokenizer():
    from longctx.models import load_model

    return load_model("gemma-3-270m").tokenizer


@pytest.mark.real_model
@pytest.mark.parametrize("name", sorted(TASKS))
def test_lengths_in_gemmas_tokenizer(gemma_tokenizer, name):
    task = task_of(name)
    for length in (1024, 4096):
        if name == "ruler-vt" and length == 1024:
            continue  # its one-shot example alone takes 500 tokens
        case = one(task, gemma_tokenizer, length, seed=1)
        needles = "multikey-2" in name or "multikey-3" in name  # one distractor needle: up to ~60 tokens
        check_length(gemma_tokenizer, case, max(0.02, 70 / length) if needles else 0.02)
        assert all(r in case.prompt for r in case.references)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TASKS))
def test_32k_case_generation_time(byte_tok, name):
    task = task_of(name)
    one(task, byte_tok, 2048)  # warm the haystack caches
    t0 = time.perf_counter()
    case = one(task, byte_tok, 32768, seed=1)
    seconds = time.perf_counter() - t0
    print(f"\n{name}: one 32k-token case with the byte tokenizer in {seconds:.3f} s ({case.actual_tokens} tokens)")
    check_length(byte_tok, case, 0.02)
    assert seconds < 1.0
