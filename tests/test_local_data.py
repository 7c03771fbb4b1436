"""The local-data loaders: each reads its shipped fixture; prompts follow the official templates (exact
strings); LongBench's middle truncation keeps head and tail and fits the budget; per-sample scores equal
longctx.metrics / hand-computed values; LongBench-E buckets; L-CiteEval citation precision and recall by
hand; malformed files give InputErrors naming the file, line and field; one tiny-llama run_eval."""

from __future__ import annotations

import json
import math

import pytest

from longctx.errors import InputError, ParameterError
from longctx.evaluate import count_prompt_tokens, load_tasks, run_eval, summarize
from longctx.metrics import (
    classification_score,
    longbench_e_scores,
    longbench_sample_score,
    lveval_f1,
    qa_f1_score,
    rouge_zh_score,
)
from longctx.plugins.local_data import FIXTURES, TASKS
from longctx.plugins.local_data._common import fit_prompt, read_records, select
from longctx.plugins.local_data._overlap import bleu, google_rouge, rouge_pkg
from longctx.plugins.local_data.cnnsum import CNNSum, CNNSumConfig, rouge_zh
from longctx.plugins.local_data.detectiveqa import DetectiveQA, DetectiveQAConfig, extract_choice
from longctx.plugins.local_data.lciteeval import (
    ExactJudge,
    LCiteEval,
    LCiteEvalConfig,
    OverlapJudge,
    citation_scores,
    counting_stars_scores,
    niah_citation_scores,
    remove_citations,
)
from longctx.plugins.local_data.leval import LEval, LEvalConfig, exam_score
from longctx.plugins.local_data.longbench import LongBench, LongBenchConfig, LongBenchE, LongBenchEConfig, bucket
from longctx.plugins.local_data.loogle import LooGLE, LooGLEConfig
from longctx.plugins.local_data.lveval import LVEval, LVEvalConfig


def cases(task, tok, length=100_000, seed=0):
    return list(task.cases(tok, length=length, depth=0.5, seed=seed))


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def lb_record(**kw):
    rec = {
        "input": "Q?",
        "context": "C.",
        "answers": ["yes"],
        "length": 2,
        "dataset": "hotpotqa",
        "language": "en",
        "all_classes": None,
        "_id": "x",
    }
    rec.update(kw)
    return rec


# -- registration and fixtures -----------------------------------------------------------------------


def test_all_eight_tasks_registered_with_valid_tags():
    from longctx.registry import get_registry

    reg = get_registry()
    names = {"longbench", "longbench-e", "l-eval", "loogle", "lv-eval", "cnnsum", "detectiveqa", "l-citeeval"}
    assert set(TASKS) == names
    for name in names:
        tech = reg.get("evaluation", name)
        assert tech.config().path == ""  # constructs from defaults, path required only when reading
        task = tech.build(tech.config(), None)
        assert task.depth_sensitive is False
        assert {task.tags["diffusion"], task.tags["scope"]} <= {"low", "high"}


@pytest.mark.parametrize(
    ("spec", "n"),
    [
        ("longbench:path={F}/longbench,dataset=hotpotqa", 2),
        ("longbench:path={F}/longbench/trec.jsonl", 1),
        ("longbench-e:path={F}/longbench,dataset=hotpotqa", 2),
        ("l-eval:path={F}/leval,dataset=tpo", 2),
        ("l-eval:path={F}/leval/Open-ended-tasks/news_summ.jsonl", 1),  # the human-judged record is skipped
        ("loogle:path={F}/loogle,dataset=shortdep_qa", 2),
        ("loogle:path={F}/loogle/shortdep_cloze.jsonl", 1),
        ("loogle:path={F}/loogle,dataset=longdep_summarization", 1),
        ("lv-eval:path={F}/lveval,dataset=hotpotwikiqa_mixup,level=16k", 2),
        ("lv-eval:path={F}/lveval,dataset=hotpotwikiqa_mixup_16k", 2),
        ("cnnsum:path={F}/cnnsum,subset=L", 2),
        ("detectiveqa:path={F}/detectiveqa", 2),
        ("detectiveqa:path={F}/detectiveqa/anno_data_en/human_anno/900.json", 2),
        ("l-citeeval:path={F}/lciteeval,dataset=hotpotqa", 2),
        ("l-citeeval:path={F}/lciteeval/L-CiteEval-Data/niah.json", 1),
        ("l-citeeval:path={F}/lciteeval,dataset=counting_stars", 1),
        ("l-citeeval:path={F}/lciteeval,dataset=gov_report", 1),
    ],
)
def test_each_loader_reads_its_fixture(byte_tok, spec, n):
    if spec.startswith("cnnsum"):
        pytest.importorskip("jieba")  # CNNSum's Chinese scoring: the `zh` extra
    (task,) = load_tasks([spec.format(F=FIXTURES)]).values()
    got = cases(task, byte_tok)
    assert len(got) == n
    for c in got:
        assert c.actual_tokens == count_prompt_tokens(byte_tok, c.prompt) + c.max_new_tokens
        assert not c.meta["truncated"]
        assert task.score(c.answer, c) >= 0.999999
        assert task.score("", c) == 0.0
    assert got == cases(task, byte_tok)  # deterministic


