"""``longbench`` and ``longbench-e``: LongBench's 21 datasets (and LongBench-E's 13) from local files.

Bai et al. 2023, "LongBench: A Bilingual, Multitask Benchmark for Long Context Understanding",
arXiv:2308.14508 (THUDM/LongBench, ``LongBench/pred.py``, ``eval.py``, ``config/``).

**Data.** One JSON object per line, fields ``input`` (the question or query), ``context`` (the long
text), ``answers`` (every gold answer), ``length`` (words for English, characters for Chinese),
``dataset``, ``language``, ``all_classes`` (class names of trec/lsht, else null) and ``_id``: the files
of ``data.zip`` (``data/<dataset>.jsonl``; LongBench-E: ``data/<dataset>_e.jsonl``).

**Prompt.** ``dataset2prompt[dataset].format(**record)`` (the templates below, verbatim: narrativeqa's
"asconcisely" is the official file's). A prompt longer than the budget is cut as ``pred.py`` does:
tokenized, the first and last halves kept (:func:`~longctx.plugins.local_data._common.fit_prompt`).
``pred.py`` then wraps the prompt in the chat model's template except for trec, triviaqa, samsum, lsht,
lcc and repobench-p ("chat models are better off without build prompts on these tasks"): under
``lc eval --chat-template`` those six stay plain text too. Generation budgets: ``dataset2maxlen``.

**Score** (``eval.py``): the dataset's metric, max over ``answers``, the prediction cut to its first
line for trec, triviaqa, samsum and lsht (:func:`longctx.metrics.longbench_sample_score`).
LongBench-E reports each dataset per input-length bucket of the record's ``length`` field — ``0-4k``
(< 4000), ``4-8k`` (< 8000), ``8k+``: :meth:`LongBenchE.metrics` gives each case its bucket's score under
the bucket's name, so a summary's mean of that sub-metric is ``scorer_e``'s bucket score (over 100).

Goldman et al. 2024 (arXiv:2407.00402) taxonomy, per dataset: single- and multi-document QA and
passage retrieval need one localized fact or a short chain (low diffusion, low scope); summarization
and passage counting need the whole input (high, high); few-shot classification and code completion
read examples spread through the context for a narrow answer (high diffusion, low scope).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case
from longctx.metrics import LONGBENCH_DATASET_METRIC, LONGBENCH_E_BUCKETS, longbench_sample_score
from longctx.plugins.local_data._common import (
    Item,
    Record,
    build_cases,
    field,
    find_file,
    limit_field,
    max_new_field,
    path_field,
    read_records,
    require_path,
    select,
    stem_dataset,
    string_list,
)

PAPER = "Bai et al. 2023, arXiv:2308.14508"

#: ``config/dataset2prompt.json`` of LongBench v1 (THUDM/LongBench ``LongBench/config``), verbatim.
DATASET2PROMPT: Mapping[str, str] = MappingProxyType(
    {
        "narrativeqa": "You are given a story, which can be either a novel or a movie script, and a question. "
        "Answer the question asconcisely as you can, using a single phrase if possible. Do not provide any "
        "explanation.\n\nStory: {context}\n\nNow, answer the question based on the story asconcisely as you "
        "can, using a single phrase if possible. Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:",
        "qasper": "You are given a scientific article and a question. Answer the question as concisely as you "
        "can, using a single phrase or sentence if possible. If the question cannot be answered based on the "
        'information in the article, write "unanswerable". If the question is a yes/no question, answer "yes", '
        '"no", or "unanswerable". Do not provide any explanation.\n\nArticle: {context}\n\n Answer the question '
        "based on the above article as concisely as you can, using a single phrase or sentence if possible. If "
        'the question cannot be answered based on the information in the article, write "unanswerable". If the '
        'question is a yes/no question, answer "yes", "no", or "unanswerable". Do not provide any explanation.'
        "\n\nQuestion: {input}\n\nAnswer:",
        "multifieldqa_en": "Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following "
        "question based on the above text, only give me the answer and do not output any other words.\n\n"
        "Question: {input}\nAnswer:",
        "multifieldqa_zh": "阅读以下文字并用中文简短回答：\n\n{context}\n\n"
        "现在请基于上面的文章回答下面的问题，只告诉我答案，"
        "不要输出任何其他字词。\n\n问题：{input}\n回答：",
        "hotpotqa": "Answer the question based on the given passages. Only give me the answer and do not output "
        "any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the "
        "given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
        "2wikimqa": "Answer the question based on the given passages. Only give me the answer and do not output "
        "any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the "
        "given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
        "musique": "Answer the question based on the given passages. Only give me the answer and do not output "
        "any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the "
        "given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:",
        "dureader": "请基于给定的文章回答下述问题。\n\n文章：{context}\n\n"
        "请基于上述文章回答下面的问题。\n\n问题：{input}\n回答：",
        "gov_report": "You are given a report by a government agency. Write a one-page summary of the report."
        "\n\nReport:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:",
        "qmsum": "You are given a meeting transcript and a query containing a question or instruction. Answer "
        "the query in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the "
        "above meeting transcript in one or more sentences.\n\nQuery: {input}\nAnswer:",
        "multi_news": "You are given several news passages. Write a one-page summary of all news. \n\nNews:\n"
        "{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:",
        "vcsum": "下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n会议记录：\n{context}\n\n会议总结：",
        "trec": "Please determine the type of the question below. Here are some examples of questions.\n\n"
        "{context}\n{input}",
        "triviaqa": "Answer the question based on the given passage. Only give me the answer and do not output "
        "any other words. The following are some examples.\n\n{context}\n\n{input}",
        "samsum": "Summarize the dialogue into a few short sentences. The following are some examples.\n\n"
        "{context}\n\n{input}",
        "lsht": "请判断给定新闻的类别，下面是一些例子。\n\n{context}\n{input}",
        "passage_count": "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. "
        "Please carefully read these paragraphs and determine how many unique paragraphs there are after "
        "removing duplicates. In other words, how many non-repeating paragraphs are there in total?\n\n"
        "{context}\n\nPlease enter the final count of unique paragraphs after removing duplicates. The output "
        "format should only contain the number, such as 1, 2, 3, and so on.\n\nThe final answer is: ",
        "passage_retrieval_en": "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine "
        "which paragraph the abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\n"
        "Please enter the number of the paragraph that the abstract is from. The answer format must be like "
        '"Paragraph 1", "Paragraph 2", etc.\n\nThe answer is: ',
        "passage_retrieval_zh": "以下是若干段落文字，以及其中一个段落的摘要。"
        "请确定给定的摘要出自哪一段。\n\n{context}\n\n"
        '下面是一个摘要\n\n{input}\n\n请输入摘要所属段落的编号。答案格式必须是"段落1"，"段落2"等格式\n\n答案是：',
        "lcc": "Please complete the code given below. \n{context}Next line of code:\n",
        "repobench-p": "Please complete the code given below. \n{context}{input}Next line of code:\n",
    }
)

#: ``config/dataset2maxlen.json``: tokens to generate per dataset.
DATASET2MAXLEN: Mapping[str, int] = MappingProxyType(
    {
        "narrativeqa": 128,
        "qasper": 128,
        "multifieldqa_en": 64,
        "multifieldqa_zh": 64,
        "hotpotqa": 32,
        "2wikimqa": 32,
        "musique": 32,
        "dureader": 128,
        "gov_report": 512,
        "qmsum": 512,
        "multi_news": 512,
        "vcsum": 512,
        "trec": 64,
        "triviaqa": 32,
        "samsum": 128,
        "lsht": 64,
        "passage_count": 32,
        "passage_retrieval_en": 32,
        "passage_retrieval_zh": 32,
        "lcc": 64,
        "repobench-p": 64,
    }
)

#: Datasets ``pred.py`` does not wrap in a chat template.
NO_CHAT_DATASETS: frozenset[str] = frozenset({"trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"})

#: The 13 datasets LongBench-E has (``pred.py --e``).
LONGBENCH_E_DATASETS: tuple[str, ...] = (
    "qasper",
    "multifieldqa_en",
    "hotpotqa",
    "2wikimqa",
    "gov_report",
    "multi_news",
    "trec",
    "triviaqa",
    "samsum",
    "passage_count",
    "passage_retrieval_en",
    "lcc",
    "repobench-p",
)

_LOW = MappingProxyType({"diffusion": "low", "scope": "low"})
_HIGH = MappingProxyType({"diffusion": "high", "scope": "high"})
_SPREAD = MappingProxyType({"diffusion": "high", "scope": "low"})
#: Goldman et al.'s taxonomy per dataset (see the module docstring).
DATASET_TAGS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        **dict.fromkeys(
            ("narrativeqa", "qasper", "multifieldqa_en", "multifieldqa_zh", "hotpotqa", "2wikimqa", "musique"),
            _LOW,
        ),
        **dict.fromkeys(("dureader", "passage_retrieval_en", "passage_retrieval_zh"), _LOW),
        **dict.fromkeys(("gov_report", "qmsum", "multi_news", "vcsum", "passage_count"), _HIGH),
        **dict.fromkeys(("trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p"), _SPREAD),
    }
)


def bucket(length: int | float) -> str:
    """LongBench-E's bucket of a record's ``length`` field: ``0-4k``, ``4-8k`` or ``8k+``."""
    return (
        LONGBENCH_E_BUCKETS[0] if length < 4000 else LONGBENCH_E_BUCKETS[1] if length < 8000 else LONGBENCH_E_BUCKETS[2]
    )


def _base(name: str) -> str:
    return name[:-2] if name.endswith("_e") and name[:-2] in DATASET2PROMPT else name


@attrs.frozen
class LongBenchConfig:
    """Where the data is, which dataset, how many questions, the generation budget."""

    path: str = path_field()
    dataset: str = attrs.field(
        default="",
        metadata={
            "help": "the dataset (hotpotqa, gov_report, …): required for a folder; for a file it keeps the "
            "records of that dataset (default: each record's own dataset field, else the file name)"
        },
    )
    limit: int = limit_field()
    max_new_tokens: int = max_new_field("dataset2maxlen: 32-512")


class LongBench:
    """LongBench from local files (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = "longbench"
    depth_sensitive = False
    suffix = ""  # the file-name suffix of the variant's data (LongBench-E: "_e")
    datasets: tuple[str, ...] = tuple(DATASET2PROMPT)

    def __init__(self, config: LongBenchConfig | None = None, ctx: Any = None) -> None:
        self.config = config or LongBenchConfig()
        ds = _base(self.config.dataset)
        if ds and ds not in self.datasets:
            raise InputError(f"{self.name}: unknown dataset {self.config.dataset!r}; known: {', '.join(self.datasets)}")

    @property
    def tags(self) -> Mapping[str, str]:
        """The taxonomy of the selected dataset (QA's low/low when none is selected)."""
        return DATASET_TAGS.get(_base(self.config.dataset), _LOW)

    def data_file(self) -> Path:
        """The file to read: ``path`` itself, or ``<dataset><suffix>.jsonl`` in the folder ``path``."""
        p = require_path(self.name, self.config.path)
        if p.is_dir():
            if not self.config.dataset:
                raise InputError(f"{self.name}: path {str(p)!r} is a folder; choose a dataset with dataset=")
            ds = _base(self.config.dataset)
            return find_file(self.name, p, [f"{ds}{self.suffix}.jsonl", f"{ds}{self.suffix}.json"], f"dataset {ds!r}")
        return p

    def records(self) -> list[tuple[Record, str]]:
        """``(record, dataset)`` for every record of the selected dataset, in file order."""
        path = self.data_file()
        wanted = _base(self.config.dataset)
        out = []
        for rec in read_records(path):
            own = field(rec, "dataset", str, default="") or stem_dataset(path)
            ds = _base(own)
            if wanted and ds != wanted:
                continue
            ds = wanted or ds
            if ds not in self.datasets:
                raise InputError(
                    f"{rec.where}: unknown {self.name} dataset {own!r} "
                    f"(set dataset= to one of {', '.join(self.datasets)})"
                )
            out.append((rec, ds))
        if not out:
            raise InputError(f"{path}: no records of dataset {wanted!r}")
        return out

    def item(self, rec: Record, ds: str) -> Item:
        """One record as a prompt, its golds and what scoring needs."""
        answers = string_list(rec, "answers")
        if not answers:
            raise InputError(f"{rec.where}: field 'answers' is empty")
        context = field(rec, "context", str)
        question = field(rec, "input", str)
        template = DATASET2PROMPT[ds]
        body = template.format(context=context, input=question)
        all_classes = field(rec, "all_classes", (list, type(None)), default=None)
        length = field(rec, "length", (int, float), default=None)
        if self.suffix and length is None:
            raise InputError(f"{rec.where}: missing field 'length' (LongBench-E buckets samples by it)")
        meta = {
            "dataset": ds,
            "_id": rec.data.get("_id"),
            "language": rec.data.get("language"),
            "length": length,
            "all_classes": all_classes,
            "file": str(rec.path),
            "line": rec.line,
        }
        if length is not None:
            meta["bucket"] = bucket(length)
        after = template.split("{context}", 1)[1].format(input=question)
        return Item(
            body=body,
            answer=answers[0],
            references=tuple(answers),
            meta=meta,
            max_new_tokens=self.config.max_new_tokens or DATASET2MAXLEN[ds],
            query=after.strip() or None,
            chat=ds not in NO_CHAT_DATASETS,
        )

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """The selected records (all, or the ``seed``-th window of ``limit``), each fitted to ``length``."""
        items = [self.item(rec, ds) for rec, ds in select(self.records(), self.config.limit, seed)]
        yield from build_cases(self.name, items, tokenizer, length=length, depth=depth, seed=seed)

    def score(self, prediction: str, case: Case) -> float:
        """``eval.py``'s per-sample score: the dataset's metric, max over the gold answers, in [0, 1]."""
        return longbench_sample_score(
            case.meta["dataset"], prediction, list(case.golds), case.meta.get("all_classes") or None
        )


@attrs.frozen
class LongBenchEConfig(LongBenchConfig):
    """LongBench-E's parameters (the same as LongBench's; its files end in ``_e``)."""


class LongBenchE(LongBench):
    """LongBench-E (``<dataset>_e.jsonl``): LongBench's score, also reported per length bucket."""

    name = "longbench-e"
    suffix = "_e"
    datasets = LONGBENCH_E_DATASETS

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """``{<bucket>: score}``: the case's score under its length bucket's name (``0-4k``, ``4-8k``,
        ``8k+``), so averaging each name over a run gives LongBench-E's per-bucket table."""
        return {case.meta["bucket"]: self.score(prediction, case)}


assert set(DATASET2PROMPT) == set(DATASET2MAXLEN) == set(LONGBENCH_DATASET_METRIC)
