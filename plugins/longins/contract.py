"""The conformance contract of ``longins`` (``LONGCTX_CONTRACTS``, imported only by the kit).

The gold answer is the bracketed list of wrong question numbers, computed by checking every item rather
than copied from the context, and an item (its own instruction included) is an indivisible unit of up to
~400 bytes: cases are built at 8k and 16k byte tokens and may stay up to 5 % (one item) below the target.
"""

from __future__ import annotations

from typing import Any

from longctx.contrib.conformance.contracts import EvaluationContract


class LonginsContract(EvaluationContract):
    technique = "longins"
    lengths = (8192, 16384)
    # the fit stops one item short of the target at most; an item with the median instruction is ~400 bytes
    length_tolerance = 0.05
    gold_in_context = False

    @classmethod
    def wrong_answers(cls, case: Any) -> list[str]:
        """The defaults plus the numbers of the correctly answered questions (F1 0)."""
        right = [i for i in range(case.meta["n_items"]) if i not in set(case.meta["error"])]
        return [*super().wrong_answers(case), "[" + ", ".join(map(str, right)) + "]"]


CONTRACTS: tuple[type[EvaluationContract], ...] = (LonginsContract,)
