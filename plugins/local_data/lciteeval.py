"""``l-citeeval``: L-CiteEval, long-context answers that cite their numbered passages, from local files.

Tang et al. 2024, "L-CiteEval: Do Long-Context Models Truly Leverage Context for Responding?",
arXiv:2410.02115 (ZetangForward/L-CITEEVAL: ``script/inference_1shot_vllm.py``, ``prompt/*.json``,
``script/eval_correct.py``, ``script/eval_citation.py``).

**Data.** ``<subset>/<task>.json`` of the ``Jonaszky123/L-CiteEval`` dataset (subsets
``L-CiteEval-Data``, ``L-CiteEval-Length``, ``L-CiteEval-Hardness``): a JSON array of
``{"id", "question", "answer", "docs", "length", "hardness"}``, ``docs`` the context cut into passages
(strings, or ``{"title", "text"}`` objects). Eleven tasks: narrativeqa, natural_questions, hotpotqa,
2wikimultihopqa, gov_report, multi_news, qmsum, locomo, dialsim, counting_stars, niah.

**Prompt.** The passages numbered ``Passage [i]: …`` (``Conversation [i]`` for locomo and dialsim),
the task's instruction ("Every sentence must include a citation at the end …"), the question, then
``Answer:`` (``Summary:`` for summaries) — the task's ``prompt/<task>_default.json`` filled as
``make_demo(test=True)`` does. The reference prepends one worked example (the file's ``demos[0]``) and
its separator; give the official file as ``prompt_file=`` to get that 1-shot prompt exactly, otherwise
the prompt is zero-shot (the examples are not shipped here). Budgets: 200 tokens for the QA and dialogue
tasks, 128 for niah and counting_stars, 800 for the rest — narrativeqa included, because the script's
task list misspells it "narrtiveqa". The reference stops generating at the first newline (a stop token),
so scoring reads the prediction up to its first ``\\n``.

**Answer score** (``eval_correct.py``), in [0, 1]: token F1 of the first line with citations removed
(QA, dialogue; ``metrics`` adds its precision and recall); ROUGE-L F of the ``rouge`` package for
summaries (a leading "Summary…:" dropped); the share of the counts found for counting_stars; ROUGE-1
recall for niah. Max over the gold answers.

**Citation precision and recall** (``eval_citation.py``; :func:`citation_scores`), reported by
:meth:`LCiteEval.metrics` as ``citation_recall``, ``citation_precision``, ``citation_f1`` and
``citations``. The answer is split into sentences; for each, the cited ids ``[k]`` (1-based; the first
three kept, ``at_most_citations``) and the sentence without its citations (the claim). A sentence without
citations, or citing a passage past the last one, supports nothing; otherwise it is *supported* when its
cited passages together entail the claim. Recall = supported sentences / sentences. Precision counts,
over all kept citations: a supported sentence's lone citation is relevant; when a supported sentence
cites several, each one is relevant if it entails the claim alone, or if the others *without* it no
longer do. Precision = relevant citations / kept citations; F1 their harmonic mean. A passage is
premised as ``Passage: {text}`` (``Title: {title}\\nPassage: {text}`` for objects), several joined by
newlines; ``[0]`` cites the *last* passage (the reference's ``id - 1`` indexes from the end). An answer
with no sentence is left out of the citation averages (no ``citation_*`` keys). niah and counting_stars
use the reference's exact-match rules instead: the cited passage must be the one holding the needle /
the listed ``passage_id`` must be those with a penguin count.

**Entailment judge.** The reference decides "entails" with an NLI model (``tasksource/deberta-base-long-nli``,
label ``entailment``). Models cannot be downloaded here, so the judge is pluggable (``judge=``, or any
``(premise, claim) -> bool`` assigned to :attr:`LCiteEval.judge`):

* ``overlap`` (default, an **approximation**): the claim is supported when at least ``support`` (0.6) of
  its content words (normalized as SQuAD does, stop words left out) occur in the premise;
* ``exact``: the normalized claim occurs verbatim in the normalized premise (strict; paraphrases fail);
* ``nli``: a local NLI model through ``transformers.pipeline("text-classification")``, ``judge_model=``
  the model's folder — with the reference's model this reproduces ``eval_citation.py``.

Sentences are split with :func:`longctx.textsplit.sentence_spans` where the reference uses NLTK's punkt
(a download); the two agree on ordinary prose, not on every abbreviation.

Goldman et al. 2024 (arXiv:2407.00402): QA, dialogue and niah hinge on a few passages (low diffusion,
low scope); summaries need all of them (high, high); counting_stars gathers needles spread over the
context for a short list (high diffusion, low scope).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import attrs

from longctx.errors import InputError, LongctxError, ParameterError
from longctx.evaluate import Case
from longctx.metrics import normalize_answer
from longctx.params import at_least, in_range
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
    stem_dataset,
)
from longctx.plugins.local_data._overlap import RougeFailure, rouge_pkg
from longctx.textsplit import sentence_spans

PAPER = "Tang et al. 2024, arXiv:2410.02115"

QA_TASKS = ("narrativeqa", "natural_questions", "hotpotqa", "2wikimultihopqa", "dialsim", "locomo")
SUMMARY_TASKS = ("qmsum", "gov_report", "multi_news")
TASKS = (*QA_TASKS, *SUMMARY_TASKS, "counting_stars", "niah")
SUBSETS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "data": ("L-CiteEval-Data", "l-citeeval"),
        "length": ("L-CiteEval-Length", "l-citeeval-length"),
        "hardness": ("L-CiteEval-Hardness", "l-citeeval-hardness"),
    }
)

_CITE_RULES = (
    "When citing several {x}s, use separate brackets for each index number, like [a][b][c], instead of combining "
    "them in one set of brackets, like [a, b, c]. Here, a, b and c represent different index numbers."
)
_QA = (
    "Write an accurate, engaging, and concise answer to the given question using only the provided {x}s (some of "
    "which might be irrelevant). Use an unbiased and journalistic tone. Every sentence must include a citation at "
    "the end, referencing at least one {x} and at most three. " + _CITE_RULES + " If multiple {x}s support the "
    "sentence, only cite a minimum sufficient subset of the {x}s."
)
_SUMMARY = (
    "Write a concise and engaging summary of the provided passages. Use a neutral and informative tone. Every "
    "sentence in the summary must include a citation at the end, referencing at least one passage and at most "
    "three. When citing several passages in a single sentence, use separate brackets for each index number, like "
    "[a][b][c], instead of combining them in one set of brackets, like [a, b, c]. Here, a, b and c represent "
    "different index numbers. If multiple passages support a sentence, only cite the minimum sufficient subset of "
    "the passages necessary to substantiate the information."
)
_STARS = (
    "On this moonlit and misty night, the little penguin is looking up at the sky and concentrating on counting "
    "\u2605. Please help the little penguin collect the correct number of \u2605 and cite the corresponding passage "
    'ID where the counting is mentioned, for example: {"little_penguin": [x, x, x,...], "passage_id": [y, y, '
    "y,...]}. The summation is not required. The numbers in [x, x, x,...] represent the correctly counted number "
    "of \u2605 by the little penguin and the number in [y, y, y,...] represent the passage IDs where these counts "
    "are recorded. Only output the results in JSON format without any explanation."
)
_QA_PROMPT = "{D}\n\n{INST}\n\nQuestion: {Q}\nAnswer: {A}"


def _prompt(
    instruction: str, demo_prompt: str = _QA_PROMPT, doc_prompt: str = "Passage [{ID}]: {P}\n"
) -> dict[str, str]:
    return {"instruction": instruction, "demo_prompt": demo_prompt, "doc_prompt": doc_prompt, "demo_sep": "\n\n\n"}


#: The fields of ``prompt/<task>_default.json`` but its worked example.
PROMPTS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        **{
            t: _prompt(_QA.format(x="passage"))
            for t in ("narrativeqa", "natural_questions", "hotpotqa", "2wikimultihopqa", "niah")
        },
        "locomo": _prompt(_QA.format(x="conversation"), doc_prompt="Conversation [{ID}]: {P}\n"),
        "dialsim": _prompt(
            "You are <<<chatbox>>>, a long-term conversation agent capable of interacting with multiple users. "
            + _QA.format(x="conversation"),
            doc_prompt="Conversation [{ID}]: {P}\n",
        ),
        "gov_report": _prompt(_SUMMARY, "{D}\n\n{INST}\nSummary: {A}"),
        "multi_news": _prompt(_SUMMARY, "{D}\n\n{INST}\nSummary: {A}"),
        "qmsum": _prompt(_SUMMARY, "{D}\n\n{INST}\n\nQuery: {Q}\nSummary: {A}"),
        "counting_stars": _prompt(_STARS, "{D}\n\n{INST}\nAnswer: {A}"),
    }
)
#: ``max_gen_len`` of ``inference_1shot_vllm.py`` (narrativeqa falls to 800: the script misspells it).
MAX_NEW_TOKENS: Mapping[str, int] = MappingProxyType(
    {
        **dict.fromkeys(("natural_questions", "hotpotqa", "2wikimultihopqa", "locomo", "dialsim"), 200),
        **dict.fromkeys(("niah", "counting_stars"), 128),
        **dict.fromkeys(("narrativeqa", *SUMMARY_TASKS), 800),
    }
)
#: Frames on the stack when ``eval_correct.py`` enters the ``rouge`` package's recursive LCS walk:
#: <module>, rouge_score, get_scores, _get_avg_scores, <lambda>, rouge_l_summary_level, _union_lcs, _recon_lcs.
ROUGE_FRAMES = 1000 - 8


# -- the reference's text handling -----------------------------------------------------------------


def remove_citations(sentence: str) -> str:
    """``remove_citations``: ``[k`` (and a space before it), ``" |"`` and every ``]`` removed."""
    return re.sub(r"\[\d+", "", re.sub(r" \[\d+", "", sentence)).replace(" |", "").replace("]", "")


def cited_ids(sentence: str) -> list[int]:
    """The 0-based passage indices a sentence cites (``[3]`` → 2), in order, repeats kept."""
    return [int(r[1:]) - 1 for r in re.findall(r"\[\d+", sentence)]


def first_line(prediction: str) -> str:
    """The generation as the reference's ``\\n`` stop token leaves it: everything before the first newline."""
    return prediction.split("\n", 1)[0]


