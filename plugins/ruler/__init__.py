"""``ruler-*``: RULER's synthetic tasks — retrieval, multi-hop tracing, aggregation and QA at any length.

Hsieh et al. 2024, "RULER: What's the Real Context Size of Your Long-Context Language Models?",
arXiv:2404.06654 (NVIDIA/RULER, ``scripts/synthetic.yaml``, ``scripts/data/synthetic/*.py``,
``scripts/data/synthetic/constants.py``, ``scripts/eval/synthetic/constants.py``).

RULER measures what a model can *do* with its context, not only whether it finds one fact: it generates
every task at any length from a seed, with a template and an answer prefix the model continues, and
scores by substring match. The thirteen tasks of the reference are registered here under RULER's names:

* **Retrieval (NIAH)** — :mod:`.niah`: ``ruler-niah-single-1/2/3``, ``ruler-niah-multikey-1/2/3``,
  ``ruler-niah-multivalue``, ``ruler-niah-multiquery``, one generator with ``synthetic.yaml``'s eight
  configurations (haystack noise / essay / distractor needles; keys and values as words, 7-digit numbers
  or uuids; how many keys, values per key and asked keys).
* **Multi-hop tracing** — :mod:`.vt`: ``ruler-vt``, chains of ``VAR X = VAR Y`` assignments.
* **Aggregation** — :mod:`.cwe`: ``ruler-cwe``, the most common words of a numbered list; :mod:`.fwe`:
  ``ruler-fwe``, the most frequent words of a Zipf-distributed coded text.
* **Question answering** — :mod:`.qa`: ``ruler-qa``, a *synthetic stand-in* for RULER's qa_1 (SQuAD) and
  qa_2 (HotpotQA), which need datasets that are not available offline: generated fact documents with a
  golden document and distractors. Its scores are not comparable with RULER's.

Scoring (``scripts/eval/synthetic/constants.py``): the prediction is stripped and its control characters
become newlines, then ``string_match_all`` — the fraction of the references contained in it,
case-insensitively — for niah, vt, cwe and fwe, and ``string_match_part`` (any reference) for qa
(:func:`longctx.metrics.ruler_match_all` / :func:`~longctx.metrics.ruler_match_part`); RULER's task score
is the mean over samples × 100, our per-case scores are in [0, 1].

Common departures from the reference (details in each module): lengths count the whole prompt with BOS
plus the generation budget in the evaluated model's tokenizer, fitted by bisection over words (RULER:
over coarser units, without BOS); the essay haystack is the bundled public-domain *Pride and Prejudice*,
never Paul Graham's essays; sentences are split by a regex splitter instead of nltk's punkt (which
downloads); ``depth`` places the first answer needle of the NIAH tasks (RULER draws every depth).
"""

from __future__ import annotations

from typing import Any

from longctx.hooks import hookimpl
from longctx.plugins.ruler.common import PAPER
from longctx.plugins.ruler.cwe import CommonWords, CommonWordsConfig
from longctx.plugins.ruler.fwe import FrequentWords, FrequentWordsConfig
from longctx.plugins.ruler.niah import TASKS as NIAH_TASKS
from longctx.plugins.ruler.qa import FactQA, FactQAConfig
from longctx.plugins.ruler.vt import VariableTracking, VariableTrackingConfig

__all__ = ["SUMMARIES", "TASKS"]

SUMMARIES = {
    "ruler-niah-single-1": "RULER NIAH single 1: a 7-digit number for a word key in repeated noise",
    "ruler-niah-single-2": "RULER NIAH single 2: a 7-digit number for a word key in prose",
    "ruler-niah-single-3": "RULER NIAH single 3: a uuid for a word key in prose",
    "ruler-niah-multikey-1": "RULER NIAH multikey 1: one of four word keys asked, in prose",
    "ruler-niah-multikey-2": "RULER NIAH multikey 2: a word key among distractor needles",
    "ruler-niah-multikey-3": "RULER NIAH multikey 3: a uuid key among uuid distractor needles",
    "ruler-niah-multivalue": "RULER NIAH multivalue: all four numbers of one key, in prose",
    "ruler-niah-multiquery": "RULER NIAH multiquery: the numbers of four keys, in prose",
    "ruler-vt": "RULER variable tracking: every variable a chain of assignments gives one value",
    "ruler-cwe": "RULER common words extraction: the most repeated words of a numbered list",
    "ruler-fwe": "RULER frequent words extraction: the three most frequent words of a Zipfian coded text",
    "ruler-qa": "Synthetic stand-in for RULER QA (not SQuAD/HotpotQA): one fact from generated documents",
}

#: name → (config class, task class) of every registered task.
TASKS: dict[str, tuple[type, type]] = {
    **NIAH_TASKS,
    "ruler-vt": (VariableTrackingConfig, VariableTracking),
    "ruler-cwe": (CommonWordsConfig, CommonWords),
    "ruler-fwe": (FrequentWordsConfig, FrequentWords),
    "ruler-qa": (FactQAConfig, FactQA),
}


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance contracts of these tasks (lengths their prompts need in the
    kit's byte tokenizer), resolved lazily so that using the tasks never imports the kit."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.plugins.ruler.contracts import CONTRACTS

        return CONTRACTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    for name, (config, build) in TASKS.items():
        paper = PAPER + (" (synthetic stand-in for its SQuAD/HotpotQA QA)" if name == "ruler-qa" else "")
        register(name, config=config, build=build, summary=SUMMARIES[name], paper=paper)
