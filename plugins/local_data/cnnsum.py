"""``cnnsum``: CNNSum, summarizing excerpts of Chinese novels, from local files.

Wei et al. 2024, "CNNSum: Exploring Long-Context Summarization with Large Language Models in Chinese
Novels", arXiv:2412.02819 (CxsGhost/CNNSum: ``Inference.py``, ``prompts.json``).

**Data.** Four subsets by length, ``cnnsum_L_16k.jsonl``, ``cnnsum_XL_32k.jsonl``,
``cnnsum_2XL_64k.jsonl`` and ``cnnsum_3XL_128k.jsonl`` (the repository's copies are named
``cnnsum_XXL_64k`` / ``cnnsum_XXXL_128k``; both spellings are found), one record per line with
``context`` (the novel excerpt) and ``summary`` (the annotated summary).

**Prompt.** ``prompts.json`` has two: ``Prompt-IE`` (instruction at the end, the default) and
``Prompt-IB`` (at the beginning); the paper reports their average. Over-long prompts are cut in the
middle (LongBench's rule; ``Inference.py`` relies on the model's extrapolation instead). Budgets per
subset (``default_infer_len``): 400 tokens for L and XL, 500 for 2XL and 3XL; the reference also sets
``min_tokens=10``, which a pipeline here does not enforce.

**Score** (``Inference.py``'s ``rouge_zh_score``, "ref CLongEval"): ROUGE-L F of the ``rouge`` package over
jieba words joined by spaces, 0 for an empty prediction or one of only dots. The script raises
Python's recursion limit to 10 000, so unlike LongBench's Chinese ROUGE a long summary (one "sentence":
Chinese text has no ASCII ``.``) is scored, not zeroed. Identical texts score ``2PR/(P+R+1e-8)``, just
under 1. Needs ``jieba``.

Goldman et al. 2024 (arXiv:2407.00402): a summary needs the whole excerpt (high diffusion, high scope).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError, ParameterError
from longctx.evaluate import Case
from longctx.metrics import _cut
from longctx.plugins.local_data._common import (
    Item,
    build_cases,
    field,
    find_file,
    limit_field,
    max_new_field,
    path_field,
    read_records,
    require_path,
    select,
)
from longctx.plugins.local_data._overlap import RougeFailure, rouge_pkg

PAPER = "Wei et al. 2024, arXiv:2412.02819"

#: ``prompts.json``.
PROMPTS: Mapping[str, str] = MappingProxyType(
    {
        "IE": "下面是一个小说节选，内容如下：\n\n{}\n\n"
        "请你阅读以上内容后写出相应的摘要，不要输出其他任何内容。\n\n摘要：",
        "IB": "下面是一个小说节选，请你阅读后写出相应的摘要，不要输出其他任何内容。\n小说节选如下：\n\n{}\n\n摘要：",
    }
)
#: ``default_infer_len`` per subset, and the file names of each subset.
SUBSET_MAXGEN: Mapping[str, int] = MappingProxyType({"L": 400, "XL": 400, "2XL": 500, "3XL": 500})
SUBSET_FILES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "L": ("cnnsum_L_16k.jsonl",),
        "XL": ("cnnsum_XL_32k.jsonl",),
        "2XL": ("cnnsum_2XL_64k.jsonl", "cnnsum_XXL_64k.jsonl"),
        "3XL": ("cnnsum_3XL_128k.jsonl", "cnnsum_XXXL_128k.jsonl"),
    }
)
#: ``sys.setrecursionlimit(10000)`` minus the frames under which the ``rouge`` package starts its LCS walk
#: (absl's app.run and _run_main, main, scorer, rouge_zh_score, get_scores, _get_scores, <lambda>,
#: rouge_l_summary_level, _union_lcs, _recon_lcs and <module>).
ROUGE_FRAMES = 10000 - 12


def subset_of(path: Path) -> str | None:
    """The subset a file's name says (``cnnsum_XL_32k.jsonl`` → ``XL``), or ``None``."""
    for subset, names in SUBSET_FILES.items():
        if path.name in names:
            return subset
    return None


def rouge_zh(prediction: str, ground_truth: str) -> float:
    """CNNSum's ``rouge_zh_score``: ROUGE-L F over jieba words, 0 for "" or only dots, in [0, 1)."""
    if prediction == "" or set(prediction) == {"."}:
        return 0.0
    try:
        scores = rouge_pkg(" ".join(_cut(prediction)), " ".join(_cut(ground_truth)), max_frames=ROUGE_FRAMES)
    except RougeFailure:
        return 0.0
    return scores["rouge-l"][2]


@attrs.frozen
class CNNSumConfig:
    """Where the data is, which subset and prompt, how many excerpts, the generation budget."""

    path: str = path_field()
    subset: str = attrs.field(
        default="",
        metadata={"help": "L (16k), XL (32k), 2XL (64k) or 3XL (128k): required for a folder; a file's name says it"},
    )
    prompt: str = attrs.field(
        default="IE",
        metadata={"help": "IE (instruction at the end) or IB (at the beginning); the paper averages both"},
    )
    limit: int = limit_field()
    max_new_tokens: int = max_new_field("400 for L/XL, 500 for 2XL/3XL")

    @subset.validator
    def _check_subset(self, attribute: attrs.Attribute, value: str) -> None:
        if value and value not in SUBSET_FILES:
            raise ParameterError(f"subset must be one of {', '.join(SUBSET_FILES)}, got {value!r}")

    @prompt.validator
    def _check_prompt(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in PROMPTS:
            raise ParameterError(f"prompt must be IE or IB, got {value!r}")


class CNNSum:
    """CNNSum from local files (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = "cnnsum"
    depth_sensitive = False
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})

    def __init__(self, config: CNNSumConfig | None = None, ctx: Any = None) -> None:
        self.config = config or CNNSumConfig()

    def items(self) -> list[Item]:
        p = require_path(self.name, self.config.path)
        if p.is_dir():
            if not self.config.subset:
                raise InputError(f"cnnsum: path {str(p)!r} is a folder; choose subset=L, XL, 2XL or 3XL")
            p = find_file(self.name, p, SUBSET_FILES[self.config.subset], f"subset {self.config.subset}")
        subset = self.config.subset or subset_of(p) or "L"
        template = PROMPTS[self.config.prompt]
        out = []
        for rec in read_records(p):
            context = field(rec, "context", str)
            summary = field(rec, "summary", str)
            meta = {"subset": subset, "prompt": self.config.prompt, "file": str(rec.path), "line": rec.line}
            out.append(
                Item(
                    body=template.format(context),
                    answer=summary,
                    references=(summary,),
                    meta=meta,
                    max_new_tokens=self.config.max_new_tokens or SUBSET_MAXGEN[subset],
                    query=template.split("{}", 1)[1].strip(),
                )
            )
        return out

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """The selected excerpts, each fitted to ``length``."""
        items = select(self.items(), self.config.limit, seed)
        yield from build_cases(self.name, items, tokenizer, length=length, depth=depth, seed=seed)

    def score(self, prediction: str, case: Case) -> float:
        """CNNSum's ROUGE-L F (jieba words, the ``rouge`` package), in [0, 1)."""
        return max(rouge_zh(prediction, g) for g in case.golds)