def doc_text(doc: Any) -> str:
    """A passage's text as ``make_doc_prompt`` places it (a title line repeated in the text dropped)."""
    if isinstance(doc, str):
        return doc
    text = str(doc.get("text", "")).strip("\n")
    title = doc.get("title")
    if title is not None and text[: len(title) + 1] == title + "\n":
        text = text[len(title) + 1 :]
    return text


def format_premise(doc: Any) -> str:
    """``_format_document``: how a cited passage is shown to the entailment judge."""
    if isinstance(doc, str):
        return f"Passage: {doc}"
    return f"Title: {doc.get('title')}\nPassage: {doc.get('text')}"


def split_sentences(text: str) -> list[str]:
    """The sentences of an answer (stand-in for NLTK's ``sent_tokenize``)."""
    return [text[s:e].strip() for s, e in sentence_spans(text) if text[s:e].strip()]


# -- entailment judges -----------------------------------------------------------------------------


class Judge(Protocol):
    """Decides whether ``premise`` (cited passages) entails ``claim`` (a sentence without citations)."""

    def __call__(self, premise: str, claim: str) -> bool: ...


_STOP_WORDS = frozenset(
    "i me my we our you your he him his she her it its they them their what which who whom this that these those "
    "am is are was were be been being have has had having do does did doing and but if or because as until while "
    "of at by for with about against between into through during before after above below to from up down in out "
    "on off over under again further then once here there when where why how all any both each few more most other "
    "some such no nor not only own same so than too very s t can will just don should now passage title".split()
)


