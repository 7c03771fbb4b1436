"""``lv-eval``: LV-Eval's eleven datasets at five length levels from local files.

Yuan et al. 2024, "LV-Eval: A Balanced Long-Context Benchmark with 5 Length Levels Up to 256K",
arXiv:2402.05136 (infinigence/LVEval: ``config.py``, ``prediction.py``, ``utils.py``, ``evaluation.py``).

**Data.** ``<dataset>_<level>.jsonl`` (level 16k, 32k, 64k, 128k or 256k words), as in the
``<dataset>.zip`` archives of the ``Infinigence/LVEval`` dataset: one record per line with ``input``
(the question), ``context`` (the documents, confusing facts inserted), ``answers``, ``answer_keywords``
(gold keywords; absent for some datasets), ``length``, ``dataset``, ``language``, ``confusing_facts``.

**Prompt.** ``DATASET_PROMPT[dataset].format(**record)`` (below, verbatim), truncated in the middle as
``utils.truncate_prompt`` does ("following LongBench"); budgets ``DATASET_MAXGEN``. ``build_chat`` then
applies the model's own format (``--chat-template`` here).

**Score** (``evaluation.py``): the dataset's metric against the *first* gold answer only (the scorer
``break``\\ s after it), in [0, 1]: keyword-gated F1 for the QA mixups, plain F1 for factrecall, Chinese
ROUGE-L without blacklisted words for dureader_mixup (:data:`longctx.metrics.LVEVAL_DATASET_METRIC`).

Goldman et al. 2024 (arXiv:2407.00402): every dataset asks for one fact hidden among distractors and
confusing facts (low diffusion, low scope).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError, ParameterError
from longctx.evaluate import Case
from longctx.metrics import LVEVAL_DATASET_METRIC
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

PAPER = "Yuan et al. 2024, arXiv:2402.05136"

LEVELS: tuple[str, ...] = ("16k", "32k", "64k", "128k", "256k")

_MIXUP_EN = (
    "Please answer the following question based on the given passages. Questions and answers are only relevant "
    "to one passage. Only give me the answer and do not output any other explanation and evidence.\n\nArticle: "
    "{context}\n\nPlease answer the following question based on the above passages. Questions and answers are "
    "only relevant to one passage. Only give me the answer and do not output any other explanation and evidence."
    "\n\nQuestion: {input}\nAnswer:"
)
#: ``config.DATASET_PROMPT``.
DATASET_PROMPT: Mapping[str, str] = MappingProxyType(
    {
        "hotpotwikiqa_mixup": "Answer the question based on the given passages. Questions and answers are only "
        "relevant to some passages. Only give me the answer and do not output any other explanation and "
        "evidence.\n\nArticle: {context}\n\nPlease answer the following question based on the above passages. "
        "Questions and answers are only relevant to some passages. Only give me the answer and do not output any "
        "other explanation and evidence.\n\nQuestion: {input}\nAnswer:",
        "loogle_SD_mixup": _MIXUP_EN,
        "loogle_CR_mixup": _MIXUP_EN,
        "loogle_MIR_mixup": _MIXUP_EN,
        "multifieldqa_en_mixup": _MIXUP_EN,
        "multifieldqa_zh_mixup": "请阅读以下文章并用中文回答问题，问题和答案只与其中一篇文章有关。"
        "只需要直接给出问题的答案，不要输出其他任何解释和证据。\n\n文章：{context}\n\n"
        "请基于上面的文章回答下面的问题，问题和答案只与其中一篇文章有关。"
        "只需要直接给出问题的答案，不要输出其他任何解释和证据。\n\n问题：{input}\n回答：",
        "factrecall_en": "Please answer the following questions based on the given article.\n\nArticle: {context}"
        "\n\nPlease answer the following questions based on the above article.\n\nQuestion: {input}\nAnswer:",
        "factrecall_zh": "请基于给定的文章回答下述问题。\n\n文章：{context}\n\n"
        "现在请基于上述文章回答下面的问题。\n\n问题：{input}\n回答：",
        "cmrc_mixup": "请根据下面给定的文章回答问题，问题和答案只与其中一篇文章有关。\n\n文章：{context}\n\n"
        "现在请基于上述文章回答下面的问题，问题和答案只与其中一篇文章有关。\n\n问题：{input}\n回答：",
        "lic_mixup": "请根据下面给定的文章回答问题，问题和答案只与其中一篇文章有关。\n\n文章：{context}\n\n"
        "请现在基于上述文章回答下面的问题，问题和答案只与其中一篇文章有关。\n\n问题：{input}\n回答：",
        "dureader_mixup": "请根据下面给定的文章回答问题，问题和答案只与其中一篇文章有关。\n\n文章：{context}\n\n"
        "现在请基于上述文章回答下面的问题，问题和答案只与其中一篇文章有关。\n\n问题：{input}\n回答：",
    }
)
#: ``config.DATASET_MAXGEN``.
DATASET_MAXGEN: Mapping[str, int] = MappingProxyType(
    {**dict.fromkeys(DATASET_PROMPT, 64), "factrecall_en": 16, "factrecall_zh": 16}
)


def base_name(dataset: str) -> str:
    """The dataset without its length level: LV-Eval's ``re.split('_.{1,3}k', dataset)[0]``."""
    return re.split(r"_.{1,3}k", dataset)[0]


