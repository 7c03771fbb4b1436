"""The conformance contracts of the local-data tasks (``LONGCTX_CONTRACTS``, imported only by the kit).

The tasks cannot build without data, so each contract points ``path=`` at a fixture shipped in
``fixtures/`` (the official format, a few invented samples). Two declarations differ from the family's
defaults, both because the data is real rather than generated:

* ``length_tolerance = 1.0`` — a prompt shorter than the window is not padded (only longer ones are cut,
  and those land on the budget: at 1024 byte-tokens every fixture prompt is cut, at 2048 most are not);
* ``gold_in_context = False`` — answers are written by annotators (and middle truncation may drop the
  evidence), not copied from the context.

CNNSum's score is the ``rouge`` package's ROUGE-L F, ``2PR / (P + R + 1e-8)``: the gold summary scores
0.999999995, not 1, so ``evaluation.scorer_gold_and_wrong`` is declared as an expected failure.
"""

from __future__ import annotations

from typing import Any

from longctx.contrib.conformance.contracts import EvaluationContract
from longctx.plugins.local_data._common import FIXTURES


def _contract(technique: str, params: dict[str, Any], **extra: Any) -> type[EvaluationContract]:
    slug = "".join(p.capitalize() for p in technique.replace("-", "_").split("_"))
    attrs = {
        "technique": technique,
        "params": params,
        "lengths": (1024, 2048),
        "length_tolerance": 1.0,
        "gold_in_context": False,
        "__module__": __name__,
        **extra,
    }
    return type(f"{slug}Contract", (EvaluationContract,), attrs)


CONTRACTS: tuple[type[EvaluationContract], ...] = (
    _contract("longbench", {"path": str(FIXTURES / "longbench"), "dataset": "hotpotqa"}),
    _contract("longbench-e", {"path": str(FIXTURES / "longbench"), "dataset": "hotpotqa"}),
    _contract("l-eval", {"path": str(FIXTURES / "leval"), "dataset": "tpo", "max_new_tokens": 64}),
    _contract("loogle", {"path": str(FIXTURES / "loogle" / "shortdep_qa.jsonl")}),
    _contract("lv-eval", {"path": str(FIXTURES / "lveval"), "dataset": "hotpotwikiqa_mixup", "level": "16k"}),
    _contract(
        "cnnsum",
        {"path": str(FIXTURES / "cnnsum"), "subset": "L"},
        expected_failures={
            "evaluation.scorer_gold_and_wrong": "CNNSum's ROUGE-L F is 2PR/(P+R+1e-8): the gold summary scores "
            "0.999999995, as in the reference"
        },
    ),
    _contract("detectiveqa", {"path": str(FIXTURES / "detectiveqa"), "limit": 1}),
    _contract("l-citeeval", {"path": str(FIXTURES / "lciteeval"), "dataset": "hotpotqa"}),
)