def _content(text: str) -> list[str]:
    return [w for w in normalize_answer(text).split() if w not in _STOP_WORDS]


@attrs.frozen
class OverlapJudge:
    """Offline approximation of NLI: at least ``support`` of the claim's content words occur in the premise.

    Words are normalized as SQuAD does (lower case, no punctuation or articles); common English stop words
    and the labels "passage"/"title" are left out. A claim without content words is not supported.
    """

    support: float = 0.6

    def __call__(self, premise: str, claim: str) -> bool:
        words = _content(claim)
        if not words:
            return False
        vocab = set(normalize_answer(premise).split())
        return sum(1 for w in words if w in vocab) / len(words) >= self.support


@attrs.frozen
class ExactJudge:
    """Supported only when the normalized claim occurs verbatim in the normalized premise."""

    def __call__(self, premise: str, claim: str) -> bool:
        c = normalize_answer(claim)
        return bool(c) and c in normalize_answer(premise)


class NLIJudge:
    """A local NLI classifier (``transformers`` text-classification pipeline): supported when its label for
    ``(premise, claim)`` is ``entailment`` — ``eval_citation.py``'s ``_run_nli_autoais``."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        if not model:
            raise ParameterError("l-citeeval: judge=nli needs judge_model=<folder of a local NLI model>")
        self.model, self.device = model, device
        self._pipe: Any = None

    def __call__(self, premise: str, claim: str) -> bool:
        if self._pipe is None:
            from transformers import pipeline

            try:
                self._pipe = pipeline("text-classification", model=self.model, device=self.device)
            except (OSError, ValueError) as e:
                raise LongctxError(f"l-citeeval: cannot load the NLI model {self.model!r} ({e})") from None
        return self._pipe([{"text": premise, "text_pair": claim}])[0]["label"] == "entailment"


#: Judge name → factory from the task's config (``register_judge`` adds one).
JUDGES: dict[str, Callable[[Any], Judge]] = {
    "overlap": lambda cfg: OverlapJudge(cfg.support),
    "exact": lambda cfg: ExactJudge(),
    "nli": lambda cfg: NLIJudge(cfg.judge_model),
}


def register_judge(name: str, factory: Callable[[Any], Judge]) -> None:
    """Make ``judge=<name>`` build ``factory(config)`` (a callable ``(premise, claim) -> bool``)."""
    JUDGES[name] = factory


# -- citation scores (eval_citation.py) ------------------------------------------------------------


@attrs.frozen
class CitationScores:
    """One answer's citation recall, precision, F1 and the number of citations counted."""

    recall: float
    precision: float
    f1: float
    citations: int

    def as_metrics(self) -> dict[str, float]:
        return {
            "citation_recall": self.recall,
            "citation_precision": self.precision,
            "citation_f1": self.f1,
            "citations": float(self.citations),
        }


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * r * p / (r + p)


