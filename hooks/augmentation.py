"""Data-augmentation family: make long-context training data.

An augmenter streams: it consumes documents lazily (token-id sequences) and yields training records,
deterministically for a given seed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from longctx.hooks import hookspec

if TYPE_CHECKING:
    from longctx.hooks import Register
    from longctx.text import Record


@runtime_checkable
class Augmenter(Protocol):
    """A built augmenter."""

    def augment(self, documents: Iterable[Sequence[int]], *, seed: int = 0) -> Iterator[Record]:
        """Yield training records built from ``documents`` (token-id sequences), lazily."""
        ...


@hookspec
def lc_register_augmenters(register: Register) -> None:
    """Register data augmenters (Untie-the-Knots, dataset decomposition, …).

    :param register: ``register(name, config=…, build=…, summary=…, paper=…)``; ``build(config, ctx)``
        returns an :class:`Augmenter`.
    """
