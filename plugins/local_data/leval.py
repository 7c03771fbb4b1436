"""``l-eval``: L-Eval's 20 tasks (exam and n-gram metrics) from local files.

An et al. 2023, "L-Eval: Instituting Standardized Evaluation for Long Context Language Models",
arXiv:2307.11088 (OpenLMLab/LEval: ``Baselines/LEval_config.py``, ``Baselines/llama2-chat-test.py``,
``Evaluation/auto_eval.py``, ``em.py``, ``f1.py``, ``rouge.py``).

**Data.** ``LEval-data/{Closed,Open}-ended-tasks/<task>.jsonl``: one *document* per line with ``input``
(the long document), ``instructions`` and ``outputs`` (parallel lists: several questions per
document), ``evaluation`` (``exam``, ``f1``, ``rouge``, or ``human``/``LLM`` for the judged records,
which ``auto_eval.py`` skips and so do we) and ``source``. Each instruction is one case; the cases of one
document share its text as ``context`` (one prefill for all of them).

**Prompt.** L-Eval's baselines build it per model; we take the model-neutral part of
``llama2-chat-test.py`` — the task's system prompt (``get_sys_prompt``), a blank line, the user turn —
without Llama-2's ``[INST]``/``<<SYS>>`` markers (``--chat-template`` renders the model's own):

* closed-ended (``exam_eval``): ``Document is as follows. {document} \\nQuestion: {inst}.  Please
  directly give the answer without any additional output or explanation `` then ``\\nAnswer:``;
* gsm100, codeU and topic_retrieval_longchat: ``{document}\\n\\n{inst}``;
* open-ended (``ngram_eval``): ``Document is as follows. {document} Instruction: {inst} \\nAnswer this
  question with {N} words.``, N the word count of the reference (L-Eval's own length hint).

Over-long prompts are cut in the middle like LongBench's (L-Eval's scripts instead drop the document's
tail in 250-word steps until it fits the model's window; we keep one rule for every local benchmark).
Budget: ``max_new_tokens = 512`` for every task (``LEval_config.py``).

**Score** (``auto_eval.py``), per sample in [0, 1]:

* ``exam`` — ``em.py``'s ``exact_match_score`` after the task's post-processing: option letters for
  coursera/quality/tpo (``process_output_mc``; coursera may list several, a strict subset of the
  right options scores 0.25), the number for gsm100 (``process_math``), the printed value for codeU,
  the true/false verdict for sci_fi (only the *loyalty* half: the reference asks a second "fact"
  question in a follow-up turn, which a single generation cannot), substring match otherwise.
  ``em.py`` normalizes without lower-casing; kept.
* ``f1`` — SQuAD token F1 (:func:`longctx.metrics.qa_f1_score`; ``f1.py`` normalizes identically).
* ``rouge`` — ``rouge-score``'s ROUGE-L F; :meth:`LEval.metrics` adds ``rouge1``/``rouge2``/``rougeL``.
  L-Eval's headline ``LEval_score`` is the geometric mean of the three *column means*:
  ``(R1·R2·RL)^(1/3)`` over a run's ``metrics`` averages.

Goldman et al. 2024 (arXiv:2407.00402): most tasks ask about one document part (low diffusion, low
scope); summarization-style tasks (``*_summ``, paper_assistant, review_summ) need all of it (high, high).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case
from longctx.metrics import qa_f1_score
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
from longctx.plugins.local_data._overlap import google_rouge

PAPER = "An et al. 2023, arXiv:2307.11088"

CLOSED_ENDED: tuple[str, ...] = ("coursera", "quality", "topic_retrieval_longchat", "tpo", "gsm100", "codeU", "sci_fi")
OPEN_ENDED: tuple[str, ...] = (
    "financial_qa",
    "gov_report_summ",
    "legal_contract_qa",
    "meeting_summ",
    "multidoc_qa",
    "narrative_qa",
    "natural_question",
    "news_summ",
    "paper_assistant",
    "patent_summ",
    "review_summ",
    "scientific_qa",
    "tv_show_summ",
)
WITH_OPTIONS: tuple[str, ...] = ("coursera", "quality", "tpo")
#: ``LEval_config.max_new_tokens``.
MAX_NEW_TOKENS = 512
SUPPORTED_METRICS = ("exam", "f1", "rouge")

_SYS_DEFAULT = (
    "Now you are given a very long document. Please follow the instruction after this document. These "
    "instructions may include summarizing a document, answering questions based on the document, or writing "
    "a required paragraph. "
)
_SYS_EXAM = (
    "Now you are given a very long document. Please follow the instruction based on this document. For "
    "multi-choice questions, there is only a sinlge correct option. Please only provide the letter "
    "corresponding to the answer (like A or B) when answering. For other questions, please directly give the "
    "concise and accurate answer. "
)
#: ``get_sys_prompt`` (the spelling is L-Eval's).
SYSTEM_PROMPTS: Mapping[str, str] = MappingProxyType(
    {
        "gsm": "Given several question answer pairs, you need to follow a similar format to answer the last "
        "question. Make sure the response is end with The answer is _ . ",
        "topic": "Below is a record of our previous conversation on many different topics. You are the "
        "ASSISTANT, and I am the USER. At the beginning of each topic, the USER will say 'I would like to "
        "discuss the topic of <TOPIC>'. Memorize each <TOPIC>. At the end of the record, I will ask you to "
        "retrieve the first/second/third topic names. Now the record start. ",
        "coursera": "Now you are given a very long document. Please follow the instruction based on this "
        "document. For multi-choice questions, there could be a sinlge correct option or multiple correct "
        "options. Please only provide the letter corresponding to the answer (like A or AB) when answering. ",
        "codeU": "Now you are given a code base consisting of a large amount of functions and the corresponding "
        "comments. In the end, I will call some functions defined in the code base. Please carefully read these "
        "codes and comments and answer the question.",
        "sci_fi": "Now you are given a scientific fiction. I will ask you some questions and the answer should be "
        '"True" or "False". Notice that you should answer the question based on the evidence in the document '
        "instead of your background knowledge.",
    }
)

_EXAM_TEMPLATE = (
    "Document is as follows. {document} \nQuestion: {inst}.  Please directly give the answer without any "
    "additional output or explanation "
)
_EXAM_PREFIX = "\nAnswer:"
_NGRAM_TEMPLATE = "Document is as follows. {document} Instruction: {inst} \nAnswer this question with {n} words."


def system_prompt(task: str) -> str:
    """``get_sys_prompt(args, file_name)``: matched on the task name as L-Eval matches the file name."""
    if "gsm" in task:
        return SYSTEM_PROMPTS["gsm"]
    if "topic" in task:
        return SYSTEM_PROMPTS["topic"]
    for key in ("coursera", "codeU", "sci_fi"):
        if key in task:
            return SYSTEM_PROMPTS[key]
    return _SYS_EXAM if task in CLOSED_ENDED else _SYS_DEFAULT


# -- L-Eval's answer post-processing (auto_eval.py) and exact match (em.py) -------------------------


def process_output_mc(response: str, task: str) -> str:
    """``process_output_mc``: the option letter(s) of a multiple-choice answer ("A" when none is found)."""
    if len(response.strip()) == 0:
        return "None"
    if response in "ABCD":
        return response
    if "coursera" not in task:
        for ch in response:
            if ch in "ABCD":
                return ch
    cleaned = ""
    for ch in response:
        if ch in "ABCD":
            cleaned += ch
            response = response[1:]
        else:
            break
    if len(cleaned) > 1:
        return "".join(sorted(set(cleaned)))
    response = response.split("Question")[0]
    options = re.findall(r"\s*[A-Z](?=[\s.)])", response)
    cleaned += " ".join(options).strip()
    cleaned = re.sub(r"[^A-D]", "", cleaned)
    cleaned = "".join(sorted(set(cleaned)))
    if len(cleaned) < 1:
        has_answer = False
        for ch in response:
            if ch in "ABCD":
                cleaned += ch
                response = response[1:]
                has_answer = True
            elif has_answer:
                break
    if len(cleaned) < 1:
        cleaned = "A"
    return cleaned


def process_gt_mc(response: str) -> str:
    """``process_gt_mc``: the option letters of the first word of the reference ("A" when none)."""
    words = response.split()
    cleaned = re.sub(r"[^A-D]", "", words[0] if words else "")
    return cleaned or "A"


def process_math(response: str) -> str:
    """``process_math``: the digits of "The answer is X", else of the last number of the first paragraph."""
    match = re.search(r"The answer is (\S+)", response)
    if not match:
        ret = ""
        for word in response.split("\n\n")[0].split(" ")[::-1]:
            if any(c.isdigit() for c in word):
                ret = word
                break
    else:
        ret = match.group(1)
    out = ""
    for c in ret:
        if c.isdigit():
            out += c
        if c == ".":
            break
    return out


def process_gt_code(response: str) -> str:
    """``process_gt_code``: whitespace collapsed, commas, quotes, backslashes and ``.0`` removed."""
    response = re.sub(r"\s+", " ", response)
    for a, b in ((",", ""), ("'", ""), ("\\", ""), (".0", ""), ("] [", "]["), ("[ [", "[["), ("] ]", "]]")):
        response = response.replace(a, b)
    return response


def process_output_code(response: str, gt: str) -> str:
    """``process_output_code``: the last ``len(gt) + 3`` words, or those after "the final output"."""
    gt_len = len(gt.split())
    response = process_gt_code(response)
    for phrase in ("will be", "of the code", "is", "would be", "the value of", "the result of", "printed"):
        response = response.replace(phrase, "")
    if "the final output" in response:
        response = response.split("the final output")[-1]
        res = re.split(r"\s+", response)[: gt_len + 3]
    else:
        res = re.split(r"\s+", response)[-(gt_len + 3) :]
    return " ".join(res)


def judge_verdict(text: str) -> str:
    """The first word containing "true" or "false" in the lower-cased text (``process_output_judge``'s
    loyalty part), ``"<error>"`` when there is none."""
    for word in text.lower().split():
        if "true" in word:
            return "true"
        if "false" in word:
            return "false"
    return "<error>"


def _em_normalize(s: str) -> str:
    """``em.py``'s ``normalize_answer``: punctuation, articles and extra spaces removed — no lower-casing."""
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match_score(prediction: str, ground_truth: str) -> float:
    """``em.py``: option answers compare normalized letters (0.25 for a subset of the right options);
    others compare as numbers, else by containment ignoring case and spaces."""
    gt_norm = _em_normalize(ground_truth)
    if all(c in "ABCD" for c in gt_norm):
        pred_norm = _em_normalize(prediction)
        if pred_norm == gt_norm:
            return 1.0
        if set(pred_norm).issubset(set(gt_norm)):
            return 0.25
        return 0.0
    try:
        return float(float(prediction) == float(ground_truth))
    except ValueError:
        return 1.0 if ground_truth.lower().replace(" ", "") in prediction.lower().replace(" ", "") else 0.0


