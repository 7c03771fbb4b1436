"""``sink-window``: the KV cache of StreamingLLM — the attention sinks plus a rolling window.

Xiao, Tian, Chen, Han & Lewis 2023, "Efficient Streaming Language Models with Attention Sinks",
arXiv:2309.17453, §3.2 ("Rolling KV Cache with Attention Sinks").

Method. The cache of a layer is split in two parts: the *attention sinks*, the keys and values of the
first ``sinks`` tokens (the paper uses 4), which absorb the surplus attention of every query and must
never be evicted; and a *rolling cache* of the most recent tokens. When token ``i`` is processed the
cache holds::

    sinks:  0, 1, …, sinks−1
    window: i−window+1, …, i          (window tokens, the current one included)

so ``sinks + window`` keys at most (attention_sinks' default 4 + 1020; the paper's repository uses
4 + 2000). Between two forward passes the layer holds ``sinks + window − 1`` tokens: the slot of the
next token is left free, exactly as transformers' ``DynamicSlidingWindowLayer`` holds
``sliding_window − 1``.

Positions. transformers caches keys *after* RoPE, at their absolute positions. The paper assigns
positions *within the cache* instead; with absolute keys the relative distances inside the window are
already right and only the sinks' distances change, which the paired attention technique
(``attention=streaming-llm``) restores by re-rotating the query for its sink scores. This layer
therefore stores keys untouched and keeps the logical token count separately:

* ``get_seq_length()`` is the number of tokens seen (logical), so the model's default
  ``position_ids = arange(q) + get_seq_length()`` stay absolute, as with ``DynamicSlidingWindowLayer``;
* ``get_mask_sizes(q)`` describes the *physical* keys that ``update`` returns.

Why ``requires=("attention=streaming-llm",)``. The keys this layer returns are
``[sinks | a contiguous run ending at the current token]``; transformers' default attention with a
causal mask over physical slots would neither restrict queries of a long prefill to their window nor
move the sinks to their cache positions, so the layer is only correct together with the attention
that knows this layout. Choosing ``kv=sink-window`` alone fills in ``attention=streaming-llm`` with the
same ``sinks``/``window``/``layers`` (see ``_resolve_requirements``).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
import torch.nn as nn
from transformers.cache_utils import Cache

from longctx.capabilities import text_config
from longctx.hooks import hookimpl
from longctx.kvcache import EvictingLayer, build_cache
from longctx.params import non_negative, one_of, positive

#: Which layers stream (``layers=`` of both StreamingLLM components).
LAYER_CHOICES = ("full", "all")


@attrs.frozen
class SinkWindowConfig:
    """Parameters named as in the paper's code (``start_size`` = sinks, ``recent_size`` = window)."""

    sinks: int = attrs.field(
        default=4, validator=non_negative, metadata={"help": "attention-sink tokens kept from the start"}
    )
    window: int = attrs.field(
        default=1020,
        validator=positive,
        metadata={"help": "most recent tokens kept (the current one included)"},
    )
    layers: str = attrs.field(
        default="full",
        validator=one_of(*LAYER_CHOICES),
        metadata={"help": "full: full-attention layers (sliding layers keep their window); all: every layer"},
    )


def streamed_layers(model: nn.Module, layers: str) -> list[int]:
    """Indices of the decoder layers that get a sink+window cache (and StreamingLLM attention).

    Mirrors :func:`longctx.kvcache.build_cache`: a layer is *sliding* when ``config.layer_types`` says
    ``sliding_attention`` and the config has a ``sliding_window``; every other layer is full.
    """
    cfg = text_config(model.config)
    n = cfg.num_hidden_layers
    types = list(getattr(cfg, "layer_types", None) or ["full_attention"] * n)
    window = getattr(cfg, "sliding_window", None)
    return [i for i, t in enumerate(types[:n]) if layers == "all" or not (t == "sliding_attention" and window)]


class SinkWindowLayer(EvictingLayer):
    """One layer's cache: the first ``sinks`` tokens plus the most recent ones (§3.2).

    ``update`` returns the kept keys/values followed by the new ones — the full states the current
    forward needs, so that a long prompt in one pass still attends correctly — and only then evicts,
    so that it *holds* at most ``sinks + window − 1`` tokens between passes (``sinks + window`` with
    the next token). Keys are stored as given (post-RoPE, absolute positions).
    """

    label = "sink-window"

    def __init__(self, sinks: int, window: int, **kwargs: Any) -> None:
        super().__init__()
        if sinks < 0 or window < 1:
            raise ValueError(f"SinkWindowLayer needs sinks >= 0 and window >= 1, got {sinks}, {window}")
        self.sinks = sinks
        self.window = window

    def __repr__(self) -> str:
        return (
            f"SinkWindowLayer(sinks={self.sinks}, window={self.window}, "
            f"held={self.held}, seen={self.cumulative_length})"
        )

    @property
    def capacity(self) -> int:
        """Tokens held between passes: the sinks plus ``window − 1`` recent tokens."""
        return self.sinks + self.window - 1

    def get_max_length(self) -> int:
        """The most tokens a forward ever attends to: ``sinks + window``."""
        return self.sinks + self.window

    def evict(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep ``x[…, :sinks] ∪ x[…, −(window−1):]``."""
        return self._keep(keys), self._keep(values)

    def _keep(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[-2]
        recent = self.window - 1
        parts = [x[..., : self.sinks, :]]
        if recent:
            parts.append(x[..., n - recent :, :])
        return torch.cat(parts, dim=-2)


class SinkWindowStore:
    """Makes caches whose streamed layers are :class:`SinkWindowLayer` (sliding layers of hybrid
    models keep transformers' ``DynamicSlidingWindowLayer`` unless ``layers=all``)."""

    def __init__(self, config: SinkWindowConfig, ctx: Any = None) -> None:
        self.config = config

    @property
    def sinks(self) -> int:
        return self.config.sinks

    @property
    def window(self) -> int:
        return self.config.window

    @property
    def layers(self) -> str:
        return self.config.layers

    def new_layer(self) -> SinkWindowLayer:
        return SinkWindowLayer(self.config.sinks, self.config.window)

    def new_cache(self, model: nn.Module) -> Cache:
        sliding = (lambda _i, _w: self.new_layer()) if self.config.layers == "all" else None
        return build_cache(model, lambda _i: self.new_layer(), sliding)

    def describe(self) -> dict[str, Any]:
        return {
            "technique": "sink-window",
            "sinks": self.config.sinks,
            "window": self.config.window,
            "layers": self.config.layers,
            "evicts": True,
            "max_tokens_per_layer": self.config.sinks + self.config.window,
        }


@hookimpl
def lc_register_kv_stores(register):
    register(
        "sink-window",
        config=SinkWindowConfig,
        build=SinkWindowStore,
        summary="Keep the attention-sink tokens plus a rolling window of recent keys/values (StreamingLLM)",
        paper="Xiao et al. 2023, Efficient Streaming Language Models with Attention Sinks, arXiv:2309.17453",
        requires=("attention=streaming-llm",),
    )
