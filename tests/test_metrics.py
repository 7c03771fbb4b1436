"""longctx.metrics against hand-computed values and against the reference implementations.

Hand-computed cases spell out the arithmetic. Cases marked "reference:" hold the output of the reference
code, obtained in a scratch venv (rouge 1.0.1, fuzzywuzzy 0.18.0 without python-Levenshtein, jieba 0.42.1,
numpy 2.4.6, CPython 3.11) by running THUDM/LongBench@2e00731 LongBench/metrics.py + eval.py,
infinigence/LVEval@63e7ae9 metrics.py + evaluation.py's scorer and NVIDIA/RULER@c3f5e3b
scripts/eval/synthetic/constants.py; the same harness compared every function here with its reference on
~400 random and adversarial string pairs each (plus 150 long ROUGE pairs around the recursion limit and
the task-level scorers on every dataset) with no difference.
"""

from __future__ import annotations

import math
import sys

import pytest

from longctx import metrics as M
from longctx.errors import InputError, LongctxError


def rouge_f(overlap: int, m: int, n: int) -> float:
    """The `rouge` package's F for ``overlap`` distinct LCS words, ``m`` reference and ``n`` candidate words."""
    r, p = overlap / m, overlap / n
    return 2.0 * ((p * r) / (p + r + 1e-8))


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


# --- normalization and F1 -------------------------------------------------------------------------


def test_normalize_answer():
    assert M.normalize_answer("The Cat, sat!  ") == "cat sat"
    # punctuation goes first, so a hyphenated article is glued on rather than removed (reference output)
    assert M.normalize_answer("The-End, l'an: A Tale of the Cities!") == "theend lan tale of cities"


def test_normalize_zh_answer():
    # 《 is not in LongBench's Chinese punctuation list, 》 is; all whitespace goes (reference output)
    assert M.normalize_zh_answer("《书名》，Hello World！") == "《书名helloworld"


def test_token_f1():
    assert M.token_f1(["a", "b", "b"], ["b", "b", "c"]) == pytest.approx(2 / 3)  # overlap 2, P = R = 2/3
    assert M.token_f1([], ["a"]) == 0.0
    assert M.token_f1(["a"], []) == 0.0


def test_qa_f1_score():
    # [cat, sat] vs [cat, sat, down]: P = 1, R = 2/3, F1 = 0.8
    assert M.qa_f1_score("The cat sat.", "a cat sat down") == pytest.approx(0.8)
    assert M.qa_f1_score("", "anything") == 0.0
    assert M.qa_f1_score("x", "y", all_classes=None) == 0.0  # the scorer passes all_classes to every metric


def test_qa_f1_zh_score():
    pytest.importorskip("jieba")
    # jieba: 首都/是/北京 vs 北京 → P = 1/3, R = 1, F1 = 0.5
    assert M.qa_f1_zh_score("首都是北京", "北京") == 0.5
    # reference: 0.33333333333333337 (我们/在/北京大学/学习/中文/。 vs 北京大学; 。 normalizes away)
    assert M.qa_f1_zh_score("我们在北京大学学习中文。", "北京大学") == 0.33333333333333337


def test_missing_jieba_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "jieba", None)
    with pytest.raises(LongctxError, match="pip install jieba"):
        M.qa_f1_zh_score("北京", "北京")


# --- ROUGE-L ----------------------------------------------------------------------------------------


def test_rouge_score_hand_computed():
    # candidate {police, killed, the, gunman}, reference 6 distinct words, LCS "the gunman"
    assert M.rouge_score("police killed the gunman", "the gunman was shot by police") == rouge_f(2, 6, 4)
    assert M.rouge_score("police killed the gunman", "the gunman was shot by police") == 0.39999999520000007
    assert M.rouge_score("same words", "same words") == rouge_f(2, 2, 2) == 0.999999995


def test_rouge_score_lcs_tie_break():
    # x = reference [a a b c], y = candidate [b c a a]: both "a a" (1 distinct word) and "b c" (2) are LCSs;
    # the package walks left on ties and reconstructs "b c", so the overlap is 2, not 1.
    assert M.rouge_score("b c a a", "a a b c") == rouge_f(2, 3, 3)


def test_rouge_score_sentences_and_empty_words():
    # "a. . b" → sentences "a", "" and "b"; the blank sentence is one empty word: n = |{a, "", b}| = 3
    assert M.rouge_score("a. . b", "a b") == rouge_f(2, 2, 3) == 0.7999999952000001
    # reference: two sentences each side
    assert M.rouge_score("the cat sat on the mat. it was happy", "the cat was on the mat. happy it was") == (
        0.7999999950222222
    )