def exam_score(task: str, prediction: str, gt: str) -> float:
    """One closed-ended answer's score, post-processed as ``auto_eval.py`` does for ``task``."""
    if task in WITH_OPTIONS:
        return exact_match_score(process_output_mc(prediction, task), process_gt_mc(gt))
    if "gsm" in task:
        return exact_match_score(process_math(prediction), process_math(gt))
    if "codeU" in task:
        return exact_match_score(process_output_code(prediction, gt), process_gt_code(gt))
    if "sci_fi" in task:
        loyalty = gt.lower().split("[fact:")[0].strip()
        return exact_match_score(judge_verdict(prediction), loyalty)
    return exact_match_score(prediction, gt)


# -- the task --------------------------------------------------------------------------------------


def _tags(task: str) -> Mapping[str, str]:
    if task.endswith("_summ") or task in ("paper_assistant",):
        return MappingProxyType({"diffusion": "high", "scope": "high"})
    return MappingProxyType({"diffusion": "low", "scope": "low"})


@attrs.frozen
class LEvalConfig:
    """Where the data is, which task, how many questions, the generation budget."""

    path: str = path_field()
    dataset: str = attrs.field(
        default="",
        metadata={
            "help": "the task (coursera, quality, financial_qa, …): required for a folder; default for a file: its name"
        },
    )
    limit: int = limit_field()
    max_new_tokens: int = max_new_field("512")


