"""``knorm``: keep the keys with the lowest L2 norm — a KV store for longctx (third-party example plugin).

Devoto, Zhao, Scardapane & Minervini 2024, "A Simple and Effective L2 Norm-Based Strategy for KV Cache
Compression", EMNLP 2024, arXiv:2406.11430. Also NVIDIA kvpress's ``KnormPress``.

Observation. In most layers of a decoder-only transformer the attention a cached pair
``(k_i, v_i)`` receives during decoding is strongly and *negatively* correlated with the L2 norm of its
key: a key with a low norm usually draws a high attention score. How much a token matters is thus
largely visible in its key alone, before any query arrives — no attention weights are needed, so the
method works with SDPA/flash kernels that never materialise them.

Method. For layer ``l``, KV head ``h`` and the ``n`` tokens ``i = 1…n`` cached so far, score every
token by the negative norm of its (post-RoPE) key::

    s_i^{l,h} = −‖k_i^{l,h}‖₂ = −( Σ_{j=1..d} (k_{i,j}^{l,h})² )^{1/2}

and keep the ``m`` best scores, i.e. the ``m`` lowest-norm keys, with their values::

    S^{l,h} = argmin_{S ⊆ {1…n}, |S| = m}  Σ_{i ∈ S} ‖k_i^{l,h}‖₂      (the m smallest norms)

The authors' code (``l2_compress``) keeps ``m = ⌈keep_ratio · n⌉`` per sequence and head;
kvpress keeps ``m = ⌊n · (1 − compression_ratio)⌋`` once, after the prefill. Both select per KV head.

This implementation.

* **Budget semantics.** ``budget`` is ``m`` as an absolute number of tokens per layer, per KV head and
  per batch row, enforced *after every update*: the prefill is compressed as soon as it is cached, and
  during decoding each new token that takes a layer over its budget evicts the highest-norm key among
  the held ones and itself. So the cache is bounded for the whole generation (a ratio cannot bound it).
  kvpress' ``compression_ratio = r`` on a ``T``-token prompt corresponds to ``budget = ⌊T(1 − r)⌋``.
  Optionally the ``window`` most recent tokens are always kept (not scored) and count towards the budget;
  the default ``window = 0`` is the paper's method exactly.
* **When.** ``update`` appends the new states and returns *everything* the current forward attends
  over — a whole prompt in one pass attends over all of itself, as with kvpress, which compresses after
  the prefill forward — and only then evicts. Between passes a layer holds ``min(seen, budget)`` tokens.
* **Per head.** Selection is per (batch row, KV head), as in the paper: different heads keep different
  tokens. Every head keeps the same *number* of tokens, so the tensors stay rectangular, and every kept
  token is older than every new one, so transformers' ``(b, 1, q, kv)`` causal mask over physical slots
  — which cannot depend on the head — is right for all heads at once (see ``get_mask_sizes``).
* **Order and positions.** Kept tokens stay in their original order. Keys are cached after RoPE at
  their absolute positions and are never re-rotated; ``get_seq_length()`` is the *logical* length (tokens
  seen), so the model's next ``position_ids`` stay absolute, while ``held``/``get_mask_sizes`` describe the
  *physical* slots.
* **Layers.** Every full-attention layer evicts with the same budget: transformers builds one mask per
  layer *type* from the first full-attention layer's ``get_mask_sizes``, so all full layers must hold the
  same number of tokens (this is why the authors' ``skip_layers`` and per-layer budgets are not offered).
  Sliding-window layers of hybrid models (Gemma 3) keep transformers' ``DynamicSlidingWindowLayer``: they
  are already bounded, and their sliding mask needs contiguous positions.

Limitations. Padded batches: the cache never sees the attention mask, so a left-padded row may keep pad
keys and, after an eviction, transformers' padding mask (indexed by ``slot + evicted``) no longer lines up
with the slots — use unpadded rows or batch size 1. ``crop`` (assisted decoding) works only until the
first eviction and then raises :class:`longctx.errors.LongctxError`. Models that normalise their keys
(QK-norm: Gemma 3, Qwen3, OLMo 2) squeeze key norms into a narrow band and weaken the signal the method
relies on: on Gemma 3 270M it loses a 4k-token passkey at every budget tried (measurements in README.md).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
import torch.nn as nn
from transformers.cache_utils import Cache

from longctx.errors import ParameterError
from longctx.hooks import hookimpl
from longctx.kvcache import EvictingLayer, build_cache
from longctx.params import non_negative, positive

__all__ = ["KnormConfig", "KnormLayer", "KnormStore", "knorm_keep_indices"]

#: Technique name in the ``kv`` family.
NAME = "knorm"
PAPER = (
    "Devoto, Zhao, Scardapane & Minervini 2024, A Simple and Effective L2 Norm-Based Strategy for KV Cache "
    "Compression, arXiv:2406.11430"
)


def _window_fits_budget(inst: Any, attribute: attrs.Attribute, value: int) -> None:
    """attrs validator: ``0 <= window <= budget`` (validators run once every field is set)."""
    non_negative(inst, attribute, value)
    if value > inst.budget:
        raise ParameterError(f"window must be <= budget ({inst.budget}), got {value}")


@attrs.frozen
class KnormConfig:
    """``budget`` tokens kept per layer and KV head; the ``window`` most recent of them always kept."""

    budget: int = attrs.field(
        default=1024,
        validator=positive,
        metadata={"help": "tokens kept per full-attention layer and KV head (lowest key norms), after every update"},
    )
    window: int = attrs.field(
        default=0,
        validator=_window_fits_budget,
        metadata={"help": "most recent tokens always kept, part of the budget (0: the paper's method)"},
    )


# -- the method ------------------------------------------------------------------------------------


def knorm_keep_indices(keys: torch.Tensor, budget: int, window: int = 0) -> torch.Tensor:
    """Indices of the tokens to keep, per batch row and KV head, in ascending (original) order.

    :param keys: ``(b, h, n, d)`` post-RoPE keys.
    :returns: ``(b, h, min(n, budget))`` long indices: the ``budget − window`` older tokens with the
        smallest ``‖k_i‖₂`` (ties broken towards the earlier token) followed by the last ``window`` ones.
    """
    b, h, n, _ = keys.shape
    if n <= budget:
        return torch.arange(n, device=keys.device).expand(b, h, n)
    recent = min(window, budget)
    older = n - recent
    # s_i = −‖k_i‖₂, in fp32 whatever the cache dtype; keeping the top-m scores = the m smallest norms
    norms = keys[..., :older, :].float().norm(p=2, dim=-1)
    keep = torch.argsort(norms, dim=-1, stable=True)[..., : budget - recent]
    keep = keep.sort(dim=-1).values
    if recent:
        tail = torch.arange(older, n, device=keys.device).expand(b, h, recent)
        keep = torch.cat([keep, tail], dim=-1)
    return keep


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return x.gather(2, idx.unsqueeze(-1).expand(*idx.shape, x.shape[-1]))


class KnormLayer(EvictingLayer):
    """One full-attention layer's cache: at most ``budget`` tokens per KV head between passes, chosen by
    lowest key norm (plus the ``window`` most recent).

    The bookkeeping (``update`` returns held + new states and only then evicts, logical vs physical
    length, mask sizes, ``nbytes``, crop until the first eviction) is longctx's :class:`EvictingLayer`;
    this class only says what to keep. Keys are stored as given (post-RoPE, absolute positions).
    """

    label = "knorm"

    def __init__(self, budget: int, window: int = 0, **kwargs: Any) -> None:
        super().__init__()
        if budget < 1 or not 0 <= window <= budget:
            raise ValueError(f"KnormLayer needs budget >= 1 and 0 <= window <= budget, got {budget}, {window}")
        self.budget = budget
        self.window = window

    def __repr__(self) -> str:
        return (
            f"KnormLayer(budget={self.budget}, window={self.window}, held={self.held}, seen={self.cumulative_length})"
        )

    @property
    def capacity(self) -> int:
        """The most tokens held between passes: ``budget``."""
        return self.budget

    get_max_cache_shape = EvictingLayer.get_max_length  # the name before transformers 5.x renamed it

    def evict(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep, per KV head, the ``budget`` lowest-norm keys (the ``window`` most recent always)."""
        keep = knorm_keep_indices(keys, self.budget, self.window)
        return _gather(keys, keep), _gather(values, keep)