# -- LongBench: templates, truncation, scores, buckets ----------------------------------------------


def test_longbench_prompts_are_the_official_templates(tmp_path, byte_tok):
    path = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            lb_record(dataset="hotpotqa"),
            lb_record(dataset="narrativeqa"),
            lb_record(dataset="trec", input="Question: Where ?\nType:", all_classes=["City", "Other"]),
            lb_record(dataset="lcc", context="def f():\n", input=""),
        ],
    )
    got = {c.meta["dataset"]: c for c in cases(LongBench(LongBenchConfig(path=str(path))), byte_tok)}
    assert got["hotpotqa"].prompt == (
        "Answer the question based on the given passages. Only give me the answer and do not output any other "
        "words.\n\nThe following are given passages.\nC.\n\nAnswer the question based on the given passages. "
        "Only give me the answer and do not output any other words.\n\nQuestion: Q?\nAnswer:"
    )
    assert got["narrativeqa"].prompt == (
        "You are given a story, which can be either a novel or a movie script, and a question. Answer the "
        "question asconcisely as you can, using a single phrase if possible. Do not provide any explanation."
        "\n\nStory: C.\n\nNow, answer the question based on the story asconcisely as you can, using a single "
        "phrase if possible. Do not provide any explanation.\n\nQuestion: Q?\n\nAnswer:"
    )
    assert got["trec"].prompt == (
        "Please determine the type of the question below. Here are some examples of questions.\n\nC.\n"
        "Question: Where ?\nType:"
    )
    assert got["lcc"].prompt == "Please complete the code given below. \ndef f():\nNext line of code:\n"
    assert [got[d].max_new_tokens for d in ("hotpotqa", "narrativeqa", "trec", "lcc")] == [32, 128, 64, 64]
    assert got["hotpotqa"].query.endswith("Question: Q?\nAnswer:")


def test_longbench_chat_template_skips_the_few_shot_and_code_datasets(tmp_path, byte_tok):
    from longctx.evaluate import ChatTokenizer

    byte_tok.chat_template = "{{ bos_token }}{% for m in messages %}<u>{{ m['content'] }}</u>{% endfor %}<m>"
    chat = ChatTokenizer(byte_tok)
    path = write_jsonl(tmp_path / "d.jsonl", [lb_record(dataset="hotpotqa"), lb_record(dataset="triviaqa")])
    got = {c.meta["dataset"]: c for c in cases(LongBench(LongBenchConfig(path=str(path))), chat)}
    assert got["hotpotqa"].prompt.startswith("<bos><u>Answer the question") and got["hotpotqa"].prompt.endswith(
        "</u><m>"
    )
    # triviaqa stays plain text, BOS written out because chat prompts get no special tokens added
    assert got["triviaqa"].prompt.startswith("<bos>Answer the question based on the given passage.")
    assert got["triviaqa"].actual_tokens == count_prompt_tokens(byte_tok, got["triviaqa"].prompt[5:]) + 32


@pytest.mark.parametrize("length", [300, 513, 1024])
def test_middle_truncation_keeps_head_and_tail_halves_and_fits(tmp_path, byte_tok, length):
    context = "".join(f"<{i:04d}>" for i in range(600))  # 3600 ASCII bytes = tokens
    path = write_jsonl(tmp_path / "hotpotqa.jsonl", [lb_record(context=context)])
    task = LongBench(LongBenchConfig(path=str(path)))
    (untruncated,) = cases(task, byte_tok)
    body = untruncated.prompt
    (c,) = cases(task, byte_tok, length=length)
    k = length - 32 - 1  # the budget minus generation and BOS
    tail = (k + 1) // 2
    head = k - tail
    assert c.prompt == body[:head] + body[-tail:]
    assert c.actual_tokens == length == count_prompt_tokens(byte_tok, c.prompt) + 32
    assert c.meta["truncated"] and (c.meta["kept_head_tokens"], c.meta["kept_tail_tokens"]) == (head, tail)
    assert c.meta["prompt_tokens_untruncated"] == len(body) + 1


