"""The conformance contract of ``liconbench`` (``LONGCTX_CONTRACTS``, imported only by the kit).

A demonstration is an indivisible unit of ~130 bytes, so the byte tokenizer's cases are built at 8k and
16k tokens, where one unit is well inside the 2 % tolerance (at 512 it would be a quarter of the prompt).
"""

from __future__ import annotations

from longctx.contrib.conformance.contracts import EvaluationContract


class LiconbenchContract(EvaluationContract):
    technique = "liconbench"
    lengths = (8192, 16384)


CONTRACTS: tuple[type[EvaluationContract], ...] = (LiconbenchContract,)