def test_rouge_score_raises_become_zero():
    assert M.rouge_score("", "") == 0.0
    assert M.rouge_score("...", "x") == 0.0  # no sentence: the package raises, LongBench scores 0
    assert M.rouge_score("x", ". .") == rouge_f(0, 1, 1) == 0.0  # " " is a sentence: one empty word


def test_rouge_score_recursion_limit():
    # reference: identical 990-word sentences score 0.999999995 through eval.py's gov_report, 991 words 0.0
    assert M.rouge_score(words(990), words(990)) == 0.999999995
    assert M.rouge_score(words(991), words(991)) == 0.0
    # split into sentences the walks are short and the score is fine
    assert M.rouge_score(words(991) + ". w0", words(991) + ". w0") == 0.0
    long_text = ". ".join(words(991).split(" "))
    assert M.rouge_score(long_text, long_text) == 0.999999995


def test_rouge_zh_score():
    pytest.importorskip("jieba")
    # 今天天气/很/好 vs 今天天气/不错: LCS 1 word, m = 2, n = 3
    assert M.rouge_zh_score("今天天气很好", "今天天气不错") == rouge_f(1, 2, 3)
    assert M.rouge_zh_score("我们在北京大学学习中文。", "我们在北京学习。") == 0.7272727223140496  # reference
    # one frame deeper than rouge_score: 989 words pass, 990 score 0 (reference, through eval.py's vcsum)
    assert M.rouge_zh_score(words(989), words(989)) == 0.999999995
    assert M.rouge_zh_score(words(990), words(990)) == 0.0


# --- the other LongBench metrics ---------------------------------------------------------------------


def test_classification_score():
    classes = ["abbreviation", "description", "entity", "description and abstract concept"]
    # substring matches are case-sensitive ("Entity" is not "entity"): [abbreviation, description] → 1/2
    assert M.classification_score("Entity: abbreviation and description", "description", all_classes=classes) == 0.5
    assert M.classification_score("nothing here", "entity", all_classes=classes) == 0.0


def test_classification_score_removal_skips_next():
    # matches [a, ab, abc] for gold "abc": removing "a" shifts "ab" under the iterator, which then sees
    # "abc" — so "ab" survives and the score is 1/2 (it would be 1 without LongBench's quirk)
    assert M.classification_score("a ab abc", "abc", all_classes=["a", "ab", "abc"]) == 0.5


def test_classification_score_needs_classes():
    with pytest.raises(InputError, match="all_classes"):
        M.classification_score("x", "y")


def test_retrieval_scores():
    # digit runs [3, 13, 3]: two of three equal the id
    assert M.retrieval_score("Paragraph 3 and paragraph 13, maybe 3", "Paragraph 3") == pytest.approx(2 / 3)
    assert M.retrieval_score("Paragraph 07", "Paragraph 7") == 0.0  # compared as strings
    assert M.retrieval_score("no digits", "Paragraph 7") == 0.0
    with pytest.raises(InputError, match="names no paragraph"):
        M.retrieval_score("1", "the first one")


def test_retrieval_zh_score():
    assert M.retrieval_zh_score("答案是段落3", "段落3") == 1.0
    assert M.retrieval_zh_score("段落3，段落4", "段落3") == 0.5
    with pytest.raises(InputError):
        M.retrieval_zh_score("3", "Paragraph 3")


def test_count_score():
    assert M.count_score("There are 5 passages, not 50 or 5.", "5") == pytest.approx(2 / 3)
    assert M.count_score("five", "5") == 0.0


def test_fuzz_ratio():
    # kitten/sitting: matching blocks "itt" + "n" = 4 of 6 + 7 characters → 2 * 4 / 13 = 0.615 → 62
    assert M.fuzz_ratio("kitten", "sitting") == 62
    assert M.fuzz_ratio("", "") == 100
    assert M.fuzz_ratio("abc", "") == 0
    assert M.fuzz_ratio(None, "abc") == 0


def test_code_sim_score():
    # first line without ` # // is "x = foo(1)": 9 of 10 characters match → 2 * 9 / 20 → 90 → 0.9
    assert M.code_sim_score("```python\n# set x\nx = foo(1)\n", "x = foo(2)") == 0.9
    assert M.code_sim_score("\n\nreturn self.value  # done\nreturn value", "return value") == 1.0
    assert M.code_sim_score("# only a comment", "x = 1") == 0.0  # "" vs gold
    assert M.code_sim_score("# only a comment", "") == 1.0  # "" == "": fuzz.ratio says 100


