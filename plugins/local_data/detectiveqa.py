"""``detectiveqa``: DetectiveQA, multiple-choice reasoning over detective novels, from local files.

Xu et al. 2024, "DetectiveQA: Evaluating Long-Context Reasoning on Detective Novels", arXiv:2409.02465
(data: the ``Phospheneser/DetectiveQA`` dataset).

**Data.** The dataset's layout: ``anno_data_<lang>/<annotation>/<novel_id>.json`` (``lang`` ``en`` or
``zh``; ``annotation`` ``human_anno`` or ``AIsup_anno``), each a JSON list holding one novel object
``{"novel_id", "num_paragraphs", "questions": [{"question", "options": {"A": …, "D": …}, "answer",
"reasoning", "clue_position", "answer_position"}, …]}``, and the novels as
``novel_data_<lang>/<novel_id>-<title>.txt``, one paragraph per line written ``[n]text``.
``clue_position`` and ``answer_position`` are paragraph numbers: the answer is revealed at
``answer_position``, so by default the context is the novel *before* that paragraph (``context=full``
gives the whole novel); paragraph markers are removed. Questions of one novel with the same context
share it (one prefill).

**Prompt and score.** The benchmark's headline metric is multiple-choice accuracy (its second metric,
the step-wise reasoning score, needs an LLM judge and is not computed). The official evaluation
scripts (github.com/Phospheneser/DetectiveQA) could not be consulted here, so the prompt is ours: the
context, the question, the four options and "Answer with the letter of the correct option" (Chinese
wording for ``zh``), with a 32-token budget; the answer letter is read from ``[[X]]``, a leading
letter, "answer is X" / "答案是X", else the first stand-alone capital A-D. Accuracy is 1 when it is
the gold letter.

Goldman et al. 2024 (arXiv:2407.00402): the clues are scattered through the novel and must be combined
(high diffusion, high scope).
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
from longctx.plugins.local_data._common import (
    Item,
    Record,
    build_cases,
    field,
    limit_field,
    max_new_field,
    path_field,
    read_records,
    require_path,
    select,
)

PAPER = "Xu et al. 2024, arXiv:2409.02465"
MAX_NEW_TOKENS = 32
LETTERS = ("A", "B", "C", "D")

TEMPLATES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "en": (
            "{novel}\n\nQuestion: {question}\nOptions:\n{options}\n\n"
            "Answer with the letter of the correct option (A, B, C or D).",
            "\nAnswer:",
        ),
        "zh": (
            "{novel}\n\n问题：{question}\n选项：\n{options}\n\n请只回答正确选项的字母（A、B、C 或 D）。",
            "\n答案：",
        ),
    }
)

_PARAGRAPH = re.compile(r"^\s*\[(\d+)\]\s?(.*)$")
_PATTERNS = (
    re.compile(r"\[\[\s*([A-D])\s*\]\]"),
    re.compile(r"^\W*([A-D])(?![A-Za-z])"),
    re.compile(r"(?:answer|option)\s*(?:is|:)?\s*\(?\s*([A-D])(?![A-Za-z])", re.IGNORECASE),
    re.compile(r"(?:答案|选项)\s*(?:是|为|:|：)?\s*([A-D])"),
    re.compile(r"(?<![A-Za-z])([A-D])(?![A-Za-z])"),
)


def extract_choice(prediction: str) -> str | None:
    """The option letter a prediction gives (see the module docstring), or ``None``."""
    for pattern in _PATTERNS:
        m = pattern.search(prediction)
        if m:
            return m.group(1).upper()
    return None


def read_novel(path: Path) -> list[tuple[int, str]]:
    """``(paragraph number, text)`` for each paragraph of a ``[n]text`` novel file; unmarked lines continue
    the paragraph before them."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the novel ({e})") from None
    paragraphs: list[tuple[int, str]] = []
    for line in text.splitlines():
        m = _PARAGRAPH.match(line)
        if m:
            paragraphs.append((int(m.group(1)), m.group(2)))
        elif line.strip():
            n = paragraphs[-1][0] if paragraphs else 0
            paragraphs.append((n, line))
    if not paragraphs:
        raise InputError(f"{path}: the novel has no paragraphs")
    return paragraphs


