"""``streaming-llm``: attention sinks plus a sliding window, with positions assigned within the cache.

Xiao, Tian, Chen, Han & Lewis 2023, "Efficient Streaming Language Models with Attention Sinks",
arXiv:2309.17453 (§3.2, "Rolling KV Cache with Attention Sinks").

Method. Window attention collapses as soon as the first tokens leave the cache: models dump surplus
attention on the initial tokens (*attention sinks*). StreamingLLM keeps the KV of the first ``sinks``
tokens together with a rolling window of the ``window`` most recent ones, and — the detail that makes it
work beyond the pretraining length — assigns positions *within the cache* rather than in the text:
a query sees the cache ``[0, …, sinks−1 | i−window+1, …, i]`` at positions ``0, 1, …, sinks+window−1``.

Notation (per query at absolute position ``i``, ``S = sinks``, ``W = window``):

    e_i = max(0, i − (S + W − 1))                        tokens evicted when i is processed
    sinks:   j ∈ {0, …, S−1},  j ≤ i                      at cache position j
    window:  t ∈ (i − W, i],   t ≥ S                      at cache position t − e_i
    query:                                                at cache position i − e_i

Re-rotation with absolute keys. transformers caches keys after RoPE at their absolute positions. RoPE
scores depend on distances only, and the window keys keep theirs, ``(i − e_i) − (t − e_i) = i − t``;
only the sinks move, from distance ``i − j`` to ``(i − e_i) − j``. Rotating the *query* by ``−e_i`` for the
sink scores restores exactly that, ``⟨Rot(q_i, −e_i), k_j⟩ = ⟨R_{i−e_i} q, R_j k⟩``, so each step costs
one extra rotation of the query instead of re-rotating ``S + W`` keys. One softmax runs over the union
of sink and window scores.

Long prompts. A prompt of ``T ≫ W`` tokens in one pass is processed in query chunks; a chunk looks at
the sinks and at the keys within the window of its queries only, so prefill is ``O(T·(S + W))`` in time
and memory and never materialises ``T × T`` (attention_sinks#17). Prefill gives the same result as
feeding the prompt token by token.

Plumbing. The attention function is registered with a mask builder under one neutral name
(``ctx.install_attention``); the streamed layers carry their sinks/window and RoPE frequencies in the
per-layer context ``module._lc["streaming-llm"]``, the other layers (Gemma 3's sliding layers by default)
keep the model's original attention function and mask. The key layout comes from the paired cache
(``kv=sink-window``): ``[sinks | a contiguous run ending at the last query]``; absolute query positions
come from ``position_ids``. ``describe()`` reports ``max_context = None``: streaming is unbounded
(but it does not extend the context: tokens that left the window are forgotten).

Limitations: batches with padding (per-row positions) and custom 4D masks / mask overlays are refused;
attention weights are not returned; positions must be the model's default absolute token indices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import torch
import torch.nn as nn
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

from longctx.attn import Passthrough, first_query_position, original_attention, own_pattern_mask
from longctx.capabilities import attention_modules, rotary_modules, text_config
from longctx.errors import CompositionError, IncompatibleModelError, InputError
from longctx.hooks import hookimpl
from longctx.params import non_negative, one_of, positive
from longctx.plugins.sink_window import LAYER_CHOICES, SinkWindowStore, streamed_layers
from longctx.rope import layer_inv_freq, rerotate

#: Key of this technique's entry in each attention module's per-layer context (``module._lc``).
CONTEXT_KEY = "streaming-llm"
#: Queries per prefill chunk; a chunk scores ``sinks + chunk + window − 1`` keys at most.
PREFILL_CHUNK = 256


class StreamingUnsupportedError(InputError, NotImplementedError):
    """An input the StreamingLLM attention cannot serve (padding, custom masks, position layouts)."""


@attrs.frozen
class StreamingLLMConfig:
    """The paper's sink count and window (``start_size``/``recent_size``; attention_sinks 4 + 1020)."""

    sinks: int = attrs.field(
        default=4, validator=non_negative, metadata={"help": "attention-sink tokens kept from the start"}
    )
    window: int = attrs.field(
        default=1020,
        validator=positive,
        metadata={"help": "most recent tokens attended (the current one included)"},
    )
    layers: str = attrs.field(
        default="full",
        validator=one_of(*LAYER_CHOICES),
        metadata={"help": "full: full-attention layers (sliding layers unchanged); all: every layer"},
    )