def test_code_sim_score_difflib_autojunk():
    # reference: 0.01 — over 200 characters difflib treats popular characters as junk
    assert M.code_sim_score("def f(a, b):" * 30, "def g(a, b):" * 25) == 0.01


# --- LongBench scorers --------------------------------------------------------------------------------


def test_dataset_metric_table():
    table = M.LONGBENCH_DATASET_METRIC
    assert len(table) == 21
    assert table["multifieldqa_zh"] is M.qa_f1_zh_score
    assert table["triviaqa"] is M.qa_f1_score
    assert table["vcsum"] is M.rouge_zh_score and table["samsum"] is M.rouge_score
    assert table["lsht"] is M.classification_score and table["repobench-p"] is M.code_sim_score
    assert M.LONGBENCH_FIRST_LINE_DATASETS == {"trec", "triviaqa", "samsum", "lsht"}


def test_longbench_sample_score():
    # max over gold answers
    assert M.longbench_sample_score("qasper", "a dog", ["cat", "the dog"]) == 1.0
    assert M.longbench_sample_score("qasper", "a dog", []) == 0.0
    # triviaqa keeps only the first line: "Paris" — qasper would see both lines
    assert M.longbench_sample_score("triviaqa", "\nParis\nLondon", ["Paris"]) == 1.0
    assert M.longbench_sample_score("qasper", "\nParis\nLondon", ["Paris"]) == pytest.approx(2 / 3)
    classes = ["location", "entity"]
    assert M.longbench_sample_score("trec", "location\nentity", ["entity"], classes) == 0.0
    with pytest.raises(InputError, match="unknown LongBench dataset"):
        M.longbench_sample_score("narrative_qa", "x", ["x"])


def test_longbench_score():
    preds = ["cat sat", "dog", "x"]
    answers = [["cat sat"], ["a dog", "cat"], ["y"]]
    assert M.longbench_score("qasper", preds, answers) == 66.67  # round(100 * 2 / 3, 2)
    with pytest.raises(InputError, match="differ in length"):
        M.longbench_score("qasper", preds, answers[:2])
    with pytest.raises(InputError, match="no predictions"):
        M.longbench_score("qasper", [], [])


def test_longbench_e_scores():
    preds = ["cat sat", "dog", "x", "y"]
    answers = [["cat sat"], ["a dog"], ["y"], ["y"]]
    got = M.longbench_e_scores("qasper", preds, answers, [100, 5000, 9000, 3999])
    assert got == {"0-4k": 100.0, "4-8k": 100.0, "8k+": 0.0}
    got = M.longbench_e_scores("qasper", ["x"], [["x"]], [4000])
    assert got["4-8k"] == 100.0 and math.isnan(got["0-4k"]) and math.isnan(got["8k+"])  # np.mean([])


def test_longbench_e_rounds_like_numpy():
    # reference: 23 hits of 160 give scorer 14.38 but scorer_e 14.37 (numpy rounds 1437.5 half to even)
    preds, answers = ["yes"] * 23 + ["no"] * 137, [["yes"]] * 160
    assert M.longbench_score("qasper", preds, answers) == 14.38
    assert M.longbench_e_scores("qasper", preds, answers, [5000] * 160)["4-8k"] == 14.37


# --- RULER ---------------------------------------------------------------------------------------------


def test_ruler_per_sample():
    assert M.ruler_match_all("The numbers are 123 and 456", ["123", "456", "789"]) == pytest.approx(2 / 3)
    assert M.ruler_match_part("The numbers are 123 and 456", ["123", "456", "789"]) == 1.0
    assert M.ruler_match_part("nothing", ["123"]) == 0.0
    assert M.ruler_match_all("DENVER broncos", ["Denver Broncos"]) == 1.0  # case-insensitive
    with pytest.raises(InputError):
        M.ruler_match_all("x", [])
    with pytest.raises(InputError, match="not one string"):
        M.ruler_match_part("x", "x")


def test_string_match_all_and_part():
    assert M.string_match_all(["a 1 2", "x"], [["1", "2"], ["y", "x"]]) == 75.0  # (1 + 1/2) / 2
    assert M.string_match_all(["1", "0", "0"], [["1"], ["1"], ["1"]]) == 33.33
    # any reference is a hit for RULER (lm-eval's port would give 66.67 here)
    assert M.string_match_part(["Denver Broncos"], [["Denver Broncos", "Broncos", "Carolina"]]) == 100.0
    assert M.string_match_part(["x", "y"], [["x"], ["z"]]) == 50.0
    with pytest.raises(InputError):
        M.string_match_all([], [])


def test_ruler_postprocess():
    assert M.ruler_postprocess("  ans\x00wer\x1f\n ") == "ans\nwer"
    assert M.ruler_postprocess("\x01x\x02") == "x"