class KnormStore:
    """Makes caches whose full-attention layers are :class:`KnormLayer`; sliding layers keep
    transformers' ``DynamicSlidingWindowLayer`` (:func:`longctx.kvcache.build_cache`)."""

    def __init__(self, config: KnormConfig, ctx: Any = None) -> None:
        self.config = config

    def new_layer(self) -> KnormLayer:
        return KnormLayer(self.config.budget, self.config.window)

    def new_cache(self, model: nn.Module) -> Cache:
        return build_cache(model, lambda _i: self.new_layer())

    def describe(self) -> dict[str, Any]:
        return {
            "technique": NAME,
            "budget": self.config.budget,
            "window": self.config.window,
            "selection": "per KV head, lowest key L2 norm",
            "layers": "full",
            "evicts": True,
            "max_tokens_per_layer": self.config.budget,
        }


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the contracts the conformance kit runs on this plugin's techniques
    (``lc check knorm``, ``pytest --lc-plugin knorm``). Resolved lazily, so that using the plugin never
    imports the kit."""
    if name == "LONGCTX_CONTRACTS":
        from longctx_knorm.contract import KnormContract

        return (KnormContract,)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_kv_stores(register):
    register(
        NAME,
        config=KnormConfig,
        build=KnormStore,
        summary="Keep the budget tokens whose keys have the lowest L2 norm, per layer and KV head (K-norm)",
        paper=PAPER,
        capabilities=("causal-lm",),
        # streaming-llm's attention expects the sink-window layout, not an arbitrary kept set
        conflicts=("attention=streaming-llm",),
    )
