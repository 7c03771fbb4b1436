"""Context-reduction family: shrink the prompt before the model sees it.

A reducer works on text and answers with a :class:`longctx.text.Reduction`: the reduced text, the
character spans of the source it kept (provenance), and token counts in the pipeline's tokenizer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from longctx.hooks import hookspec

if TYPE_CHECKING:
    from longctx.hooks import Register
    from longctx.text import Reduction


@runtime_checkable
class ContextReducer(Protocol):
    """A built reducer."""

    def reduce(self, context: str, *, query: str | None, tokenizer: Any) -> Reduction:
        """Reduce ``context`` to the reducer's token budget (counted with ``tokenizer``), keeping what
        matters for ``query`` (which is never dropped by the pipeline). Deterministic."""
        ...


@hookspec
def lc_register_context_reducers(register: Register) -> None:
    """Register context reducers (truncation, BM25 retrieval, …).

    :param register: ``register(name, config=…, build=…, summary=…, paper=…)``; ``build(config, ctx)``
        returns a :class:`ContextReducer`. Reducers run in the order the spec lists them.
    """