@attrs.frozen
class StreamingLayer:
    """Per-layer context of a streamed attention module."""

    sinks: int
    window: int
    #: returns the layer's RoPE ``inv_freq`` (resolved at call time, so a rotary swap is followed).
    inv_freq: Callable[[], torch.Tensor]
    chunk: int = PREFILL_CHUNK


# -- the attention ---------------------------------------------------------------------------------


def _query_positions(position_ids: torch.Tensor | None, q_len: int, k_len: int) -> int:
    """The absolute position of the first query (one contiguous run shared by the batch)."""
    return first_query_position(position_ids, q_len, k_len, technique=CONTEXT_KEY, error=StreamingUnsupportedError)


def _attend_chunk(
    q: torch.Tensor,
    k_sink: torch.Tensor,
    v_sink: torch.Tensor,
    k_win: torch.Tensor,
    v_win: torch.Tensor,
    sink_visible: torch.Tensor,
    win_visible: torch.Tensor,
    evicted: torch.Tensor,
    e_max: int,
    inv_freq: torch.Tensor,
    scaling: float,
    softcap: float | None,
    dropout: float,
) -> torch.Tensor:
    """One softmax over sink and window scores for a chunk of ``C`` queries.

    ``q`` is ``(b, H, C, d)``; keys/values are ``(b, Hkv, n, d)``, not repeated: the ``G = H/Hkv`` query
    heads of a group share a key head (head ``h`` uses key head ``h // G``, as ``repeat_kv`` does).
    ``*_visible`` are ``(C, n)`` booleans; ``evicted`` is ``e_i`` per query. Returns ``(b, C, H, d)``.
    """
    b, h, c, d = q.shape
    hkv = k_win.shape[1]
    g = h // hkv

    def scores(qq: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        s = torch.matmul(qq.reshape(b, hkv, g * c, d), k.transpose(-1, -2))
        return s.reshape(b, hkv, g, c, k.shape[-2]).float()

    n_sink = k_sink.shape[-2]
    parts = []
    masks = []
    if n_sink:
        # sinks sit at cache positions j: score them with the query moved back by e_i
        q_sink = rerotate(q, -evicted, inv_freq) if e_max > 0 else q
        parts.append(scores(q_sink, k_sink))
        masks.append(sink_visible)
    parts.append(scores(q, k_win))
    masks.append(win_visible)
    logits = torch.cat(parts, dim=-1) * scaling
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    visible = torch.cat(masks, dim=-1)
    logits = logits.masked_fill(~visible, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if dropout:
        probs = torch.nn.functional.dropout(probs, p=dropout, training=True)
    probs = probs.to(v_win.dtype).reshape(b, hkv, g * c, -1)
    out = torch.matmul(probs[..., n_sink:], v_win)
    if n_sink:
        out = out + torch.matmul(probs[..., :n_sink], v_sink)
    return out.reshape(b, h, c, d).transpose(1, 2)


def sink_window_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    position_ids: torch.Tensor | None,
    *,
    sinks: int,
    window: int,
    inv_freq: torch.Tensor,
    scaling: float | None = None,
    softcap: float | None = None,
    dropout: float = 0.0,
    chunk: int = PREFILL_CHUNK,
) -> torch.Tensor:
    """StreamingLLM attention over keys laid out as ``[sinks | contiguous run ending at the last query]``.

    :param query: ``(b, H, Q, d)``, rotated at absolute positions ``position_ids``.
    :param key: ``(b, Hkv, K, d)`` post-RoPE keys as a sink-window cache returns them (or all keys
        ``0 … K−1`` when nothing was evicted); ``value`` alike.
    :returns: ``(b, Q, H, d)`` in the dtype of ``value``.
    """
    b, h, q_len, d = query.shape
    hkv, k_len = key.shape[1], key.shape[2]
    if h % hkv:
        raise StreamingUnsupportedError(f"{h} query heads cannot share {hkv} key heads")
    if scaling is None:
        scaling = d**-0.5
    p_first = _query_positions(position_ids, q_len, k_len)
    p_last = p_first + q_len - 1
    # the physical key layout: slots < n_sink are the sinks at positions 0..n_sink-1; the others are
    # the run ending at p_last: position(slot) = slot + shift, shift = tokens evicted before this pass
    n_sink = min(sinks, k_len)
    shift = p_last + 1 - k_len
    if k_len < q_len or shift < 0 or (shift > 0 and n_sink < sinks):
        raise StreamingUnsupportedError(
            f"streaming-llm got {k_len} keys for {q_len} queries at positions {p_first}..{p_last}; "
            "the keys must come from a kv=sink-window cache with the model's default positions"
        )
    device = query.device
    ar_sink = torch.arange(n_sink, device=device)
    k_sink, v_sink = key[:, :, :n_sink], value[:, :, :n_sink]
    out = torch.empty(b, q_len, h, d, dtype=value.dtype, device=device)
    for r0 in range(0, q_len, chunk):
        r1 = min(q_len, r0 + chunk)
        i_lo, i_hi = p_first + r0, p_first + r1 - 1  # absolute positions of the chunk's queries
        lo = max(sinks, i_lo - window + 1)  # oldest window key any query of the chunk sees
        w1 = max(n_sink, i_hi - shift + 1)
        w0 = min(w1, max(n_sink, lo - shift))
        if lo <= i_hi and lo - shift < n_sink:
            raise StreamingUnsupportedError(
                f"the cache no longer holds position {lo}, which the window of position {i_lo} needs; "
                f"use a kv=sink-window cache with window >= {window}"
            )
        qpos = torch.arange(i_lo, i_hi + 1, device=device)
        kpos = torch.arange(w0, w1, device=device) + shift
        sink_visible = ar_sink[None, :] <= qpos[:, None]
        win_visible = (kpos[None, :] <= qpos[:, None]) & (kpos[None, :] > qpos[:, None] - window)
        evicted = (qpos - (sinks + window - 1)).clamp_min(0)
        e_max = max(0, i_hi - (sinks + window - 1))
        out[:, r0:r1] = _attend_chunk(
            query[:, :, r0:r1],
            k_sink,
            v_sink,
            key[:, :, w0:w1],
            value[:, :, w0:w1],
            sink_visible,
            win_visible,
            evicted,
            e_max,
            inv_freq,
            scaling,
            softcap,
            dropout,
        )
    return out


def streaming_llm_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """transformers attention-interface entry point (registered under a neutral name)."""
    state = (getattr(module, "_lc", None) or {}).get(CONTEXT_KEY)
    if isinstance(state, Passthrough):
        return state.fn(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    if not isinstance(state, StreamingLayer):
        raise CompositionError(
            f"attention module {type(module).__name__} (layer {getattr(module, 'layer_idx', '?')}) has no "
            "streaming-llm context; compose the model with attention=streaming-llm"
        )
    if attention_mask is not None:
        raise StreamingUnsupportedError(
            "streaming-llm builds its own sink+window pattern and cannot combine it with a custom 4D "
            "attention mask or mask overlay (packed sequences, bidirectional image tokens)"
        )
    if kwargs.get("s_aux") is not None:
        raise StreamingUnsupportedError("models with learned attention sinks (s_aux) are not supported")
    softcap = kwargs.get("softcap")
    if softcap is None:
        softcap = getattr(getattr(module, "config", None), "attn_logit_softcapping", None)
    out = sink_window_attention(
        query,
        key,
        value,
        kwargs.get("position_ids"),
        sinks=state.sinks,
        window=state.window,
        inv_freq=state.inv_freq(),
        scaling=scaling,
        softcap=softcap,
        dropout=dropout if getattr(module, "training", False) else 0.0,
        chunk=state.chunk,
    )
    return out, None


# -- the mask --------------------------------------------------------------------------------------


def make_mask(base: Callable[..., Any], *, all_streamed: bool) -> Callable[..., Any]:
    """The mask builder registered with the attention: refuses padding, gives the streamed layers no
    mask (the attention builds the sink+window pattern itself, chunk by chunk) and delegates every other
    request — the sliding layers' — to the model's original mask builder (:func:`longctx.attn.own_pattern_mask`)."""
    return own_pattern_mask(base, all_replaced=all_streamed, technique=CONTEXT_KEY, error=StreamingUnsupportedError)


# -- the component ---------------------------------------------------------------------------------


class StreamingLLM:
    """Installs StreamingLLM attention on the streamed layers (see the module docstring)."""

    def __init__(self, config: StreamingLLMConfig, ctx: Any = None) -> None:
        self.config = config
        kv = ctx.components.get("kv") if ctx is not None else None
        if ctx is not None and not isinstance(kv, SinkWindowStore):
            raise CompositionError(
                f"attention=streaming-llm needs kv=sink-window (its cache of sinks plus a window), "
                f"but the kv store is {type(kv).__name__}"
            )
        if isinstance(kv, SinkWindowStore):
            ours = (config.sinks, config.window, config.layers)
            theirs = (kv.sinks, kv.window, kv.layers)
            if ours != theirs:
                raise CompositionError(
                    f"attention=streaming-llm:sinks={config.sinks},window={config.window},"
                    f"layers={config.layers} does not match "
                    f"kv=sink-window:sinks={kv.sinks},window={kv.window},layers={kv.layers}; "
                    "give both the same values (or set them on one and leave the other slot at its default)"
                )

    def apply(self, ctx: Any) -> dict[str, Any]:
        model = ctx.model
        cfg = text_config(model.config)
        previous = cfg._attn_implementation or "eager"
        rotaries = [m for _n, m in rotary_modules(model)]
        if not rotaries:
            raise IncompatibleModelError(
                f"streaming-llm re-rotates queries and needs RoPE, but {ctx.info.architecture} has none"
            )
        n = cfg.num_hidden_layers
        types = list(getattr(cfg, "layer_types", None) or [None] * n)
        streamed = set(streamed_layers(model, self.config.layers))
        modules = sorted(attention_modules(model), key=lambda m: m.layer_idx)
        if not modules:
            raise IncompatibleModelError(
                f"{ctx.info.architecture} has no attention module that dispatches through transformers' "
                "attention interface"
            )
        for m in modules:
            lc = ctx.layer_context(m)
            if m.layer_idx in streamed:
                lt = types[m.layer_idx]
                rot = next((r for r in rotaries if lt and hasattr(r, f"{lt}_inv_freq")), rotaries[0])
                lc[CONTEXT_KEY] = StreamingLayer(
                    self.config.sinks, self.config.window, lambda r=rot, t=lt: layer_inv_freq(r, t)
                )
            else:
                lc[CONTEXT_KEY] = Passthrough(original_attention(m, previous))
            ctx.on_undo(lambda lc=lc: lc.pop(CONTEXT_KEY, None))
        base = ALL_MASK_ATTENTION_FUNCTIONS[previous if previous in ALL_MASK_ATTENTION_FUNCTIONS else "sdpa"]
        all_streamed = all(m.layer_idx in streamed for m in modules)
        key = ctx.install_attention(
            streaming_llm_attention, mask=make_mask(base, all_streamed=all_streamed), label="streaming-llm"
        )
        ctx.max_context = None
        return {
            "changed": True,
            "implementation": key,
            "original_implementation": previous,
            "sinks": self.config.sinks,
            "window": self.config.window,
            "layers": self.config.layers,
            "streamed_layers": sorted(m.layer_idx for m in modules if m.layer_idx in streamed),
            "unchanged_layers": sorted(m.layer_idx for m in modules if m.layer_idx not in streamed),
            "max_context": None,
        }


@hookimpl
def lc_register_attention(register):
    register(
        "streaming-llm",
        config=StreamingLLMConfig,
        build=StreamingLLM,
        summary="Attention sinks + sliding window with positions assigned within the cache (StreamingLLM)",
        paper="Xiao et al. 2023, Efficient Streaming Language Models with Attention Sinks, arXiv:2309.17453",
        requires=("kv=sink-window",),
        capabilities=("rope",),
    )
