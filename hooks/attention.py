"""Attention family: which keys a query sees and how attention is computed.

A component installs itself through ``ctx.install_attention(fn, mask=…)``, which registers the function
and its mask under one neutral name with transformers' ``AttentionInterface`` and
``AttentionMaskInterface`` and selects it with ``set_attn_implementation`` — no model class is patched.
The function has transformers' signature ``fn(module, query, key, value, attention_mask, scaling=None,
dropout=0.0, **kwargs) -> (out[b, q, heads, d], weights | None)``; ``query``/``key`` are already rotated
and, for GQA, ``key``/``value`` are *not* repeated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from longctx.hooks import hookspec

if TYPE_CHECKING:
    from longctx.hooks import Register
    from longctx.runtime import ComposeContext


@runtime_checkable
class AttentionPattern(Protocol):
    """A built attention component."""

    def apply(self, ctx: ComposeContext) -> dict[str, Any]:
        """Install the attention (or leave the model's own, for the default) and describe it."""
        ...


@hookspec
def lc_register_attention(register: Register) -> None:
    """Register attention techniques (sdpa, StreamingLLM, LM-Infinite, …).

    :param register: ``register(name, config=…, build=…, summary=…, paper=…, requires=…)``;
        ``build(config, ctx)`` returns an :class:`AttentionPattern`. An attention that needs a cache
        layout of its own declares it, e.g. ``requires=("kv=sink-window",)``.
    """