class LEval:
    """L-Eval from local files (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = "l-eval"
    depth_sensitive = False

    def __init__(self, config: LEvalConfig | None = None, ctx: Any = None) -> None:
        self.config = config or LEvalConfig()
        if self.config.dataset and self.config.dataset not in (*CLOSED_ENDED, *OPEN_ENDED):
            raise InputError(
                f"l-eval: unknown task {self.config.dataset!r}; known: {', '.join((*CLOSED_ENDED, *OPEN_ENDED))}"
            )

    @property
    def tags(self) -> Mapping[str, str]:
        return _tags(self.config.dataset)

    def items(self) -> list[Item]:
        """One item per (document, instruction) of records scored by exam, f1 or rouge."""
        p = require_path(self.name, self.config.path)
        if p.is_dir():
            if not self.config.dataset:
                raise InputError(f"l-eval: path {str(p)!r} is a folder; choose a task with dataset=")
            p = find_file(self.name, p, [f"{self.config.dataset}.jsonl", f"{self.config.dataset}.json"], "the task")
        task = self.config.dataset or stem_dataset(p)
        if task not in (*CLOSED_ENDED, *OPEN_ENDED):
            raise InputError(f"{p}: cannot tell the L-Eval task from the file name; set dataset= to one of the tasks")
        sys_prompt = system_prompt(task)
        out: list[Item] = []
        for rec in read_records(p):
            evaluation = field(rec, "evaluation", str)
            if evaluation not in SUPPORTED_METRICS:
                continue  # judged by humans or GPT-4 in L-Eval: auto_eval.py skips them
            document = field(rec, "input", str)
            instructions = field(rec, "instructions", list)
            outputs = field(rec, "outputs", list)
            if len(instructions) != len(outputs):
                raise InputError(
                    f"{rec.where}: 'instructions' has {len(instructions)} entries but 'outputs' {len(outputs)}"
                )
            for k, (inst, gt) in enumerate(zip(instructions, outputs)):
                if not isinstance(inst, str) or not isinstance(gt, str):
                    raise InputError(f"{rec.where}: instruction {k} and its output must be strings")
                out.append(self._item(rec, task, sys_prompt, evaluation, document, inst, gt, k))
        if not out:
            raise InputError(f"{p}: no records with evaluation exam, f1 or rouge")
        return out

    def _item(self, rec, task, sys_prompt, evaluation, document, inst, gt, k) -> Item:
        head = sys_prompt + "\n\n"
        if "gsm" in task or "codeU" in task or "topic" in task:
            shared = head + document + "\n\n"
            body, prefix = shared + inst, ""
        elif task in CLOSED_ENDED:
            shared = head + "Document is as follows. " + document + " \n"
            body, prefix = head + _EXAM_TEMPLATE.format(document=document, inst=inst), _EXAM_PREFIX
        else:
            shared = head + "Document is as follows. " + document
            body, prefix = head + _NGRAM_TEMPLATE.format(document=document, inst=inst, n=len(gt.split())), ""
        assert body.startswith(shared)
        meta = {
            "task": task,
            "evaluation": evaluation,
            "source": rec.data.get("source"),
            "instruction_index": k,
            "file": str(rec.path),
            "line": rec.line,
        }
        return Item(
            body=body,
            answer=gt,
            references=(gt,),
            meta=meta,
            max_new_tokens=self.config.max_new_tokens or MAX_NEW_TOKENS,
            answer_prefix=prefix,
            query=(body[len(shared) :] + prefix).strip() or None,
            shared=shared,
        )

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """The selected instructions, each fitted to ``length``; those of one document share its text."""
        items = select(self.items(), self.config.limit, seed)
        yield from build_cases(self.name, items, tokenizer, length=length, depth=depth, seed=seed)

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """``rouge1``/``rouge2``/``rougeL`` F for rouge-scored records (max over references); ``{}`` else."""
        if case.meta["evaluation"] != "rouge":
            return {}
        scores = [google_rouge(g, prediction) for g in case.golds]
        return {k: max(s[k][2] for s in scores) for k in ("rouge1", "rouge2", "rougeL")}

    def score(self, prediction: str, case: Case) -> float:
        """The record's L-Eval metric in [0, 1] (exam: exact match; f1: token F1; rouge: ROUGE-L F)."""
        evaluation, task = case.meta["evaluation"], case.meta["task"]
        if evaluation == "exam":
            return max(exam_score(task, prediction, g) for g in case.golds)
        if evaluation == "f1":
            return max(qa_f1_score(prediction, g) for g in case.golds)
        return max(google_rouge(g, prediction)["rougeL"][2] for g in case.golds)
