"""``self-extend``: exact neighbour attention plus grouped (floor-divided) positions for distant keys.

Jin, Han, Yang, Jiang, Liu, Chang, Chen & Hu 2024, "LLM Maybe LongLM: Self-Extend LLM Context Window
Without Tuning", arXiv:2401.01325 (§3, Eq. 3–4; the LongLM ``self_extend_forward``).

Method. A query at absolute position ``i`` scores a key at ``j ≤ i`` with one of two position maps,
``G = group_size`` and ``W = neighbor_window``:

    neighbour (i − j < W):   query at i,                      key at j            (normal RoPE)
    grouped   (i − j ≥ W):   query at ⌊i/G⌋ + (W − ⌊W/G⌋),    key at ⌊j/G⌋

The shift ``W − ⌊W/G⌋`` makes the grouped distance meet the neighbour one at the window boundary. The
two score sets are merged (neighbour where ``i − j < W``, grouped elsewhere) before a single softmax.
(LongLM applies the shift only once the largest query position reaches ``W``; before that no key is
grouped, so applying it always is the same.)

Re-rotation with absolute keys. transformers caches keys after RoPE at their absolute positions, so the
neighbour scores use ``q`` and ``k`` as given and the grouped scores use
``Rot(k_j, ⌊j/G⌋ − j)`` and ``Rot(q_i, ⌊i/G⌋ + W − ⌊W/G⌋ − i)`` (:func:`longctx.rope.rerotate`, angles
in fp32). Every forward re-rotates all cached keys once for the grouped part: ``O(T)`` extra work per
decoding step, with the default dynamic cache (no special cache is needed).

Long prompts. Queries are processed in chunks of ``PREFILL_CHUNK``; a chunk scores its queries against
the keys up to its last one, so prefill memory is ``O(chunk · T)`` per head (time stays ``O(T²)``).

Usable context. With a training window ``L`` (the model's current ``max_context``), the largest grouped
distance stays below ``L`` up to ``(L − W)·G + W`` tokens (the paper's maximum extended length);
``describe()`` reports that as ``max_context`` (``L`` itself when ``W ≥ L``).

Plumbing (as ``streaming-llm``). ``ctx.install_attention`` registers the function and a mask builder under
a neutral name; the extended layers carry ``G``, ``W`` and their RoPE frequencies in
``module._lc["self-extend"]``; every other layer (Gemma 3's sliding layers with ``layers=full``) keeps the
model's original attention function and mask.

Precision. The re-rotation above always runs in float32 (:func:`longctx.rope.rerotate`: angles in float32,
``x·cos + rotate_half(x)·sin`` in float32, the result cast back), which is the fix of Wang et al. 2024
("When Precision Meets Position: BFloat16 Breaks Down RoPE in Long-Context Training", arXiv:2411.13476)
for the grouped scores. The rotation of q and k at their absolute positions is the model's own;
``fp32_rotation=true`` makes that one float32 too (the same as ``positional=native:fp32_rotation=true``,
:func:`longctx.rope.install_fp32_rotation`). The extended layers then receive float32 q and k and compute
their logits from them.

Limitations: batches with padding (per-row positions) and custom 4D masks are refused; caches that evict
(``kv=sink-window``, or the sliding-window cache layers of Gemma 3 under ``layers=all`` once the prompt
exceeds the window) are refused at call time; attention weights are not returned.
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
from longctx.params import one_of, positive
from longctx.plugins.sink_window import LAYER_CHOICES, streamed_layers
from longctx.rope import fp32_rotation_field, install_fp32_rotation, layer_inv_freq, rerotate

#: Key of this technique's entry in each attention module's per-layer context (``module._lc``).
CONTEXT_KEY = "self-extend"
#: Queries per prefill chunk; a chunk scores ``chunk × (keys up to its last query)`` twice.
PREFILL_CHUNK = 256


class SelfExtendUnsupportedError(InputError, NotImplementedError):
    """An input the SelfExtend attention cannot serve (padding, custom masks, evicted keys)."""


@attrs.frozen
class SelfExtendConfig:
    """The paper's group size ``G`` and neighbour window ``W`` (``group_size_1``/``group_size_2``)."""

    group_size: int = attrs.field(
        default=8, validator=positive, metadata={"help": "G: distant positions are floor-divided by G"}
    )
    neighbor_window: int = attrs.field(
        default=512,
        validator=positive,
        metadata={"help": "W: keys with i − j < W keep their exact relative position"},
    )
    layers: str = attrs.field(
        default="full",
        validator=one_of(*LAYER_CHOICES),
        metadata={"help": "full: full-attention layers (sliding layers unchanged); all: every layer"},
    )
    fp32_rotation: bool = fp32_rotation_field()


@attrs.frozen
class SelfExtendLayer:
    """Per-layer context of an extended attention module."""

    group_size: int
    neighbor_window: int
    #: returns the layer's RoPE ``inv_freq`` (resolved at call time, so a rotary swap is followed).
    inv_freq: Callable[[], torch.Tensor]
    chunk: int = PREFILL_CHUNK