class WordTokenizer:
    """A tokenizer without offsets (TokenMap's re-tokenizing fallback): one token per word, plus BOS."""

    def __call__(self, text, add_special_tokens=True, **kw):
        if "return_offsets_mapping" in kw:
            raise TypeError("no offsets")
        ids = [hash(w) % 1000 for w in text.split()]
        return {"input_ids": ([0] if add_special_tokens else []) + ids}


def test_truncation_with_a_tokenizer_without_offsets():
    tok = WordTokenizer()
    body = " ".join(f"w{i}" for i in range(100))
    fit = fit_prompt(tok, body, 21, lambda b: b, task="t", max_new_tokens=0)
    assert fit.tokens <= 21 and fit.kept is not None
    words = fit.prompt.split()
    assert words[:9] == [f"w{i}" for i in range(9)] and words[-10:] == [f"w{i}" for i in range(90, 100)]
    with pytest.raises(InputError, match="too short"):
        fit_prompt(tok, body, 2, lambda b: "instructions here " + b, task="t", max_new_tokens=5)


def test_longbench_scores_equal_the_metric_suite(byte_tok):
    (task,) = load_tasks([f"longbench:path={FIXTURES}/longbench,dataset=hotpotqa"]).values()
    c = cases(task, byte_tok)[1]  # answers: Arlen / the port town of Arlen
    assert c.golds == ("Arlen", "the port town of Arlen")
    # "the port town" vs "the port town of Arlen": P = 2/2, R = 2/4 after dropping "the" -> F1 = 2/3
    assert task.score("the port town", c) == pytest.approx(2 / 3)
    assert task.score("the port town", c) == longbench_sample_score("hotpotqa", "the port town", list(c.golds))
    (trec,) = load_tasks([f"longbench:path={FIXTURES}/longbench,dataset=trec"]).values()
    t = cases(trec, byte_tok)[0]
    classes = t.meta["all_classes"]
    assert trec.score("Individual\nNumber of something", t) == 1.0  # first line only
    assert trec.score("Number of something or Individual", t) == 0.5
    assert trec.score("Number of something or Individual", t) == classification_score(
        "Number of something or Individual", "Individual", all_classes=classes
    )


def test_longbench_e_buckets_and_summary_table(tmp_path, byte_tok):
    lengths = [3999, 4000, 7999, 8000, 120]
    assert [bucket(n) for n in lengths] == ["0-4k", "4-8k", "4-8k", "8k+", "0-4k"]
    recs = [lb_record(length=n, answers=[f"answer {i}"], _id=str(i)) for i, n in enumerate(lengths)]
    path = write_jsonl(tmp_path / "hotpotqa_e.jsonl", recs)
    task = LongBenchE(LongBenchEConfig(path=str(tmp_path), dataset="hotpotqa"))
    got = cases(task, byte_tok)
    preds = ["answer 0", "answer", "nothing", "answer 3", "answer 4 extra"]
    rows = []
    for c, p in zip(got, preds):
        m = task.metrics(p, c)
        assert list(m) == [c.meta["bucket"]] and m[c.meta["bucket"]] == task.score(p, c)
        rows.append(
            {"task": "e", "pipeline": "p", "target_tokens": 1, "depth": 0.5, "score": task.score(p, c), "metrics": m}
        )
    (per_length,) = [r for r in summarize(rows) if r["depth"] is None]
    ref = longbench_e_scores("hotpotqa", preds, [list(c.golds) for c in got], lengths)
    assert {k: round(100 * v, 2) for k, v in per_length["metrics"].items()} == ref
    assert path.exists()


# -- L-Eval -----------------------------------------------------------------------------------------


