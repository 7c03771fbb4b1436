"""The conformance contract of ``niah``: its 300-token generation budget and prompt need ~750 tokens of
the kit's byte tokenizer, so it is checked at 1024 and 2048."""

from __future__ import annotations

from longctx.contrib.conformance.contracts import EvaluationContract

__all__ = ["NiahContract"]


class NiahContract(EvaluationContract):
    """``niah`` at lengths its prompt fits."""

    technique = "niah"
    lengths = (1024, 2048)