@attrs.frozen
class LVEvalConfig:
    """Where the data is, which dataset and level, how many questions, the generation budget."""

    path: str = path_field()
    dataset: str = attrs.field(
        default="",
        metadata={
            "help": "the dataset (hotpotwikiqa_mixup, factrecall_en, …; a level suffix such as _64k is allowed): "
            "required for a folder; default for a file: each record's dataset field, else the file name"
        },
    )
    level: str = attrs.field(
        default="",
        metadata={"help": "the length level of a folder's file: 16k, 32k, 64k, 128k or 256k (required for a folder)"},
    )
    limit: int = limit_field()
    max_new_tokens: int = max_new_field("DATASET_MAXGEN: 16 or 64")

    @level.validator
    def _check_level(self, attribute: attrs.Attribute, value: str) -> None:
        if value and value not in LEVELS:
            raise ParameterError(f"level must be one of {', '.join(LEVELS)}, got {value!r}")


class LVEval:
    """LV-Eval from local files (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = "lv-eval"
    depth_sensitive = False
    tags = MappingProxyType({"diffusion": "low", "scope": "low"})

    def __init__(self, config: LVEvalConfig | None = None, ctx: Any = None) -> None:
        self.config = config or LVEvalConfig()
        if self.config.dataset and base_name(self.config.dataset) not in DATASET_PROMPT:
            raise InputError(f"lv-eval: unknown dataset {self.config.dataset!r}; known: {', '.join(DATASET_PROMPT)}")

    def data_file(self) -> Path:
        """``path``, or ``<dataset>_<level>.jsonl`` found under the folder ``path``."""
        p = require_path(self.name, self.config.path)
        if not p.is_dir():
            return p
        ds = self.config.dataset
        if not ds:
            raise InputError(f"lv-eval: path {str(p)!r} is a folder; choose a dataset with dataset= (and level=)")
        level = self.config.level or (ds[len(base_name(ds)) + 1 :] if base_name(ds) != ds else "")
        if not level:
            found = sorted(x.name for x in p.rglob(f"{base_name(ds)}_*k.jsonl"))
            raise InputError(f"lv-eval: choose a length level with level= ({', '.join(found) or 'no files found'})")
        name = f"{base_name(ds)}_{level}"
        return find_file(self.name, p, [f"{name}.jsonl", f"{name}.json"], f"dataset {name!r}")

    def item(self, rec: Record, ds: str) -> Item:
        answers = string_list(rec, "answers")
        if not answers:
            raise InputError(f"{rec.where}: field 'answers' is empty")
        template = DATASET_PROMPT[ds]
        question = field(rec, "input", str)
        keywords = field(rec, "answer_keywords", (str, type(None)), default=None)
        meta = {
            "dataset": ds,
            "answer_keywords": keywords,
            "length": rec.data.get("length"),
            "language": rec.data.get("language"),
            "file": str(rec.path),
            "line": rec.line,
        }
        return Item(
            body=template.format(context=field(rec, "context", str), input=question),
            answer=answers[0],
            references=tuple(answers),
            meta=meta,
            max_new_tokens=self.config.max_new_tokens or DATASET_MAXGEN[ds],
            query=template.split("{context}", 1)[1].format(input=question).strip(),
        )

    def items(self) -> list[Item]:
        path = self.data_file()
        wanted = base_name(self.config.dataset) if self.config.dataset else ""
        out = []
        for rec in read_records(path):
            own = field(rec, "dataset", str, default="") or stem_dataset(path)
            ds = base_name(own)
            if wanted and ds != wanted:
                continue
            ds = wanted or ds
            if ds not in DATASET_PROMPT:
                raise InputError(
                    f"{rec.where}: unknown LV-Eval dataset {own!r} (set dataset= to one of {', '.join(DATASET_PROMPT)})"
                )
            out.append(self.item(rec, ds))
        if not out:
            raise InputError(f"{path}: no records of dataset {wanted!r}")
        return out

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """The selected records, each fitted to ``length``."""
        items = select(self.items(), self.config.limit, seed)
        yield from build_cases(self.name, items, tokenizer, length=length, depth=depth, seed=seed)

    def score(self, prediction: str, case: Case) -> float:
        """The dataset's metric against the first gold answer (LV-Eval's scorer), in [0, 1]."""
        metric = LVEVAL_DATASET_METRIC[case.meta["dataset"]]
        return max(0.0, metric(prediction, case.golds[0], case.meta.get("answer_keywords")))
