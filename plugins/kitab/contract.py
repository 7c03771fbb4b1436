"""The conformance contract of ``kitab`` (``LONGCTX_CONTRACTS``, imported only by the kit).

The queried author's fifteen catalogue lines and the question alone take ~1.7k bytes, and a catalogue line
is an indivisible unit of ~60 bytes: the byte tokenizer's cases are built at 4k and 8k tokens. The gold
answer is the formatted list; its references, the gold titles, are each in the catalogue.
"""

from __future__ import annotations

from typing import Any

from longctx.contrib.conformance.contracts import EvaluationContract


class KitabContract(EvaluationContract):
    technique = "kitab"
    lengths = (4096, 8192)

    @classmethod
    def wrong_answers(cls, case: Any) -> list[str]:
        """The defaults plus the gold list missing its last book (incomplete: not all correct)."""
        lines = case.answer.split("\n")
        out = [*super().wrong_answers(case)]
        out.append("\n".join([*lines, "9. Reason: it fits. Title: A Book Nobody Wrote"]))
        if len(lines) > 1:
            out.append("\n".join(lines[:-1]))
        return out


CONTRACTS: tuple[type[EvaluationContract], ...] = (KitabContract,)