def test_leval_prompts_context_sharing_and_exam_scores(byte_tok):
    task = LEval(LEvalConfig(path=str(FIXTURES / "leval"), dataset="tpo"))
    a, b = cases(task, byte_tok)
    assert a.prompt.startswith("Now you are given a very long document. Please follow the instruction based on")
    assert a.prompt.endswith(
        "D. to store her field books safely.  Please directly give the answer without any additional output "
        "or explanation \nAnswer:"
    )
    assert a.context == b.context and a.prompt.startswith(a.context) and a.context.endswith(" \n")
    assert a.max_new_tokens == 512
    assert task.score("B", a) == 1.0 and task.score("(B) to measure angles", a) == 1.0
    assert task.score("A", a) == 0.0 and task.score("I could not find it.", a) == 0.0  # falls back to "A"
    assert exam_score("coursera", "A", "AB") == 0.25 and exam_score("coursera", "BA", "AB") == 1.0
    assert exam_score("gsm100", "so 16 - 3 - 4 = 9 eggs... The answer is 18.", "18") == 1.0
    assert exam_score("sci_fi", "True, it does.", "True [fact: False]") == 1.0
    assert exam_score("sci_fi", "It is false", "True [fact: False]") == 0.0
    assert exam_score("topic_retrieval_longchat", "The Role of Art in society!", "The role of art in society") == 1.0


def test_leval_f1_and_rouge(byte_tok):
    nq = LEval(LEvalConfig(path=str(FIXTURES / "leval"), dataset="natural_question"))
    c = cases(nq, byte_tok)[0]
    assert c.answer == "212 kilometres"
    assert nq.score("about 212 kilometres", c) == pytest.approx(0.8) == qa_f1_score("about 212 kilometres", c.answer)
    assert "Answer this question with 2 words." in c.prompt  # L-Eval's length hint: words of the reference
    summ = LEval(LEvalConfig(path=str(FIXTURES / "leval" / "Open-ended-tasks" / "news_summ.jsonl")))
    s = cases(summ, byte_tok)[0]
    # rouge-score tokens: the cat sat / the cat ran -> R1 = 2/3, R2 = 1/2, RL = 2/3
    assert google_rouge("the cat sat", "The cat, ran!")["rouge1"][2] == pytest.approx(2 / 3)
    ref = s.answer
    m = summ.metrics(ref, s)
    assert m == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0} and summ.score(ref, s) == 1.0
    assert summ.score("", s) == 0.0


# -- LooGLE -----------------------------------------------------------------------------------------


def test_loogle_qa_prompt_recall_and_bleu(byte_tok):
    task = LooGLE(LooGLEConfig(path=str(FIXTURES / "loogle"), dataset="shortdep_qa"))
    a, b = cases(task, byte_tok)
    assert a.prompt.startswith("Please answer the question based on the long texts below. \nLake Veyra is")
    assert b.prompt.endswith("\nQuestion: How long is the Tessin river?\nAnswer: ")
    assert a.context == b.context and a.context.endswith("\n") and a.max_new_tokens == 300
    # ROUGE-L recall of the rouge package: all gold words in order -> 1; one of two -> 0.5
    assert task.score("It is 212 kilometres long", b) == 1.0
    assert task.score("212 miles", b) == 0.5
    assert task.score("", b) == 0.0  # scored as "None"
    m = task.metrics("212 miles", b)
    assert m["rouge1"] == 0.5 and m["rougeL"] == 0.5 and m["rouge2"] == 0.0
    assert m["bleu1"] == pytest.approx(0.5)  # p1 = 1/2, same length: no brevity penalty
    assert bleu("a b c".split(), "a b c d".split(), 1) == pytest.approx(math.exp(1 - 4 / 3))


def test_loogle_cloze_exact_and_partial(byte_tok):
    task = LooGLE(LooGLEConfig(path=str(FIXTURES / "loogle" / "shortdep_cloze.jsonl")))
    (c,) = cases(task, byte_tok)
    assert "{'<mask-0>': 'Bob', '<mask-1>': 'Gorrosion Magazine','<mask-2>': 'Bethel Horizon'}" in c.prompt
    pred = "{'<mask-0>': 'Lake Veyra', '<mask-1>': 'Marwood', '<mask-2>': 'Holmberg'}"
    assert task.score(pred, c) == pytest.approx(2 / 3)
    assert task.metrics(pred, c) == {
        "exact_match": pytest.approx(2 / 3),
        "partial_match": 1.0,
        "exact_masks": 2.0,
        "partial_masks": 3.0,
        "masks": 3.0,
    }
    assert task.score("the lake, Marwood and Holmberg", c) == 0.0  # not a dict literal


# -- LV-Eval ----------------------------------------------------------------------------------------


