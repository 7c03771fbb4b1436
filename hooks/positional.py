"""Positional-encoding family: how positions become rotations or embeddings.

Components change a loaded model's positional machinery (RoPE frequencies, rotary instances,
absolute position tables) through :class:`longctx.runtime.ComposeContext`, which records every change
so the pipeline can be undone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from longctx.hooks import hookspec

if TYPE_CHECKING:
    from longctx.hooks import Register
    from longctx.runtime import ComposeContext


@runtime_checkable
class PositionalEncoding(Protocol):
    """A built positional component."""

    def apply(self, ctx: ComposeContext) -> dict[str, Any]:
        """Change ``ctx.model`` (only through ``ctx``'s recording setters) and return a JSON-serialisable
        description of what changed. May set ``ctx.max_context`` to the new usable window."""
        ...


@hookspec
def lc_register_positional_encodings(register: Register) -> None:
    """Register positional-encoding techniques (PI, NTK, YaRN, …).

    :param register: call ``register(name, config=…, build=…, summary=…, paper=…)`` once per technique;
        ``build(config, ctx)`` returns a :class:`PositionalEncoding`.

    Declare ``capabilities=("rope",)`` for RoPE methods so a model without rotary embeddings is refused
    before anything is built.
    """