# -- positions -------------------------------------------------------------------------------------


def grouped_query_position(i: torch.Tensor | int, group_size: int, neighbor_window: int) -> Any:
    """``⌊i/G⌋ + W − ⌊W/G⌋``: the query's position for the grouped scores."""
    return i // group_size + neighbor_window - neighbor_window // group_size


def grouped_key_position(j: torch.Tensor | int, group_size: int) -> Any:
    """``⌊j/G⌋``: the key's position for the grouped scores."""
    return j // group_size


# -- the attention ---------------------------------------------------------------------------------


def _first_position(position_ids: torch.Tensor | None, q_len: int, k_len: int) -> int:
    """The absolute position of the first query (one contiguous run shared by the batch)."""
    return first_query_position(position_ids, q_len, k_len, technique=CONTEXT_KEY, error=SelfExtendUnsupportedError)


def self_extend_attention_core(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    position_ids: torch.Tensor | None,
    *,
    group_size: int,
    neighbor_window: int,
    inv_freq: torch.Tensor,
    scaling: float | None = None,
    softcap: float | None = None,
    dropout: float = 0.0,
    chunk: int = PREFILL_CHUNK,
) -> torch.Tensor:
    """SelfExtend over keys at absolute positions ``0 … K−1`` (post-RoPE, as a dynamic cache holds them).

    :param query: ``(b, H, Q, d)`` rotated at absolute positions ``position_ids`` (the last ``Q`` of ``K``).
    :param key: ``(b, Hkv, K, d)``, not repeated (GQA); ``value`` alike.
    :returns: ``(b, Q, H, d)`` in the dtype of ``value``.
    """
    b, h, q_len, d = query.shape
    hkv, k_len = key.shape[1], key.shape[2]
    if h % hkv:
        raise SelfExtendUnsupportedError(f"{h} query heads cannot share {hkv} key heads")
    g = h // hkv
    if scaling is None:
        scaling = d**-0.5
    p_first = _first_position(position_ids, q_len, k_len)
    if p_first + q_len != k_len:
        raise SelfExtendUnsupportedError(
            f"self-extend got {k_len} keys for queries at positions {p_first}..{p_first + q_len - 1}; it needs "
            "every key from position 0 (a cache that evicts, such as a sliding-window or sink-window layer, "
            "is not supported)"
        )
    G, W = group_size, neighbor_window
    device = query.device
    kpos_all = torch.arange(k_len, device=device)
    k_grouped = None
    if k_len > W:  # some query may see a key at distance ≥ W: re-rotate the keys once for this pass
        k_grouped = rerotate(key, grouped_key_position(kpos_all, G) - kpos_all, inv_freq)

    def scores(qq: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        c = qq.shape[-2]
        s = torch.matmul(qq.reshape(b, hkv, g * c, d), k.transpose(-1, -2))
        return s.reshape(b, hkv, g, c, k.shape[-2]).float()

    out = torch.empty(b, q_len, h, d, dtype=value.dtype, device=device)
    for r0 in range(0, q_len, chunk):
        r1 = min(q_len, r0 + chunk)
        n_keys = p_first + r1  # causal: keys up to the chunk's last query
        qpos = torch.arange(p_first + r0, p_first + r1, device=device)
        kpos = kpos_all[:n_keys]
        qc = query[:, :, r0:r1]
        dist = qpos[:, None] - kpos[None, :]
        logits = scores(qc, key[:, :, :n_keys])
        if k_grouped is not None and int(qpos[-1]) >= W:
            q_grouped = rerotate(qc, grouped_query_position(qpos, G, W) - qpos, inv_freq)
            grouped = scores(q_grouped, k_grouped[:, :, :n_keys])
            logits = torch.where(dist < W, logits, grouped)
        logits = logits * scaling
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        logits = logits.masked_fill(dist < 0, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if dropout:
            probs = torch.nn.functional.dropout(probs, p=dropout, training=True)
        probs = probs.to(value.dtype).reshape(b, hkv, g * (r1 - r0), n_keys)
        o = torch.matmul(probs, value[:, :, :n_keys])
        out[:, r0:r1] = o.reshape(b, h, r1 - r0, d).transpose(1, 2)
    return out


def self_extend_attention(
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
    if not isinstance(state, SelfExtendLayer):
        raise CompositionError(
            f"attention module {type(module).__name__} (layer {getattr(module, 'layer_idx', '?')}) has no "
            "self-extend context; compose the model with attention=self-extend"
        )
    if attention_mask is not None:
        raise SelfExtendUnsupportedError(
            "self-extend builds its own causal pattern and cannot combine it with a custom 4D attention "
            "mask or mask overlay (packed sequences, bidirectional image tokens)"
        )
    if kwargs.get("s_aux") is not None:
        raise SelfExtendUnsupportedError("models with learned attention sinks (s_aux) are not supported")
    softcap = kwargs.get("softcap")
    if softcap is None:
        softcap = getattr(getattr(module, "config", None), "attn_logit_softcapping", None)
    out = self_extend_attention_core(
        query,
        key,
        value,
        kwargs.get("position_ids"),
        group_size=state.group_size,
        neighbor_window=state.neighbor_window,
        inv_freq=state.inv_freq(),
        scaling=scaling,
        softcap=softcap,
        dropout=dropout if getattr(module, "training", False) else 0.0,
        chunk=state.chunk,
    )
    return out, None


# -- the mask --------------------------------------------------------------------------------------


def make_mask(base: Callable[..., Any], *, all_extended: bool) -> Callable[..., Any]:
    """Mask builder: refuses padding, gives the extended layers no mask (the attention is causal by
    construction, chunk by chunk) and delegates other requests (sliding layers) to ``base``."""
    return own_pattern_mask(base, all_replaced=all_extended, technique=CONTEXT_KEY, error=SelfExtendUnsupportedError)


# -- the component ---------------------------------------------------------------------------------


def extended_context(window: int | None, group_size: int, neighbor_window: int) -> int | None:
    """``(L − W)·G + W`` (the paper's maximum length), ``L`` when ``W ≥ L``, ``None`` when unknown."""
    if window is None:
        return None
    if neighbor_window >= window:
        return window
    return (window - neighbor_window) * group_size + neighbor_window


class SelfExtend:
    """Installs SelfExtend attention on the extended layers (see the module docstring)."""

    def __init__(self, config: SelfExtendConfig, ctx: Any = None) -> None:
        self.config = config
        kv = ctx.components.get("kv") if ctx is not None else None
        describe = getattr(kv, "describe", None)
        if callable(describe) and describe().get("evicts"):
            raise CompositionError(
                f"attention=self-extend needs every key from position 0, but kv={describe().get('technique')} "
                "evicts; use kv=dynamic"
            )

    def apply(self, ctx: Any) -> dict[str, Any]:
        model = ctx.model
        cfg = text_config(model.config)
        if not rotary_modules(model):
            raise IncompatibleModelError(
                f"self-extend re-rotates queries and keys and needs RoPE, but {ctx.info.architecture} has none"
            )
        # first, so the original-attention passthrough below is the float32 rotation's cast-back wrapper
        precision = install_fp32_rotation(ctx) if self.config.fp32_rotation else None
        previous = cfg._attn_implementation or "eager"
        rotaries = [m for _n, m in rotary_modules(model)]
        n = cfg.num_hidden_layers
        types = list(getattr(cfg, "layer_types", None) or [None] * n)
        extended = set(streamed_layers(model, self.config.layers))
        modules = sorted(attention_modules(model), key=lambda m: m.layer_idx)
        if not modules:
            raise IncompatibleModelError(
                f"{ctx.info.architecture} has no attention module that dispatches through transformers' "
                "attention interface"
            )
        G, W = self.config.group_size, self.config.neighbor_window
        for m in modules:
            lc = ctx.layer_context(m)
            if m.layer_idx in extended:
                lt = types[m.layer_idx]
                rot = next((r for r in rotaries if lt and hasattr(r, f"{lt}_inv_freq")), rotaries[0])
                lc[CONTEXT_KEY] = SelfExtendLayer(G, W, lambda r=rot, t=lt: layer_inv_freq(r, t))
            else:
                lc[CONTEXT_KEY] = Passthrough(original_attention(m, previous))
            ctx.on_undo(lambda lc=lc: lc.pop(CONTEXT_KEY, None))
        base = ALL_MASK_ATTENTION_FUNCTIONS[previous if previous in ALL_MASK_ATTENTION_FUNCTIONS else "sdpa"]
        all_extended = all(m.layer_idx in extended for m in modules)
        key = ctx.install_attention(
            self_extend_attention, mask=make_mask(base, all_extended=all_extended), label="self-extend"
        )
        original = ctx.max_context
        ctx.max_context = extended_context(original, G, W)
        return {
            "changed": True,
            "implementation": key,
            "original_implementation": previous,
            "group_size": G,
            "neighbor_window": W,
            "layers": self.config.layers,
            "extended_layers": sorted(m.layer_idx for m in modules if m.layer_idx in extended),
            "unchanged_layers": sorted(m.layer_idx for m in modules if m.layer_idx not in extended),
            "original_context": original,
            "max_context": ctx.max_context,
            **({"fp32_rotation": precision} if precision is not None else {}),
        }


@hookimpl
def lc_register_attention(register):
    register(
        "self-extend",
        config=SelfExtendConfig,
        build=SelfExtend,
        summary="Exact neighbour attention plus floor-divided (grouped) positions for distant keys (SelfExtend)",
        paper="Jin et al. 2024, LLM Maybe LongLM: Self-Extend LLM Context Window Without Tuning, arXiv:2401.01325",
        capabilities=("rope",),
    )
