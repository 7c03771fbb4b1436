"""What ``longbench-write`` and ``golden-thread`` promise to the longctx conformance kit, stated once.

The plugin module exposes them as ``LONGCTX_CONTRACTS`` (imported only when the kit asks).
"""

# Contract attributes are class-level declarations (ClassVar on the base classes).
# ruff: noqa: RUF012

from __future__ import annotations

from typing import Any

from longctx.contrib.conformance import EvaluationContract


class LongBenchWriteContract(EvaluationContract):
    technique = "longbench-write"
    # the gold answer is a synthetic text of the required number of words, written by no one in the prompt
    gold_in_context = False

    @classmethod
    def wrong_answers(cls, case: Any) -> list[str]:
        """Also a third and four times the required words, where S_l reaches 0."""
        from longctx.plugins.long_generation import filler_words

        x = int(case.meta["required_words"])
        return [*super().wrong_answers(case), filler_words(x // 3), filler_words(4 * x)]


class GoldenThreadContract(EvaluationContract):
    technique = "golden-thread"
    # the byte tokenizer spends ~5.6 tokens per word: short blocks leave room for several at these lengths
    params = {"block_words": 20}
    lengths = (2048, 4096)
    # the gold answer is a continuation that places the events, not a span of the prompt
    gold_in_context = False

    @classmethod
    def wrong_answers(cls, case: Any) -> list[str]:
        """Also every block without its events, and every event in a block that does not exist."""
        from longctx.plugins.long_generation import FINISHED, SEPARATOR

        unit, n = case.meta["unit"], int(case.meta["blocks"])
        empty = " A quiet one.\n" + "\n".join(f"{SEPARATOR} {unit} {b}: A quiet one." for b in range(2, n + 1))
        events = sorted({e for _b, e, _k in case.meta["checks"]})
        misplaced = " A quiet one.\n" + "\n".join(
            f"{SEPARATOR} {unit} {n + 1 + i}: This had {e}." for i, e in enumerate(events)
        )
        return [*super().wrong_answers(case), empty + f"\n{FINISHED}", misplaced]