def citation_scores(
    answer: str, docs: Sequence[Any], judge: Judge, *, at_most_citations: int | None = 3
) -> CitationScores | None:
    """``compute_autoais`` for one answer (see the module docstring); ``None`` for an answer with no
    sentence (the reference skips it)."""
    sents = split_sentences(answer)
    if not sents:
        return None
    entail = entail_prec = total = 0

    def passage(ids: Sequence[int]) -> str:
        return "\n".join(format_premise(docs[i]) for i in ids)

    for sent in sents:
        claim = remove_citations(sent).strip()
        ref = cited_ids(sent)
        if not ref or any(i >= len(docs) for i in ref):
            joint = 0
        else:
            if at_most_citations is not None:
                ref = ref[:at_most_citations]
            total += len(ref)
            joint = int(judge(passage(ref), claim))
        entail += joint
        if joint and len(ref) > 1:
            for pid in ref:
                if judge(passage([pid]), claim):
                    entail_prec += 1
                else:
                    rest = copy.copy(ref)
                    rest.remove(pid)
                    if not judge(passage(rest), claim):
                        entail_prec += 1
        else:
            entail_prec += joint
    recall = entail / len(sents)
    precision = entail_prec / total if total > 0 else 0.0
    return CitationScores(recall, precision, _f1(precision, recall), total)


def niah_citation_scores(
    answer: str, needle: str, docs: Sequence[Any], *, at_most_citations: int | None = 3
) -> CitationScores:
    """``compute_niah_citation``: recall 1 (precision ``1/len(ref)``) when the first line cites the first
    passage containing the needle."""
    ref = cited_ids(answer.strip().split("\n", 1)[0])[:at_most_citations]
    gold = next((j for j, d in enumerate(docs) if needle in doc_text(d)), None)
    if gold is not None and gold in ref:
        p = 1 / len(ref)
        return CitationScores(1.0, p, (2 * 1 * p) / (1 + p), len(ref))
    return CitationScores(0.0, 0.0, 0.0, len(ref))


_STAR = re.compile(r"The little penguin counted (\d+) \u2605")


def penguin_counts(docs: Sequence[Any]) -> tuple[list[int], list[int]]:
    """``(passage ids, counts)`` of the passages with a "The little penguin counted N ★" needle (1-based)."""
    ids, counts = [], []
    for j, d in enumerate(docs):
        text = doc_text(d)
        if "The little penguin counted" in text:
            ids.append(j + 1)
            m = _STAR.search(text)
            counts.append(int(m.group(1)) if m else -1)
    return ids, counts


