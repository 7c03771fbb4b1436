"""Evaluation family: generate test cases and score predictions.

A task generates :class:`longctx.evaluate.Case` objects deterministically from a seed, with their length
fitted in the evaluated model's own tokens, and scores a prediction against a case in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from longctx.hooks import hookspec

if TYPE_CHECKING:
    from longctx.evaluate import Case
    from longctx.hooks import Register


@runtime_checkable
class EvalTask(Protocol):
    """A built evaluation task."""

    #: Goldman et al. taxonomy: ``{"diffusion": "low"|"high", "scope": "low"|"high"}``.
    tags: Mapping[str, str]

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """Yield the cases for one (length, depth) cell; ``length`` counts the complete prompt plus the
        generation budget in ``tokenizer``'s tokens."""
        ...

    def score(self, prediction: str, case: Case) -> float:
        """Score ``prediction`` for ``case``: 1.0 for the gold answer, 0.0 for a wrong one."""
        ...


@hookspec
def lc_register_evaluators(register: Register) -> None:
    """Register evaluation tasks (passkey, NIAH, RULER, …).

    :param register: ``register(name, config=…, build=…, summary=…, paper=…)``; ``build(config, ctx)``
        returns an :class:`EvalTask`; ``ctx`` may be ``None``.
    """