def test_lveval_scores_only_the_first_answer(tmp_path, byte_tok):
    folder = tmp_path / "loogle_SD_mixup"
    folder.mkdir()
    write_jsonl(
        folder / "loogle_SD_mixup_32k.jsonl",
        [
            {
                "input": "Who?",
                "context": "Ctx.",
                "answers": ["Marwood", "Ilse Marwood"],
                "answer_keywords": "Marwood",
                "length": 1,
                "dataset": "loogle_SD_mixup_32k",
                "language": "en",
            }
        ],
    )
    task = LVEval(LVEvalConfig(path=str(tmp_path), dataset="loogle_SD_mixup", level="32k"))
    (c,) = cases(task, byte_tok)
    assert c.prompt.endswith(
        "Only give me the answer and do not output any other explanation and evidence.\n\nQuestion: Who?\nAnswer:"
    )
    assert c.max_new_tokens == 64
    # against "Marwood" only: P = 1/2, R = 1 -> 2/3 (max over both golds would give 1)
    assert task.score("Ilse Marwood", c) == pytest.approx(2 / 3)
    assert task.score("Ilse Marwood", c) == lveval_f1("Ilse Marwood", "Marwood", answer_keywords="Marwood", lang="en")
    with pytest.raises(InputError, match="level="):
        cases(LVEval(LVEvalConfig(path=str(tmp_path), dataset="loogle_SD_mixup")), byte_tok)
    with pytest.raises(ParameterError):
        LVEvalConfig(level="20k")


# -- CNNSum -----------------------------------------------------------------------------------------


def test_cnnsum_prompts_and_rouge(byte_tok):
    pytest.importorskip("jieba")  # the `zh` extra
    ie = cases(CNNSum(CNNSumConfig(path=str(FIXTURES / "cnnsum"), subset="L")), byte_tok)[0]
    ib = cases(CNNSum(CNNSumConfig(path=str(FIXTURES / "cnnsum" / "cnnsum_L_16k.jsonl"), prompt="IB")), byte_tok)[0]
    assert ie.prompt.startswith("下面是一个小说节选，内容如下：\n\n") and ie.prompt.endswith(
        "\n\n请你阅读以上内容后写出相应的摘要，不要输出其他任何内容。\n\n摘要："
    )
    assert ib.prompt.startswith(
        "下面是一个小说节选，请你阅读后写出相应的摘要，不要输出其他任何内容。\n小说节选如下：\n\n"
    )
    assert ie.max_new_tokens == 400
    short = "林远发现了一座石桥"
    assert rouge_zh(short, ie.answer) == pytest.approx(rouge_zh_score(short, ie.answer))
    assert rouge_zh("", ie.answer) == 0.0 and rouge_zh("...", ie.answer) == 0.0
    # CNNSum raises the recursion limit: a 1200-word one-sentence summary is scored, LongBench's zeroes it
    long = "测绘" * 1200
    assert rouge_zh_score(long, long) == 0.0
    assert rouge_zh(long, long) == pytest.approx(1.0, abs=1e-7)


# -- DetectiveQA ------------------------------------------------------------------------------------


def test_detectiveqa_context_stops_before_the_answer(byte_tok):
    task = DetectiveQA(DetectiveQAConfig(path=str(FIXTURES / "detectiveqa")))
    q1, q2 = cases(task, byte_tok)
    assert "Hale gathered everyone in the lantern room" in q1.prompt  # paragraph 16
    assert "Drummond confessed" not in q1.prompt  # paragraph 17 reveals the answer
    assert "Perrin admitted" not in q2.prompt and "[3]" not in q1.prompt
    assert q1.prompt.endswith(
        "B. Mr. Drummond, the keeper\nC. Colm, the salt merchant\nD. Mrs. Ober, the fisherman\n\n"
        "Answer with the letter of the correct option (A, B, C or D).\nAnswer:"
    )
    assert q1.context is None  # different cuts: nothing shared
    full = cases(DetectiveQA(DetectiveQAConfig(path=str(FIXTURES / "detectiveqa"), context="full")), byte_tok)
    assert "Drummond confessed" in full[0].prompt and full[0].context == full[1].context is not None
    assert [
        extract_choice(p) for p in ("[[B]]", " B. Mr. Drummond", "The answer is C.", "答案是D", "I think Drummond")
    ] == ["B", "B", "C", "D", None]
    assert task.score(" B", q1) == 1.0 and task.score("C", q1) == 0.0


# -- L-CiteEval -------------------------------------------------------------------------------------

