"""The conformance contracts of the BABILong tasks (``LONGCTX_CONTRACTS``, imported only by the kit).

BABILong's instruction and post-prompt alone take ~600 bytes and qa3's thirty facts ~900 more, so the byte
tokenizer's cases are built at 2k and 4k tokens instead of the default 512 and 1k.
"""

from __future__ import annotations

from longctx.contrib.conformance.contracts import EvaluationContract


def _contract(task: str) -> type[EvaluationContract]:
    return type(
        f"Babilong{task.upper()}Contract",
        (EvaluationContract,),
        {"technique": f"babilong-{task}", "lengths": (2048, 4096), "__module__": __name__},
    )


CONTRACTS: tuple[type[EvaluationContract], ...] = tuple(_contract(t) for t in ("qa1", "qa2", "qa3", "qa4", "qa5"))
