"""``loogle``: LooGLE's short- and long-dependency tasks from local files.

Li et al. 2023, "LooGLE: Can Long-Context Language Models Understand Long Contexts?",
arXiv:2311.04939 (bigai-nlco/LooGLE: ``Prediction/pred_opensource_models.py``, ``config/``,
``Evaluation/automatic_metrics.py``, ``automatic_eval.py``).

**Data.** ``<task>.jsonl`` for the four tasks ``shortdep_qa``, ``shortdep_cloze``, ``longdep_qa`` and
``longdep_summarization`` (``LooGLE-testdata/`` or the ``bigainlco/LooGLE`` dataset): one *document* per
line with ``input`` (the text), ``title``, ``qa_pairs`` — a list of ``{"Q", "A", "S", ("type")}`` or a
string holding that list as a Python literal (the reference ``eval``\\ s it; we parse it with
``ast.literal_eval``), or ``"none"`` for summarization, whose gold summary is ``output``. Each question is
one case; the questions of one document share its text as ``context``.

**Prompt.** ``config/task2prompt.json`` formatted with ``input`` and ``Q``; over-long prompts are cut in
the middle exactly as ``pred_opensource_models.py`` does (LongBench's rule). Budgets:
``config/task2maxlen.json``. The reference generates with ``repetition_penalty=2``; a pipeline here
decodes greedily without it.

**Score** (``automatic_metrics.py``), in [0, 1]:

* QA and summarization — ``get_rouge_score``'s ROUGE-L *recall* (the ``rouge`` package's ``"r"``, the
  value LooGLE reports), an empty prediction scored as ``"None"`` as ``automatic_eval.py`` does;
  :meth:`LooGLE.metrics` adds ``rouge1``/``rouge2``/``rougeL`` recall and NLTK ``bleu1``/``bleu4``. METEOR
  (NLTK WordNet), BERTScore and the GPT-4 judge need models or downloads and are not computed.
* cloze — ``get_exact_match``: the prediction read as a Python dict literal (the reference ``eval``\\ s
  it), the share of masks whose entity is exactly right; metrics add ``partial_match`` (the share with
  a word in common) and the counts ``masks``/``exact_masks``/``partial_masks``. LooGLE pools masks over
  the whole task (micro average): the ratio of the mean ``exact_masks`` to the mean ``masks`` of a run.

Goldman et al. 2024 (arXiv:2407.00402): short-dependency tasks hinge on one sentence (low diffusion,
low scope); long-dependency QA and summarization need evidence spread over the document (high, high).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case
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
    stem_dataset,
)
from longctx.plugins.local_data._overlap import RougeFailure, bleu, rouge_pkg

PAPER = "Li et al. 2023, arXiv:2311.04939"

#: ``config/task2prompt.json`` (``{{``/``}}`` are ``str.format`` escapes, as in the file).
TASK2PROMPT: Mapping[str, str] = MappingProxyType(
    {
        "shortdep_qa": "Please answer the question based on the long texts below. \n{input}\nQuestion: {Q}\nAnswer: ",
        "longdep_qa": "Please answer the question based on the long texts below. \n{input}\nQuestion: {Q}\nAnswer: ",
        "longdep_summarization": "Please generate a summary of the below paper. \n{input}\n Summarization: ",
        "shortdep_cloze": "Please fill in the clozes based on the given long texts below. Each of the placeholder "
        "'<mask-n>' in the question could be an entity of Person, Location or Organiocation. The same masks "
        "represent the same entity. Output a json format answer, for example: {{'<mask-0>': 'Bob', '<mask-1>': "
        "'Gorrosion Magazine','<mask-2>': 'Bethel Horizon'}}\n{input}\n Question: {Q} What are the masked "
        "entities? \nAnswer:",
    }
)
#: ``config/task2maxlen.json``.
TASK2MAXLEN: Mapping[str, int] = MappingProxyType(
    {"shortdep_qa": 300, "longdep_qa": 500, "longdep_summarization": 500, "shortdep_cloze": 50}
)
#: Frames on the stack when ``automatic_eval.py`` enters the ``rouge`` package's recursive LCS walk:
#: <module>, evaluation, get_rouge_score, get_scores, _get_scores, <lambda>, rouge_l_summary_level,
#: _union_lcs, _recon_lcs — CPython's default limit of 1000 minus these.
ROUGE_FRAMES = 1000 - 9


def _parse_dict(text: str) -> dict[Any, Any] | None:
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def cloze_counts(prediction: str, reference: Mapping[str, str]) -> tuple[int, int, int]:
    """``(exact, partial, masks)``: ``get_exact_match`` and ``get_partial_match`` for one question."""
    count = len(reference)
    hyp = _parse_dict(prediction)
    if hyp is None:
        return 0, 0, count
    exact = sum(1 for k in reference if k in hyp and hyp[k] == reference[k])
    partial = sum(1 for k in reference if k in hyp and set(str(reference[k]).split()) & set(str(hyp[k]).split()))
    return exact, partial, count


@attrs.frozen
class LooGLEConfig:
    """Where the data is, which task, how many questions, the generation budget."""

    path: str = path_field()
    dataset: str = attrs.field(
        default="",
        metadata={
            "help": "the task: shortdep_qa, shortdep_cloze, longdep_qa or longdep_summarization (required "
            "for a folder; default for a file: its name)"
        },
    )
    limit: int = limit_field()
    max_new_tokens: int = max_new_field("task2maxlen: 50-500")


class LooGLE:
    """LooGLE from local files (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = "loogle"
    depth_sensitive = False

    def __init__(self, config: LooGLEConfig | None = None, ctx: Any = None) -> None:
        self.config = config or LooGLEConfig()
        if self.config.dataset and self.config.dataset not in TASK2PROMPT:
            raise InputError(f"loogle: unknown task {self.config.dataset!r}; known: {', '.join(TASK2PROMPT)}")

    @property
    def tags(self) -> Mapping[str, str]:
        high = self.config.dataset.startswith("longdep")
        return MappingProxyType(
            {"diffusion": "high", "scope": "high"} if high else {"diffusion": "low", "scope": "low"}
        )

    def items(self) -> list[Item]:
        """One item per question (one per document for summarization), in file order."""
        p = require_path(self.name, self.config.path)
        if p.is_dir():
            if not self.config.dataset:
                raise InputError(f"loogle: path {str(p)!r} is a folder; choose a task with dataset=")
            p = find_file(self.name, p, [f"{self.config.dataset}.jsonl", f"{self.config.dataset}.json"], "the task")
        task = self.config.dataset or stem_dataset(p)
        if task not in TASK2PROMPT:
            raise InputError(
                f"{p}: cannot tell the LooGLE task from the file name; set dataset= to one of {', '.join(TASK2PROMPT)}"
            )
        template = TASK2PROMPT[task]
        budget = self.config.max_new_tokens or TASK2MAXLEN[task]
        out: list[Item] = []
        for rec in read_records(p):
            document = field(rec, "input", str)
            meta = {"task": task, "title": rec.data.get("title"), "file": str(rec.path), "line": rec.line}
            qa = field(rec, "qa_pairs", (str, list))
            if task == "longdep_summarization" or (isinstance(qa, str) and qa.strip().lower() == "none"):
                gold = field(rec, "output", str)
                body = template.format(input=document)
                out.append(Item(body, gold, (gold,), meta, budget, query=body.split(document, 1)[1].strip() or None))
                continue
            if isinstance(qa, str):
                try:
                    qa = ast.literal_eval(qa)
                except (ValueError, SyntaxError) as e:
                    raise InputError(f"{rec.where}: field 'qa_pairs' is not a list literal ({e})") from None
            if not isinstance(qa, list):
                raise InputError(f"{rec.where}: field 'qa_pairs' must be a list of {{'Q', 'A', …}} objects")
            shared = template.split("{input}", 1)[0].format() + document + "\n"
            for k, pair in enumerate(qa):
                if not isinstance(pair, dict) or "Q" not in pair or "A" not in pair:
                    raise InputError(f"{rec.where}: qa_pairs[{k}] lacks 'Q' or 'A'")
                body = template.format(input=document, Q=pair["Q"])
                gold = pair["A"]
                if task == "shortdep_cloze":
                    if not isinstance(gold, dict):
                        raise InputError(f"{rec.where}: qa_pairs[{k}]['A'] must map each <mask-n> to its entity")
                    answer = repr(gold)
                    meta_k = {**meta, "question_index": k, "masks": gold, "type": pair.get("type")}
                else:
                    answer = str(gold)
                    meta_k = {**meta, "question_index": k, "type": pair.get("type")}
                assert body.startswith(shared)
                out.append(
                    Item(
                        body,
                        answer,
                        (answer,),
                        meta_k,
                        budget,
                        query=body[len(shared) :].strip() or None,
                        shared=shared,
                    )
                )
        if not out:
            raise InputError(f"{p}: no questions")
        return out

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """The selected questions, each fitted to ``length``; those of one document share its text."""
        items = select(self.items(), self.config.limit, seed)
        yield from build_cases(self.name, items, tokenizer, length=length, depth=depth, seed=seed)

    @staticmethod
    def _rouge(prediction: str, gold: str) -> dict[str, tuple[float, float, float]] | None:
        try:
            return rouge_pkg(prediction or "None", gold, max_frames=ROUGE_FRAMES)
        except RougeFailure:
            return None

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """Cloze: exact/partial match and the mask counts; QA and summarization: ROUGE recall and BLEU."""
        if case.meta["task"] == "shortdep_cloze":
            exact, partial, count = cloze_counts(prediction, case.meta["masks"])
            return {
                "exact_match": exact / count if count else 0.0,
                "partial_match": partial / count if count else 0.0,
                "exact_masks": float(exact),
                "partial_masks": float(partial),
                "masks": float(count),
            }
        scores = self._rouge(prediction, case.answer)
        hyp = (prediction or "None").replace("\n", " ").split()
        ref = case.answer.replace("\n", " ").split()
        names = {"rouge1": "rouge-1", "rouge2": "rouge-2", "rougeL": "rouge-l"}
        out = {name: scores[key][1] if scores else 0.0 for name, key in names.items()}
        out.update(bleu1=bleu(hyp, ref, 1), bleu4=bleu(hyp, ref, 4))
        return out

    def score(self, prediction: str, case: Case) -> float:
        """Cloze: the share of masks filled exactly; QA and summarization: ROUGE-L recall, in [0, 1]."""
        if case.meta["task"] == "shortdep_cloze":
            exact, _, count = cloze_counts(prediction, case.meta["masks"])
            return exact / count if count else 0.0
        scores = self._rouge(prediction, case.answer)
        return scores["rouge-l"][1] if scores else 0.0