DOCS = ["Marwood surveyed Lake Veyra in 1871.", "Lake Veyra drains into the Tessin.", "Arlen is a port."]


def test_citation_precision_and_recall_by_hand():
    answer = "Marwood surveyed Lake Veyra in 1871 [1][3]. The lake drains into the Tessin [2]. It is cold."
    s = citation_scores(answer, DOCS, ExactJudge())
    # sentence 1: [1][3] jointly entail; [1] alone does, [3] alone does not and [1] without it still does
    #   -> supported, 1 relevant citation of 2; sentence 2: "lake drains into tessin" is not verbatim in
    #   "lake veyra drains into tessin" -> unsupported, 0 of 1; sentence 3: no citation
    assert (s.recall, s.precision, s.citations) == (pytest.approx(1 / 3), pytest.approx(1 / 3), 3)
    assert s.f1 == pytest.approx(1 / 3)
    # a citation past the last passage supports nothing and is not counted; [0] cites the last passage
    s = citation_scores("Arlen is a port [7]. Arlen is a port [0].", DOCS, ExactJudge())
    assert (s.recall, s.precision, s.citations) == (0.5, 1.0, 1)
    # only the first three citations of a sentence count (the third passage, cited fourth, is dropped) …
    s = citation_scores("Arlen is a port [1][2][1][3].", DOCS, ExactJudge())
    assert s.citations == 3 and s.recall == 0.0
    # … but the range check comes first: a fourth citation past the end voids the whole sentence
    s = citation_scores("Arlen is a port [3][1][2][4].", DOCS, ExactJudge())
    assert s.citations == 0 and s.recall == 0.0
    assert citation_scores("", DOCS, ExactJudge()) is None
    assert remove_citations("Paris is big [1][2]. And | so [3]") == "Paris is big. And so"


def test_overlap_judge_and_pluggable_judge(byte_tok):
    judge = OverlapJudge(0.6)
    assert judge("Passage: Marwood surveyed Lake Veyra in 1871.", "Marwood surveyed the lake in 1871")
    assert not judge("Passage: Marwood surveyed Lake Veyra in 1871.", "Marwood painted ships")
    task = LCiteEval(LCiteEvalConfig(path=str(FIXTURES / "lciteeval"), dataset="hotpotqa"))
    c = cases(task, byte_tok)[0]
    pred = "Ilse Marwood first surveyed it [2]. She painted ships [1][5]."
    m = task.metrics(pred, c)
    assert m["citation_recall"] == 0.5 and m["citations"] == 3.0  # overlap judge: sentence 1 supported by [2]
    task.judge = lambda premise, claim: True
    m = task.metrics(pred, c)
    assert (m["citation_recall"], m["citation_precision"]) == (1.0, 1.0)
    with pytest.raises(ParameterError):
        LCiteEvalConfig(judge="gpt4")


def test_lciteeval_prompt_and_answer_scores(tmp_path, byte_tok):
    task = LCiteEval(LCiteEvalConfig(path=str(FIXTURES / "lciteeval"), dataset="hotpotqa"))
    c = cases(task, byte_tok)[0]
    assert c.prompt.startswith("Passage [1]: Lake Veyra is a glacial lake")  # the title line is not repeated
    assert "\nPassage [5]: Arlen is a port town" in c.prompt
    assert c.prompt.endswith(
        "only cite a minimum sufficient subset of the passages.\n\n"
        "Question: Which cartographer first surveyed Lake Veyra?\nAnswer:"
    )
    assert c.max_new_tokens == 200
    # first line, citations removed: "Ilse Marwood first surveyed it." vs "Ilse Marwood": P 2/5, R 1
    assert task.score("Ilse Marwood first surveyed it [2].\nIlse Marwood", c) == pytest.approx(2 * 0.4 / 1.4)
    assert task.score("\nIlse Marwood", c) == 0.0  # generation stops at the first newline
    assert task.metrics("Ilse Marwood first surveyed it [2].", c)["precision"] == pytest.approx(0.4)
    # the official prompt file (1-shot): its example and separator come first
    demo = {"question": "Q0?", "answer": "A0 [1].", "docs": ["D0."]}
    spec = {
        "instruction": "Cite.",
        "demo_sep": "\n\n\n",
        "demo_prompt": "{D}\n\n{INST}\n\nQuestion: {Q}\nAnswer: {A}",
        "doc_prompt": "Passage [{ID}]: {P}\n",
        "demos": [demo],
    }
    pf = tmp_path / "hotpotqa_default.json"
    pf.write_text(json.dumps(spec))
    one = LCiteEval(LCiteEvalConfig(path=str(FIXTURES / "lciteeval"), dataset="hotpotqa", prompt_file=str(pf)))
    assert cases(one, byte_tok)[0].prompt.startswith(
        "Passage [1]: D0.\n\n\nCite.\n\nQuestion: Q0?\nAnswer:A0 [1].\n\n\nPassage [1]: Lake"
    )


