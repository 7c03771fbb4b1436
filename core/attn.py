"""Helpers shared by attention plugins that replace the attention function on some layers only."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import attrs
import torch
import torch.nn as nn
from transformers import AttentionInterface


@attrs.frozen
class Passthrough:
    """Per-layer context of a module that keeps the model's original attention function."""

    fn: Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def original_attention(module: nn.Module, implementation: str) -> Callable[..., Any]:
    """The function the module itself would call: ``ALL_ATTENTION_FUNCTIONS.get_interface(impl,
    eager_attention_forward)`` as the modeling code resolves it (plain lookup where ``get_interface``
    does not exist), with the modeling file's own eager function for ``eager``."""
    eager = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    registry = AttentionInterface()
    if hasattr(registry, "get_interface") and eager is not None:
        return registry.get_interface(implementation, eager)
    if implementation == "eager" and eager is not None:
        return eager
    return registry[implementation]


def first_query_position(
    position_ids: torch.Tensor | None, q_len: int, k_len: int, *, technique: str, error: type[Exception]
) -> int:
    """The absolute position of the first query, for attentions that re-index positions themselves.

    Checks that the positions are one contiguous run shared by every row of the batch (no padding, no
    multi-axis positions) and raises ``error`` naming ``technique`` otherwise. Without ``position_ids``
    the queries are the last ``q_len`` of ``k_len`` keys.
    """
    if position_ids is None:
        return k_len - q_len
    if position_ids.dim() != 2 or position_ids.shape[-1] != q_len:
        raise error(
            f"{technique} needs position_ids of shape (batch, {q_len}), got {tuple(position_ids.shape)} "
            "(multi-axis positions such as M-RoPE are not supported)"
        )
    first = int(position_ids[0, 0])
    if q_len > 1 or position_ids.shape[0] > 1:
        want = torch.arange(first, first + q_len, device=position_ids.device)
        if not bool((position_ids == want).all()):
            raise error(
                f"{technique} needs contiguous absolute positions shared by every row of the batch; "
                "padded batches (per-row positions) are not supported: run the rows one by one"
            )
    return first


def own_pattern_mask(
    base: Callable[..., Any], *, all_replaced: bool, technique: str, error: type[Exception]
) -> Callable[..., Any]:
    """The mask builder of an attention that builds its own pattern on the layers it replaces.

    It refuses padded batches (raising ``error``), returns no mask for the plain causal request (the
    replaced full-attention layers, or every layer when ``all_replaced``) so nothing of size ``T × T`` is
    materialised, and delegates every other request — e.g. Gemma 3's sliding layers — to ``base``, the
    model's original mask builder. Keyword-only pass-through: the builder's signature differs across
    transformers versions (``q_length``/``q_offset`` since 5.4, ``cache_position`` before).
    """
    from transformers.masking_utils import causal_mask_function

    def mask(**kwargs: Any) -> Any:
        q_length = kwargs.get("q_length")
        if q_length is None and kwargs.get("cache_position") is not None:
            q_length = int(kwargs["cache_position"].shape[0])
        am = kwargs.get("attention_mask")
        if isinstance(am, torch.Tensor) and am.dim() == 2:
            # padding lives in the prompt: check it whole on prefill, only the new column when decoding
            cols = am if (q_length or 1) > 1 else am[:, -1:]
            if not bool(cols.all()):
                raise error(
                    f"{technique} does not support padded batches (the attention mask has zeros); "
                    "run the rows one by one"
                )
        if all_replaced or kwargs.get("mask_function", causal_mask_function) is causal_mask_function:
            return None
        return base(**kwargs)

    return mask