@attrs.frozen
class DetectiveQAConfig:
    """Where the data is, which language and annotation set, the context, the generation budget."""

    path: str = path_field()
    language: str = attrs.field(default="en", metadata={"help": "en or zh"})
    subset: str = attrs.field(
        default="human_anno", metadata={"help": "human_anno or AIsup_anno (the annotation folder of a dataset folder)"}
    )
    context: str = attrs.field(
        default="before_answer",
        metadata={"help": "before_answer: the novel up to the paragraph revealing the answer; full: the whole novel"},
    )
    limit: int = limit_field()
    max_new_tokens: int = max_new_field(f"{MAX_NEW_TOKENS}")

    @language.validator
    def _check_language(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in TEMPLATES:
            raise ParameterError(f"language must be en or zh, got {value!r}")

    @subset.validator
    def _check_subset(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in ("human_anno", "AIsup_anno"):
            raise ParameterError(f"subset must be human_anno or AIsup_anno, got {value!r}")

    @context.validator
    def _check_context(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in ("before_answer", "full"):
            raise ParameterError(f"context must be before_answer or full, got {value!r}")


class DetectiveQA:
    """DetectiveQA from local files (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = "detectiveqa"
    depth_sensitive = False
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})

    def __init__(self, config: DetectiveQAConfig | None = None, ctx: Any = None) -> None:
        self.config = config or DetectiveQAConfig()

    def annotation_files(self) -> tuple[list[Path], Path]:
        """The annotation files to read and the dataset folder holding the novels."""
        p = require_path(self.name, self.config.path)
        lang = self.config.language
        if p.is_dir():
            folder = p / f"anno_data_{lang}" / self.config.subset
            files = sorted(folder.glob("*.json"), key=lambda f: (len(f.stem), f.stem))
            if not files:
                raise InputError(f"detectiveqa: no annotation files in {folder} (expected the dataset's layout)")
            return files, p
        return [p], p.resolve().parents[2] if len(p.resolve().parents) > 2 else p.parent

    def novel_file(self, root: Path, novel_id: Any, rec: Record) -> Path:
        folder = root / f"novel_data_{self.config.language}"
        found = sorted(folder.glob(f"{novel_id}-*.txt")) + sorted(folder.glob(f"{novel_id}.txt"))
        if not found:
            raise InputError(f"{rec.where}: no novel text {folder}/{novel_id}-*.txt for novel_id {novel_id!r}")
        return found[0]

    def items(self) -> list[Item]:
        files, root = self.annotation_files()
        template, prefix = TEMPLATES[self.config.language]
        out: list[Item] = []
        for f in files:
            for rec in read_records(f):
                novel_id = field(rec, "novel_id", (int, str))
                questions = field(rec, "questions", list)
                paragraphs = read_novel(self.novel_file(root, novel_id, rec))
                for k, q in enumerate(questions):
                    out.append(self._item(rec, k, q, novel_id, paragraphs, template, prefix))
        if not out:
            raise InputError(f"detectiveqa: no questions under {self.config.path}")
        return out

    def _item(self, rec, k, q, novel_id, paragraphs, template, prefix) -> Item:
        where = f"{rec.where}: questions[{k}]"
        if not isinstance(q, dict):
            raise InputError(f"{where} must be an object")
        for name in ("question", "options", "answer"):
            if name not in q:
                raise InputError(f"{where}: missing field {name!r}")
        options = q["options"]
        if not isinstance(options, dict) or not all(isinstance(options.get(x), str) for x in LETTERS):
            raise InputError(f"{where}: field 'options' must map A, B, C and D to their texts")
        answer = str(q["answer"]).strip()
        if answer not in LETTERS:
            raise InputError(f"{where}: field 'answer' must be one of A, B, C, D, got {q['answer']!r}")
        cut = q.get("answer_position") if self.config.context == "before_answer" else None
        if cut is not None and not isinstance(cut, int):
            raise InputError(f"{where}: field 'answer_position' must be a paragraph number")
        novel = "\n".join(t for n, t in paragraphs if cut is None or n < cut)
        opts = "\n".join(f"{x}. {options[x]}" for x in LETTERS)
        body = template.format(novel=novel, question=q["question"], options=opts)
        shared = novel + "\n\n"
        meta = {
            "novel_id": novel_id,
            "question_index": k,
            "language": self.config.language,
            "answer_position": q.get("answer_position"),
            "clue_position": q.get("clue_position"),
            "context_paragraphs": sum(1 for n, _ in paragraphs if cut is None or n < cut),
            "file": str(rec.path),
            "line": rec.line,
        }
        return Item(
            body=body,
            answer=answer,
            references=(answer,),
            meta=meta,
            max_new_tokens=self.config.max_new_tokens or MAX_NEW_TOKENS,
            answer_prefix=prefix,
            query=(body[len(shared) :] + prefix).strip(),
            shared=shared,
        )

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """The selected questions, each fitted to ``length``."""
        items = select(self.items(), self.config.limit, seed)
        yield from build_cases(self.name, items, tokenizer, length=length, depth=depth, seed=seed)

    def score(self, prediction: str, case: Case) -> float:
        """1.0 when the option letter read from ``prediction`` is the gold one, else 0.0."""
        return 1.0 if extract_choice(prediction) == case.answer else 0.0