def test_niah_and_counting_stars_rules(byte_tok):
    assert niah_citation_scores("smoked juniper [2][1]", "smoked juniper", ["x", "the smoked juniper"]).precision == 0.5
    assert niah_citation_scores("smoked juniper [1]", "smoked juniper", ["x", "the smoked juniper"]).recall == 0.0
    stars = LCiteEval(LCiteEvalConfig(path=str(FIXTURES / "lciteeval"), dataset="counting_stars"))
    c = cases(stars, byte_tok)[0]
    assert json.loads(c.answer) == {"little_penguin": [17, 42], "passage_id": [2, 4]}
    acc, cite = counting_stars_scores('{"little_penguin": [17, 40], "passage_id": [2, 4, 5]}', c.meta["docs"])
    assert acc == 0.5 and (cite.precision, cite.recall, cite.f1) == (pytest.approx(2 / 3), 1.0, pytest.approx(0.8))
    assert stars.score("no json here", c) == 0.0
    niah = LCiteEval(LCiteEvalConfig(path=str(FIXTURES / "lciteeval"), dataset="niah"))
    n = cases(niah, byte_tok)[0]
    assert niah.score("It is smoked juniper [2].", n) == 1.0  # ROUGE-1 recall of the first line
    assert niah.metrics("It is smoked juniper [2].", n)["citation_recall"] == 1.0
    assert rouge_pkg("It is smoked juniper", "smoked juniper", max_frames=991)["rouge-1"][1] == 1.0


# -- selection and errors ---------------------------------------------------------------------------


def test_limit_and_seed_select_windows():
    items = list(range(5))
    assert select(items, 0, 3) == items
    assert [select(items, 2, s) for s in range(4)] == [[0, 1], [2, 3], [4, 0], [1, 2]]
    assert select(items, 9, 1) == items


def test_limit_windows_through_a_task(byte_tok):
    task = LongBench(LongBenchConfig(path=str(FIXTURES / "longbench"), dataset="hotpotqa", limit=1))
    ids = [cases(task, byte_tok, seed=s)[0].meta["_id"] for s in range(3)]
    assert ids == ["fixture-hotpotqa-0001", "fixture-hotpotqa-0002", "fixture-hotpotqa-0001"]