# --- LV-Eval -------------------------------------------------------------------------------------------


def test_lveval_f1_english_gate():
    # keywords [paris, france], 1 recalled → 0.5 ≥ 0.2; F1 of 7 tokens vs [paris] = 2 * (1/7) / (8/7) = 0.25
    assert M.lveval_f1("The capital is Paris and it is big", "Paris", answer_keywords="Paris France") == 0.25
    # 1 of 5 keywords = 0.2 passes (the gate is recall < 0.2); F1 [it, was, on, table] vs [on, table] = 2/3
    assert M.lveval_f1("It was on the table", "on the table", answer_keywords="table chair lamp sofa bed") == (
        pytest.approx(2 / 3)
    )
    assert M.lveval_f1("It was on the table", "on the table", answer_keywords="table chair lamp sofa bed rug") == 0.0
    # no keywords: plain F1
    assert M.lveval_f1("Paris", "Paris") == 1.0


def test_lveval_f1_blacklist_only_in_recall():
    # recalled keywords [and, is] are blacklisted → recall 0 → 0 (plain F1 would be 0.5)
    assert M.lveval_f1("and is x", "x", answer_keywords="and is france") == 0.0
    # blacklisted words still count in the denominator of the recall and in the F1
    assert M.lveval_f1("table and", "table and", answer_keywords="table and of is in") == 1.0  # 1/5 passes
    assert M.lveval_f1("table and", "table and", answer_keywords="table and of is in to") == 0.0  # 1/6


def test_lveval_f1_chinese():
    pytest.importorskip("jieba")
    # no keywords: the gold answer gates (北京 recalled, 1/1 ≥ 0.4); F1 答案/是/北京 vs 北京 = 0.5
    assert M.lveval_f1("答案是北京", "北京", lang="zh") == 0.5
    assert M.lveval_f1("我们在上海", "北京", answer_keywords="北京大学", lang="zh") == 0.0
    # keywords 北京/的: only 的 recalled and it is blacklisted → 0 although the answer is exact
    assert M.lveval_f1("上海的", "上海的", answer_keywords="北京的", lang="zh") == 0.0


def test_lveval_f1_errors():
    with pytest.raises(InputError, match="lang"):
        M.lveval_f1("a", "a", lang="fr")
    with pytest.raises(InputError, match="no word"):
        M.lveval_f1("a", "a", answer_keywords="the")  # the reference divides by zero


def test_lveval_recall():
    assert M.lveval_recall("paris is nice", "Paris France") == 0.5
    with pytest.raises(InputError):
        M.lveval_recall("x", "...")


def test_lveval_recall_zh():
    pytest.importorskip("jieba")
    # 我们/在/北京 vs 北京: the one gold word is recalled
    assert M.lveval_recall("我们在北京", "北京", lang="zh") == 1.0
    assert M.lveval_recall("我们在上海", "北京", lang="zh") == 0.0


def test_lveval_rouge_zh_score():
    pytest.importorskip("jieba")
    # 的 and 在 are blacklisted, 。 normalizes to an empty word: 我们 学校 北京 vs 学校 北京 中心, LCS 2
    assert M.lveval_rouge_zh_score("我们的学校在北京。", "学校在北京的中心") == rouge_f(2, 3, 3)
    assert M.lveval_rouge_zh_score("我们的学校在北京。", "学校在北京的中心") == 0.6666666616666668  # reference
    # same frame budget as rouge_zh_score (reference: 989 words pass, 990 fail)
    assert M.lveval_rouge_zh_score(words(989), words(989)) == 0.999999995
    assert M.lveval_rouge_zh_score(words(990), words(990)) == 0.0


def test_lveval_score_counts_first_answer_only():
    # sample 2's second gold answer would match; LV-Eval only looks at the first → 50.0 (LongBench: 100.0)
    assert M.lveval_score("factrecall_en_16k", ["Paris", "x"], [["Paris", "x"], ["y", "x"]]) == 50.0
    # the keyword gate per sample
    assert M.lveval_score("hotpotwikiqa_mixup", ["Paris"], [["Paris"]], ["London"]) == 0.0
    assert M.lveval_score("hotpotwikiqa_mixup_256k", ["Paris"], [["Paris"]], [None]) == 100.0
    assert set(M.LVEVAL_DATASET_METRIC) >= {"cmrc_mixup", "dureader_mixup", "factrecall_zh", "loogle_SD_mixup"}
    with pytest.raises(InputError, match="unknown LV-Eval dataset"):
        M.lveval_score("hotpot_16k", ["x"], [["x"]])