def _penguin_answer(answer: str) -> dict[str, Any] | None:
    s = answer.strip()
    try:
        value = json.loads(s[s.index("{") : s.index("}") + 1])
    except (ValueError, json.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def counting_stars_scores(answer: str, docs: Sequence[Any]) -> tuple[float, CitationScores]:
    """``(accuracy, citation scores)`` of counting_stars: the share of the gold counts among the first
    ``len(gold)`` numbers given, and the ``passage_id`` list against the needles' passages."""
    gold_ids, gold_counts = penguin_counts(docs)
    parsed = _penguin_answer(answer)
    if parsed is None or not gold_ids:
        return 0.0, CitationScores(0.0, 0.0, 0.0, 0)
    cite = CitationScores(0.0, 0.0, 0.0, 0)
    ids = parsed.get("passage_id")
    if isinstance(ids, list):
        try:
            unique = list(set(ids))
        except TypeError:
            unique = []
        correct = sum(1 for x in unique if x in gold_ids)
        p = correct / len(unique) if unique else 0.0
        r = correct / len(gold_ids)
        cite = CitationScores(r, p, _f1(p, r), len(unique))
    given = parsed.get("little_penguin")
    acc = 0.0
    if isinstance(given, list):
        acc = sum(1 for x in given[: len(gold_counts)] if x in gold_counts) / len(gold_counts)
    return acc, cite


# -- answer scores (eval_correct.py) ---------------------------------------------------------------


def qa_prf(prediction: str, gold: str) -> tuple[float, float, float]:
    """``qa_f1_score`` of ``eval_correct.py``: (F1, precision, recall) of normalized tokens."""
    from collections import Counter

    p, g = normalize_answer(prediction).split(), normalize_answer(gold).split()
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0, 0.0, 0.0
    prec, rec = same / len(p), same / len(g)
    return (2 * prec * rec) / (prec + rec), prec, rec


def summary_text(prediction: str) -> str | None:
    """The summary ``eval_correct.py`` scores: a leading "…summary…:" dropped (``None`` — scored 0 —
    when "summary" opens the answer without a colon), first line, citations removed."""
    s = prediction.strip()
    if "summary" in s[:100].lower():
        if ":" not in s:
            return None
        s = s[s.index(":") + 1 :].strip()
    return remove_citations(s.split("\n", 1)[0])


def _rouge(prediction: str, gold: str) -> dict[str, tuple[float, float, float]] | None:
    try:
        return rouge_pkg(prediction, gold, max_frames=ROUGE_FRAMES)
    except RougeFailure:
        return None


# -- the task --------------------------------------------------------------------------------------


def _task_tags(task: str) -> Mapping[str, str]:
    if task in SUMMARY_TASKS:
        return MappingProxyType({"diffusion": "high", "scope": "high"})
    if task == "counting_stars":
        return MappingProxyType({"diffusion": "high", "scope": "low"})
    return MappingProxyType({"diffusion": "low", "scope": "low"})


@attrs.frozen
class LCiteEvalConfig:
    """Where the data is, which task and subset, the prompt, the entailment judge, the budget."""

    path: str = path_field()
    dataset: str = attrs.field(
        default="",
        metadata={"help": f"the task ({', '.join(TASKS)}): required for a folder; default for a file: its name"},
    )
    subset: str = attrs.field(
        default="data", metadata={"help": "data (L-CiteEval), length or hardness: the subset folder to read"}
    )
    prompt_file: str = attrs.field(
        default="",
        metadata={
            "help": "the official prompt/<task>_default.json: prepends its worked example (1-shot, as the paper)"
        },
    )
    judge: str = attrs.field(
        default="overlap",
        metadata={"help": "entailment judge for citations: overlap (offline approximation), exact, nli"},
    )
    judge_model: str = attrs.field(
        default="",
        metadata={"help": "judge=nli: folder of a local NLI model (the paper: tasksource/deberta-base-long-nli)"},
    )
    support: float = attrs.field(
        default=0.6,
        validator=in_range(0.0, 1.0),
        metadata={"help": "judge=overlap: share of a claim's content words the cited passages must contain"},
    )
    at_most_citations: int = attrs.field(
        default=3, validator=at_least(1), metadata={"help": "citations kept per sentence (eval_citation.py: 3)"}
    )
    limit: int = limit_field()
    max_new_tokens: int = max_new_field("200 QA, 128 niah/counting_stars, 800 summaries")

    @subset.validator
    def _check_subset(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in SUBSETS:
            raise ParameterError(f"subset must be one of {', '.join(SUBSETS)}, got {value!r}")

    @judge.validator
    def _check_judge(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in JUDGES:
            raise ParameterError(f"judge must be one of {', '.join(JUDGES)}, got {value!r}")


class LCiteEval:
    """L-CiteEval from local files (an :class:`longctx.hooks.evaluation.EvalTask`).

    :ivar judge: the entailment judge for citation precision/recall, ``(premise, claim) -> bool``;
        built from ``config.judge``, replaceable by any callable.
    """

    name = "l-citeeval"
    depth_sensitive = False

    def __init__(self, config: LCiteEvalConfig | None = None, ctx: Any = None) -> None:
        self.config = config or LCiteEvalConfig()
        if self.config.dataset and self.config.dataset not in TASKS:
            raise InputError(f"l-citeeval: unknown task {self.config.dataset!r}; known: {', '.join(TASKS)}")
        self.judge: Judge = JUDGES[self.config.judge](self.config)

    @property
    def tags(self) -> Mapping[str, str]:
        return _task_tags(self.config.dataset)

    def data_file(self) -> tuple[Path, str]:
        p = require_path(self.name, self.config.path)
        if not p.is_dir():
            task = self.config.dataset or stem_dataset(p)
            if task not in TASKS:
                raise InputError(f"{p}: cannot tell the L-CiteEval task from the file name; set dataset=")
            return p, task
        task = self.config.dataset
        if not task:
            raise InputError(f"l-citeeval: path {str(p)!r} is a folder; choose a task with dataset=")
        names = SUBSETS[self.config.subset]
        for folder in [p, *sorted(x for x in p.rglob("*") if x.is_dir())]:
            if folder.name in names and (folder / f"{task}.json").is_file():
                return folder / f"{task}.json", task
        if (p / f"{task}.json").is_file():
            return p / f"{task}.json", task
        raise InputError(f"l-citeeval: no {task}.json in a {' or '.join(names)} folder under {p}")

    def prompt_spec(self, task: str) -> tuple[Mapping[str, Any], Mapping[str, Any] | None]:
        """The task's prompt fields and, with ``prompt_file``, its worked example."""
        if not self.config.prompt_file:
            return PROMPTS[task], None
        recs = read_records(self.config.prompt_file)
        spec = recs[0].data
        for key in ("instruction", "demo_prompt", "doc_prompt", "demo_sep"):
            field(recs[0], key, str)
        demos = field(recs[0], "demos", list)
        return spec, (demos[0] if demos else None)

    @staticmethod
    def render_sample(
        spec: Mapping[str, Any], sample: Mapping[str, Any], *, test: bool, role: str | None = None
    ) -> str:
        """``make_demo``: the passages, instruction and question in the task's template (``test``: no
        answer, trailing space stripped)."""
        instruction = spec["instruction"]
        if role is not None:
            instruction = instruction.replace("<<<chatbox>>>", role)
        prompt = spec["demo_prompt"]
        if "{Q}" in prompt:
            prompt = prompt.replace("{INST}", instruction).replace("{Q}", str(sample.get("question")))
        else:
            prompt = prompt.replace("{INST}", instruction)
        if "{D}" in prompt:
            docs = "".join(
                spec["doc_prompt"].replace("{P}", doc_text(d)).replace("{ID}", str(i + 1))
                for i, d in enumerate(sample["docs"][:1500])
            )
            prompt = prompt.replace("{D}", docs)
        if test:
            return prompt.replace("{A}", "").rstrip()
        ans = sample["answer"]
        answer = "\n" + "\n".join(ans) if isinstance(ans, list) else ans
        return prompt.replace("{A}", "").rstrip() + answer

    def items(self) -> list[Item]:
        path, task = self.data_file()
        spec, demo = self.prompt_spec(task)
        head = ""
        if demo is not None:
            demo_role = spec.get("demo_role") if task == "dialsim" else None
            head = self.render_sample(spec, demo, test=False, role=demo_role) + spec["demo_sep"]
        out = []
        for rec in read_records(path):
            out.append(self._item(rec, task, spec, head))
        return out

    def _item(self, rec: Record, task: str, spec: Mapping[str, Any], head: str) -> Item:
        docs = field(rec, "docs", list)
        if not docs or not all(isinstance(d, (str, dict)) for d in docs):
            raise InputError(f"{rec.where}: field 'docs' must be a non-empty list of passages (strings or objects)")
        answer = field(rec, "answer", (str, int, list))
        question = rec.data.get("question")
        if "{Q}" in spec["demo_prompt"] and not isinstance(question, str):
            raise InputError(f"{rec.where}: missing field 'question'")
        role = None
        if task == "dialsim":
            role = field(rec, "role", str)
        body = head + self.render_sample(spec, {"question": question, "docs": docs}, test=True, role=role)
        if task == "counting_stars":
            ids, counts = penguin_counts(docs)
            if isinstance(answer, list) and len(answer) != len(counts):
                raise InputError(
                    f"{rec.where}: 'answer' lists {len(answer)} counts but the docs hold {len(counts)} penguin needles"
                )
            golds: tuple[str, ...] = (json.dumps({"little_penguin": counts, "passage_id": ids}),)
        else:
            raw = answer if isinstance(answer, list) else [answer]
            golds = tuple(str(a) for a in raw)
            if not golds:
                raise InputError(f"{rec.where}: field 'answer' is empty")
        meta = {
            "task": task,
            "id": rec.data.get("id"),
            "length": rec.data.get("length"),
            "hardness": rec.data.get("hardness"),
            "docs": docs,
            "file": str(rec.path),
            "line": rec.line,
        }
        marker = spec["demo_prompt"].split("{D}", 1)[1].split("{A}", 1)[0]
        tail = marker.replace(
            "{INST}", spec["instruction"] if role is None else spec["instruction"].replace("<<<chatbox>>>", role)
        )
        tail = tail.replace("{Q}", str(question)).rstrip()
        return Item(
            body=body,
            answer=golds[0],
            references=golds,
            meta=meta,
            max_new_tokens=self.config.max_new_tokens or MAX_NEW_TOKENS[task],
            query=tail.strip() or None,
        )

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """The selected samples, each fitted to ``length``."""
        items = select(self.items(), self.config.limit, seed)
        yield from build_cases(self.name, items, tokenizer, length=length, depth=depth, seed=seed)

    def _answer_scores(self, prediction: str, case: Case) -> dict[str, float]:
        task = case.meta["task"]
        pred = first_line(prediction)
        if task in QA_TASKS:
            cleaned = remove_citations(pred.strip().split("\n", 1)[0])
            scores = [qa_prf(cleaned, g) for g in case.golds]
            return {
                "score": max(s[0] for s in scores),
                "precision": max(s[1] for s in scores),
                "recall": max(s[2] for s in scores),
            }
        if task in SUMMARY_TASKS:
            text = summary_text(pred)
            if not text:
                return {"score": 0.0}
            best = 0.0
            for g in case.golds:
                r = _rouge(text, g)
                best = max(best, r["rouge-l"][2] if r else 0.0)
            return {"score": best}
        if task == "counting_stars":
            acc, _ = counting_stars_scores(pred, case.meta["docs"])
            return {"score": acc}
        cleaned = remove_citations(pred.strip().split("\n", 1)[0])
        best = 0.0
        for g in case.golds:
            r = _rouge(cleaned, g)
            best = max(best, r["rouge-1"][1] if r else 0.0)
        return {"score": best}

    def score(self, prediction: str, case: Case) -> float:
        """The answer's quality as ``eval_correct.py`` scores the task, in [0, 1]."""
        return self._answer_scores(prediction, case)["score"]

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """Citation recall/precision/F1 and count (see :func:`citation_scores`), plus the answer's token
        precision and recall for QA tasks."""
        task, docs = case.meta["task"], case.meta["docs"]
        pred = first_line(prediction)
        out = {k: v for k, v in self._answer_scores(prediction, case).items() if k != "score"}
        if task == "niah":
            cite: CitationScores | None = niah_citation_scores(
                pred, case.golds[0], docs, at_most_citations=self.config.at_most_citations
            )
        elif task == "counting_stars":
            cite = counting_stars_scores(pred, docs)[1]
        else:
            cite = citation_scores(pred, docs, self.judge, at_most_citations=self.config.at_most_citations)
        if cite is not None:
            out.update(cite.as_metrics())
        return out


__all__ = [
    "JUDGES",
    "CitationScores",
    "ExactJudge",
    "LCiteEval",
    "LCiteEvalConfig",
    "NLIJudge",
    "OverlapJudge",
    "citation_scores",
    "counting_stars_scores",
    "niah_citation_scores",
    "register_judge",
    "remove_citations",
]