def test_malformed_files_name_the_file_line_and_field(tmp_path, byte_tok):
    def run(task):
        return cases(task, byte_tok)

    with pytest.raises(InputError, match="path= parameter is required"):
        run(LongBench(LongBenchConfig()))
    with pytest.raises(InputError, match="does not exist"):
        run(LongBench(LongBenchConfig(path=str(tmp_path / "nope.jsonl"))))
    bad = tmp_path / "hotpotqa.jsonl"
    bad.write_text(json.dumps(lb_record()) + "\n{not json\n")
    with pytest.raises(InputError, match=r"hotpotqa\.jsonl: line 2: not valid JSON"):
        run(LongBench(LongBenchConfig(path=str(bad))))
    rec = lb_record()
    del rec["answers"]
    write_jsonl(bad, [lb_record(), lb_record(), rec])
    with pytest.raises(InputError, match=r"hotpotqa\.jsonl: line 3: missing field 'answers'"):
        run(LongBench(LongBenchConfig(path=str(bad))))
    write_jsonl(bad, [lb_record(answers="yes")])
    with pytest.raises(InputError, match="line 1: field 'answers' must be list"):
        run(LongBench(LongBenchConfig(path=str(bad))))
    with pytest.raises(InputError, match="is a folder; choose a dataset"):
        run(LongBench(LongBenchConfig(path=str(tmp_path))))
    with pytest.raises(InputError, match=r"no file 'gov_report\.jsonl'"):
        run(LongBench(LongBenchConfig(path=str(tmp_path), dataset="gov_report")))
    with pytest.raises(InputError, match="unknown dataset"):
        LongBench(LongBenchConfig(dataset="hotpot"))
    txt = tmp_path / "data.txt"
    txt.write_text("x")
    with pytest.raises(InputError, match=r"expected a \.jsonl or \.json file"):
        read_records(txt)
    # a .json array: the element's line is named
    arr = tmp_path / "hotpotqa.json"
    arr.write_text(
        '[\n {"id": 1, "question": "q", "answer": "a", "docs": ["d"]},\n {"id": 2, "question": "q", "answer": "a"}\n]\n'
    )
    with pytest.raises(InputError, match=r"hotpotqa\.json: line 3: missing field 'docs'"):
        run(LCiteEval(LCiteEvalConfig(path=str(arr))))
    lv = tmp_path / "lv.jsonl"
    write_jsonl(lv, [{"input": "q", "context": "c", "answers": ["a"]}])
    with pytest.raises(InputError, match="unknown LV-Eval dataset 'lv'"):
        run(LVEval(LVEvalConfig(path=str(lv))))
    anno = json.loads((FIXTURES / "detectiveqa/anno_data_en/human_anno/900.json").read_text())
    anno[0]["questions"][1]["answer"] = "E"
    dq = tmp_path / "anno_data_en" / "human_anno"
    dq.mkdir(parents=True)
    (dq / "900.json").write_text(json.dumps(anno))
    with pytest.raises(InputError, match=r"900\.json: line 1: no novel text .*novel_data_en/900-\*\.txt"):
        run(DetectiveQA(DetectiveQAConfig(path=str(tmp_path))))
    (tmp_path / "novel_data_en").mkdir()
    (tmp_path / "novel_data_en" / "900-x.txt").write_text("[1]It was dark.\n")
    with pytest.raises(
        InputError, match=r"900\.json: line 1: questions\[1\]: field 'answer' must be one of A, B, C, D"
    ):
        run(DetectiveQA(DetectiveQAConfig(path=str(dq / "900.json"))))
    loogle = tmp_path / "shortdep_qa.jsonl"
    write_jsonl(loogle, [{"input": "doc", "qa_pairs": "[{'Q': 'q'}]"}])
    with pytest.raises(InputError, match=r"line 1: qa_pairs\[0\] lacks 'Q' or 'A'"):
        run(LooGLE(LooGLEConfig(path=str(loogle))))


def test_too_short_length_names_the_minimum(byte_tok):
    task = LongBench(LongBenchConfig(path=str(FIXTURES / "longbench"), dataset="hotpotqa"))
    with pytest.raises(InputError, match="too short"):
        cases(task, byte_tok, length=34)  # LongBench cuts instructions too: only BOS + 32 to generate must fit


# -- a run ------------------------------------------------------------------------------------------


def test_tiny_llama_run_eval_longbench_e(tiny, tmp_path):
    from longctx.runtime import compose

    model = tiny("llama", max_position_embeddings=1024)
    task = LongBenchE(LongBenchEConfig(path=str(FIXTURES / "longbench"), dataset="hotpotqa", limit=1, max_new_tokens=4))
    with compose(model, None) as pipe:
        rows = run_eval({"default": pipe}, {"longbench-e": task}, lengths=[700], out_dir=tmp_path)
    assert len(rows) == 1
    row = rows[0]
    assert row["error"] is None and 0.0 <= row["score"] <= 1.0
    assert row["actual_tokens"] == 700 and list(row["metrics"]) == ["0-4k"]
    assert (tmp_path / "results.jsonl").exists()


# -- Gemma 3 270M's tokenizer (real_model) ----------------------------------------------------------


@pytest.mark.real_model
def test_gemma_tokenizer_truncation_fits_exactly():
    from longctx.models import load_model

    tok = load_model("gemma-3-270m").tokenizer
    specs = {
        f"longbench:path={FIXTURES}/longbench,dataset=hotpotqa": (300, 400),
        f"cnnsum:path={FIXTURES}/cnnsum,subset=L": (450, 600),  # Chinese: multi-byte characters at the cut
        f"l-citeeval:path={FIXTURES}/lciteeval,dataset=hotpotqa": (300, 500),
    }
    for spec, lengths in specs.items():
        (task,) = load_tasks([spec]).values()
        for length in lengths:
            for c in cases(task, tok, length=length):
                assert c.meta["truncated"]
                assert c.actual_tokens == count_prompt_tokens(tok, c.prompt) + c.max_new_tokens
                assert length - 2 <= c.actual_tokens <= length
                assert "\ufffd" not in c.prompt
