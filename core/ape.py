"""Learned absolute position tables (BERT-style encoders): find them, build longer ones, install them.

An encoder with learned absolute positions looks position ``j`` up in a table ``E ∈ R^{L×d}`` (an
``nn.Embedding`` named ``position_embeddings``) and cannot see a token past ``L``. Techniques that extend
it build a longer table ``E' ∈ R^{L'×d}`` whose row ``j`` is ``E`` read at a fractional source position
``p_j`` (:func:`interpolate_rows`), and :func:`install_position_tables` swaps it in through the
:class:`~longctx.runtime.ComposeContext`, so that undo restores the original table, the ``position_ids``
/ ``token_type_ids`` buffers and ``config.max_position_embeddings``.

Tables with a ``padding_idx`` (RoBERTa counts positions from ``padding_idx + 1``) keep their first
``padding_idx + 1`` rows unchanged; the map applies to the rows after them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from longctx.capabilities import text_config
from longctx.errors import IncompatibleModelError

#: source positions for a table of ``L`` trained rows: ``(L) -> float tensor of length L'``
PositionMap = Callable[[int], torch.Tensor]

MODES = ("linear", "nearest")


def position_tables(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(qualified name, owner module)`` of every module whose ``position_embeddings`` is an ``nn.Embedding``."""
    return [
        (name, mod)
        for name, mod in model.named_modules()
        if isinstance(mod._modules.get("position_embeddings"), nn.Embedding)
    ]


def interpolate_rows(table: torch.Tensor, positions: torch.Tensor, mode: str = "linear") -> torch.Tensor:
    """Rows of ``table`` (``L × d``) read at fractional ``positions`` (clamped to ``[0, L−1]``).

    ``linear``: ``(1−α)·E[⌊p⌋] + α·E[⌊p⌋+1]`` with ``α = p − ⌊p⌋`` (computed in float64; a row at an
    integer position is copied exactly). ``nearest``: ``E[⌊p + ½⌋]``.
    """
    if mode not in MODES:
        raise ValueError(f"unknown interpolation mode {mode!r}; choose one of {', '.join(MODES)}")
    n = table.shape[0]
    p = positions.to(torch.float64).clamp(0, n - 1)
    if mode == "nearest":
        return table[torch.floor(p + 0.5).long().clamp(max=n - 1)].clone()
    lo = torch.floor(p).long()
    hi = (lo + 1).clamp(max=n - 1)
    alpha = (p - lo.to(torch.float64)).unsqueeze(-1)
    src = table.to(torch.float64)
    blended = ((1 - alpha) * src[lo] + alpha * src[hi]).to(table.dtype)
    return torch.where(alpha == 0, table[lo], blended)


def stretched_table(
    table: torch.Tensor, position_map: PositionMap, mode: str = "linear", offset: int = 0
) -> torch.Tensor:
    """The new table: the first ``offset`` rows unchanged, then rows ``offset:`` read at ``position_map``."""
    head, body = table[:offset], table[offset:]
    positions = position_map(body.shape[0])
    return torch.cat([head, interpolate_rows(body, positions, mode)], dim=0)


def _offset(emb: nn.Embedding) -> int:
    return 0 if emb.padding_idx is None else int(emb.padding_idx) + 1


def _swap_buffer(ctx: Any, module: nn.Module, name: str, value: torch.Tensor) -> None:
    old = module._buffers[name]
    module._buffers[name] = value
    ctx.on_undo(lambda: module._buffers.__setitem__(name, old))


def install_position_tables(
    ctx: Any, position_map: PositionMap, *, mode: str = "linear", technique: str = "this technique"
) -> dict[str, Any]:
    """Replace every absolute position table of ``ctx.model`` by ``stretched_table(E, position_map)``.

    Extends the owner's ``position_ids`` (``arange``) and ``token_type_ids`` (trained prefix, then zeros)
    buffers, sets ``config.max_position_embeddings`` to the new table size and ``ctx.max_context`` to the
    new number of usable positions. Every change goes through ``ctx`` and is undone with the pipeline.
    """
    owners = position_tables(ctx.model)
    if not owners:
        raise IncompatibleModelError(
            f"{technique} needs learned absolute position embeddings (an nn.Embedding named "
            f"'position_embeddings'); {type(ctx.model).__name__} has none"
        )
    changed: dict[str, Any] = {}
    sizes: list[int] = []
    usable: list[int] = []
    for name, owner in owners:
        old: nn.Embedding = owner.position_embeddings
        offset = _offset(old)
        with torch.no_grad():
            weight = stretched_table(old.weight.detach(), position_map, mode, offset)
        n = weight.shape[0]
        new = nn.Embedding(n, old.embedding_dim, padding_idx=old.padding_idx, device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            new.weight.copy_(weight)
        new.weight.requires_grad_(old.weight.requires_grad)
        new.train(old.training)
        ctx.set_attr(owner, "position_embeddings", new)
        buffers = owner._buffers
        if isinstance(buffers.get("position_ids"), torch.Tensor):
            ids = buffers["position_ids"]
            _swap_buffer(
                ctx, owner, "position_ids", torch.arange(n, dtype=ids.dtype, device=ids.device).expand((1, -1))
            )
        if isinstance(buffers.get("token_type_ids"), torch.Tensor):
            tt = buffers["token_type_ids"]
            ext = torch.zeros((*tt.shape[:-1], n), dtype=tt.dtype, device=tt.device)
            k = min(n, tt.shape[-1])
            ext[..., :k] = tt[..., :k]
            _swap_buffer(ctx, owner, "token_type_ids", ext)
        changed[f"{name}.position_embeddings" if name else "position_embeddings"] = {
            "from": old.num_embeddings,
            "to": n,
        }
        sizes.append(n)
        usable.append(n - offset)
    cfg = text_config(ctx.model.config)
    for c in {id(cfg): cfg, id(ctx.model.config): ctx.model.config}.values():
        if getattr(c, "max_position_embeddings", None) is not None:
            ctx.set_attr(c, "max_position_embeddings", max(sizes))
    ctx.max_context = min(usable)
    return {"position_tables": changed, "max_context": ctx.max_context}
