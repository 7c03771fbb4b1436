"""Positional-encoding contract: identity when told "no change", finite far beyond the window, layer types
handled as declared, and undo restores the model.

The checks run on every fixture architecture of the contract (``archs``: tiny Llama, Gemma 3, Qwen2 and
BERT by default); an architecture the technique refuses with a longctx error — a RoPE method on BERT — is
skipped for that check and noted.
"""

from __future__ import annotations

from typing import Any

from longctx.contrib.conformance import fixtures
from longctx.contrib.conformance.checks import check
from longctx.contrib.conformance.subject import (
    Refused,
    Subject,
    attention_layer_types,
    capture_attention,
    check_undo,
    difference,
    outputs,
)

#: tokens per input: longer than Gemma 3's sliding window (16), shorter than every window (BERT: 64)
SEQ = 48


def _fmt(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items()) or "its defaults"


@check("positional.no_change_is_identity")
def no_change_is_identity(s: Subject) -> None:
    """With the parameters its contract declares to mean "no change" (``identity_params``, e.g.
    ``factor=1``), the composed model's outputs equal the untouched model's (|Δ| ≤ 1e-5)."""
    params = s.contract.identity_params
    if params is None:
        s.skip("the contract declares no identity_params (parameters that mean 'no change')")

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        ids = fixtures.token_ids(SEQ, seed=1)
        base = outputs(lm, ids)
        with s.composed(lm, params) as pipe:
            got = outputs(lm, ids, pipe)
        diff = difference(got, base, 1e-5)
        if diff:
            s.fail(f"the untouched model's outputs on tiny-{arch} with {_fmt(dict(params))}", diff)

    s.over(s.contract.archs, run)


@check("positional.finite_beyond_window")
def finite_beyond_window(s: Subject) -> None:
    """Composed with the contract's parameters, the model gives finite outputs for an input as long as
    the window it claims (``Pipeline.max_context``; ``beyond_window_factor`` × the original window when it
    claims no bound) — well beyond the original window. Skipped where no extension is claimed."""
    import torch

    factor = s.contract.beyond_window_factor

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        window = lm.model.config.max_position_embeddings
        with s.composed(lm) as pipe:
            claimed = pipe.max_context
            if claimed is not None and claimed <= window:
                s.skip(f"claims no window beyond the original {window} tokens (max_context {claimed})")
            n = min(claimed or factor * window, factor * window)
            got = outputs(lm, fixtures.token_ids(n, seed=2), pipe)
        bad = ~torch.isfinite(got)
        if bad.any():
            pos = int(torch.nonzero(bad)[0][1])
            s.fail(
                f"finite outputs for {n} tokens on tiny-{arch} (original window {window}, claimed {claimed})",
                f"{int(bad.sum())} non-finite values, the first at position {pos}",
            )

    s.over(s.contract.archs, run)


@check("positional.sliding_layers_untouched")
def sliding_layers_untouched(s: Subject) -> None:
    """On Gemma 3 (sliding-window layers before a full-attention layer), the technique with its
    contract parameters leaves the sliding layers alone, as full-layer methods claim
    (``sliding_layers_untouched = True``): their attention outputs equal the untouched model's."""
    if not s.contract.sliding_layers_untouched:
        s.skip("the contract says the technique changes sliding-window layers too")
    lm = fixtures.tiny("gemma3")
    kinds = attention_layer_types(lm.model)
    prefix = []
    for m, t in kinds:  # sliding layers before the first full layer see exactly the same inputs
        if t != "sliding_attention":
            break
        prefix.append(m.layer_idx)
    if not prefix:
        s.skip("the fixture has no sliding layer before its first full layer")
    ids = fixtures.token_ids(SEQ, seed=3)
    with capture_attention(lm.model) as base_out:
        outputs(lm, ids)
    base = dict(base_out)
    try:
        with s.composed(lm) as pipe, capture_attention(lm.model) as got:
            outputs(lm, ids, pipe)
    except Refused as e:
        s.skip(f"tiny-gemma3 refused: {e}")
    for i in prefix:
        diff = difference(got[i], base[i], 1e-6)
        if diff:
            s.fail(f"sliding layer {i} of tiny-gemma3 unchanged with {s.words()}", diff)


@check("positional.undo_restores")
def undo_restores(s: Subject) -> None:
    """After ``Pipeline.undo()`` the model is as before: bit-identical outputs, the same config, module
    tree and attention implementation, nothing left attached."""
    check_undo(s, s.contract.archs, seq=SEQ, seed=4)
