"""``local-data``: long-context benchmarks read from the files users download, scored as their authors do.

Eight tasks, one module each, turn the official data files into :class:`~longctx.evaluate.Case` objects
and score predictions with the benchmark's own rules (:mod:`longctx.metrics` where it has them):

================  ===============================================  ======================================
task              benchmark                                        module
================  ===============================================  ======================================
``longbench``     LongBench (Bai et al. 2023, arXiv:2308.14508)    :mod:`.longbench`
``longbench-e``   LongBench-E, scored per length bucket            :mod:`.longbench`
``l-eval``        L-Eval (An et al. 2023, arXiv:2307.11088)        :mod:`.leval`
``loogle``        LooGLE (Li et al. 2023, arXiv:2311.04939)        :mod:`.loogle`
``lv-eval``       LV-Eval (Yuan et al. 2024, arXiv:2402.05136)     :mod:`.lveval`
``cnnsum``        CNNSum (Wei et al. 2024, arXiv:2412.02819)       :mod:`.cnnsum`
``detectiveqa``   DetectiveQA (Xu et al. 2024, arXiv:2409.02465)   :mod:`.detectiveqa`
``l-citeeval``    L-CiteEval (Tang et al. 2024, arXiv:2410.02115)  :mod:`.lciteeval`
================  ===============================================  ======================================

**How the evaluation grid maps onto fixed data.** Every task needs ``path=`` (a data file, or the
benchmark's folder with ``dataset=``/``subset=`` choosing the file).

* ``length`` is the model's window: the complete prompt (special tokens, chat template) plus the
  benchmark's generation budget. A longer prompt is cut in the middle exactly as LongBench's
  ``pred.py`` cuts it — tokenize, keep the first and the last half of the budget — and a shorter one is
  used as it is (``meta["truncated"]``, ``meta["prompt_tokens_untruncated"]`` record which happened).
* ``depth`` means nothing for real data (``depth_sensitive = False``: one cell per length).
* ``seed`` chooses questions: with ``limit=0`` (the default) one call yields every question of the file
  in order and the seed is unused; with ``limit=N`` seed ``s`` yields questions ``s·N … s·N+N-1``
  (wrapping around), so ``lc eval --samples K`` with ``K·N`` ≥ the file's size covers it once.
* Several questions about one document (L-Eval, LooGLE, DetectiveQA) share it as the case ``context``:
  the runner prefills it once.

The plugin ships tiny fixture files in each official format (``fixtures/``); its conformance contracts
(``LONGCTX_CONTRACTS``) point the tasks at them. Goldman et al. 2024 (arXiv:2407.00402) tags follow the
chosen dataset where a benchmark mixes kinds of task (see each module).
"""

from __future__ import annotations

from typing import Any

from longctx.hooks import hookimpl
from longctx.plugins.local_data import cnnsum, detectiveqa, lciteeval, leval, longbench, loogle, lveval
from longctx.plugins.local_data._common import FIXTURES, data_cache_key

__all__ = ["FIXTURES", "TASKS", "lc_register_evaluators"]

#: task name → (config class, task class, summary, paper)
TASKS: dict[str, tuple[type, type, str, str]] = {
    "longbench": (
        longbench.LongBenchConfig,
        longbench.LongBench,
        "LongBench from its local .jsonl files: official prompts, middle truncation, eval.py metrics",
        longbench.PAPER,
    ),
    "longbench-e": (
        longbench.LongBenchEConfig,
        longbench.LongBenchE,
        "LongBench-E from local files, with the 0-4k / 4-8k / 8k+ bucket scores as sub-metrics",
        longbench.PAPER,
    ),
    "l-eval": (
        leval.LEvalConfig,
        leval.LEval,
        "L-Eval from local files: exam exact match, F1 or ROUGE per task",
        leval.PAPER,
    ),
    "loogle": (
        loogle.LooGLEConfig,
        loogle.LooGLE,
        "LooGLE from local files: short/long-dependency QA, cloze and summarization",
        loogle.PAPER,
    ),
    "lv-eval": (
        lveval.LVEvalConfig,
        lveval.LVEval,
        "LV-Eval from local files (16k-256k levels): keyword-gated F1 against confusing facts",
        lveval.PAPER,
    ),
    "cnnsum": (
        cnnsum.CNNSumConfig,
        cnnsum.CNNSum,
        "CNNSum from local files: Chinese novel summarization, jieba ROUGE-L",
        cnnsum.PAPER,
    ),
    "detectiveqa": (
        detectiveqa.DetectiveQAConfig,
        detectiveqa.DetectiveQA,
        "DetectiveQA from local files: multiple-choice questions on detective novels, accuracy",
        detectiveqa.PAPER,
    ),
    "l-citeeval": (
        lciteeval.LCiteEvalConfig,
        lciteeval.LCiteEval,
        "L-CiteEval from local files: answer quality plus citation precision/recall (pluggable entailment judge)",
        lciteeval.PAPER,
    ),
}


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance contracts of these tasks, pointed at the shipped fixtures
    (imported only when the kit asks)."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.plugins.local_data.contract import CONTRACTS

        return CONTRACTS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# every loader's cases depend on its data file: let the case cache see the file's size and mtime
for _config, _cls, _summary, _paper in TASKS.values():
    _cls.cache_key = data_cache_key


@hookimpl
def lc_register_evaluators(register):
    for name, (config, build, summary, paper) in TASKS.items():
        register(name, config=config, build=build, summary=summary, paper=paper)
