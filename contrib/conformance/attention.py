"""Attention contract: dense when sparsity is off, causal, padding-safe, incremental = full, dtype kept,
and undo restores the model.

Runs on the contract's causal fixture architectures (tiny Llama and Gemma 3 by default; Gemma 3 mixes
sliding and full layers). Inputs are a few dozen tokens, so every check takes milliseconds.
"""

from __future__ import annotations

from typing import Any

from longctx.contrib.conformance import fixtures
from longctx.contrib.conformance.checks import check
from longctx.contrib.conformance.subject import (
    Subject,
    capture_attention,
    check_undo,
    difference,
    outputs,
)

SEQ = 40
ATOL = 1e-4


def _causal_archs(s: Subject) -> list[str]:
    return [a for a in s.contract.archs if a in fixtures.CAUSAL_ARCHS]


@check("attention.dense_when_sparsity_off")
def dense_when_sparsity_off(s: Subject) -> None:
    """With the parameters its contract declares to switch sparsity off (``dense_params``, e.g.
    ``window`` ≥ the sequence), the composed model's logits equal the untouched model's dense attention
    (|Δ| ≤ 1e-5) — on Gemma 3 too, whose sliding layers must keep their own window."""
    params = s.contract.dense_params
    if params is None:
        s.skip("the contract declares no dense_params (parameters that switch sparsity off)")

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        ids = fixtures.token_ids(60, seed=11)
        base = outputs(lm, ids)
        with s.composed(lm, params) as pipe:
            got = outputs(lm, ids, pipe)
        diff = difference(got, base, 1e-5)
        if diff:
            s.fail(f"dense (untouched) logits on tiny-{arch} with {s.words(params)}", diff)

    s.over(_causal_archs(s), run)


@check("attention.causal")
def causal(s: Subject) -> None:
    """Causality: changing the tokens from position 24 on leaves the logits of positions 0–23 unchanged
    (|Δ| ≤ 1e-5)."""
    cut = 24

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        ids = fixtures.token_ids(SEQ, seed=12)
        other = ids.clone()
        other[:, cut:] = fixtures.token_ids(SEQ - cut, seed=13)
        with s.composed(lm) as pipe:
            a = outputs(lm, ids, pipe)
            b = outputs(lm, other, pipe)
        diff = difference(a[:, :cut], b[:, :cut], 1e-5)
        if diff:
            s.fail(
                f"logits at positions < {cut} unchanged when tokens {cut}..{SEQ - 1} change (tiny-{arch}, {s.words()})",
                f"they changed: {diff}",
            )

    s.over(_causal_archs(s), run)


@check("attention.left_padding")
def left_padding(s: Subject) -> None:
    """A left-padded batch (``attention_mask`` zeros, ``position_ids`` counted from the first real token)
    gives each row the logits it gets alone (|Δ| ≤ 1e-4 on the real tokens). A technique may refuse padded
    batches with a clear longctx error: the check is then skipped with that error as the reason."""
    import torch

    from longctx.errors import LongctxError

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        lengths = (30, 21)
        rows = [fixtures.token_ids(n, seed=20 + i) for i, n in enumerate(lengths)]
        width = max(lengths)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, row in enumerate(rows):
            ids[r, width - row.shape[1] :] = row[0]
            mask[r, width - row.shape[1] :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with s.composed(lm) as pipe:
            try:
                batch = outputs(lm, ids, pipe, attention_mask=mask, position_ids=pos)
            except LongctxError as e:
                s.skip(f"refuses padded batches: {type(e).__name__}: {e}")
            alone = [outputs(lm, row, pipe) for row in rows]
        for r, (row, ref) in enumerate(zip(rows, alone)):
            diff = difference(batch[r : r + 1, width - row.shape[1] :], ref, ATOL)
            if diff:
                s.fail(
                    f"row {r} of a left-padded batch (tiny-{arch}) to match the row run alone",
                    f"{diff}; {width - row.shape[1]} pad tokens on the left",
                )

    s.over(_causal_archs(s), run)


@check("attention.incremental_equals_full")
def incremental_equals_full(s: Subject) -> None:
    """Decoding through the pipeline's cache — a 20-token prefill, then single tokens and one 4-token
    chunk — gives the logits of one full forward over the same tokens (|Δ| ≤ 1e-4): the attended set
    of each query is the same both ways (for dense attention: step-by-step equals full)."""
    import torch

    from longctx.kvcache import cache_kwarg

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        model = lm.model
        ids = fixtures.token_ids(SEQ, seed=14)
        steps = [20, 1, 1, 1, 4, *([1] * (SEQ - 27))]
        with s.composed(lm) as pipe:
            full = outputs(lm, ids, pipe)
            cache = pipe.new_cache()
            parts, fed = [], 0
            with torch.no_grad():
                for n in steps:
                    mask = torch.ones(1, fed + n, dtype=torch.long)
                    out = model(
                        input_ids=ids[:, fed : fed + n],
                        attention_mask=mask,
                        use_cache=True,
                        **{cache_kwarg(model): cache},
                    )
                    parts.append(out.logits)
                    fed += n
        diff = difference(torch.cat(parts, dim=1), full, ATOL)
        if diff:
            s.fail(f"incremental decoding on tiny-{arch} to match the full forward ({s.words()})", diff)

    s.over(_causal_archs(s), run)


@check("attention.dtype_preserved")
def dtype_preserved(s: Subject) -> None:
    """On a bfloat16 model the attention returns bfloat16 (the dtype of its inputs) in every layer — read
    where the attention output enters the output projection — and the logits are finite."""
    import torch

    from longctx.runtime import iter_attention_modules

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        lm.model.to(torch.bfloat16)
        ids = fixtures.token_ids(SEQ, seed=15)
        seen: dict[int, torch.dtype] = {}

        def record(i: int) -> Any:
            def pre_hook(_module: Any, args: tuple[Any, ...]) -> None:
                seen.setdefault(i, args[0].dtype)

            return pre_hook

        hooks = []
        for m in iter_attention_modules(lm.model):
            proj = getattr(m, "o_proj", None)
            if isinstance(proj, torch.nn.Module):
                hooks.append(proj.register_forward_pre_hook(record(m.layer_idx)))
        error = None
        try:
            with s.composed(lm) as pipe, capture_attention(lm.model) as outs:
                try:
                    logits = outputs(lm, ids, pipe)
                except Exception as e:  # e.g. a float32 output meeting bfloat16 weights
                    error, logits = e, None
        finally:
            for h in hooks:
                h.remove()
        for i, t in outs.items():
            seen.setdefault(i, t.dtype)
        wrong = {i: str(d) for i, d in sorted(seen.items()) if d != torch.bfloat16}
        if wrong:
            s.fail(
                f"bfloat16 attention outputs on a bfloat16 tiny-{arch}",
                ", ".join(f"layer {i}: {d}" for i, d in wrong.items())
                + (f" (then the forward failed: {type(error).__name__}: {error})" if error else ""),
            )
        if error is not None:
            s.fail(f"a forward pass of a bfloat16 tiny-{arch}", f"{type(error).__name__}: {error}")
        if not torch.isfinite(logits.float()).all():
            s.fail(f"finite logits on a bfloat16 tiny-{arch}", "non-finite values")

    s.over(_causal_archs(s), run)


@check("attention.undo_restores")
def undo_restores(s: Subject) -> None:
    """After ``Pipeline.undo()`` the model is as before: bit-identical logits, the same config, module
    tree and attention implementation, and no per-layer context left on the attention modules."""
    check_undo(s, _causal_archs(s), seq=SEQ, seed=16)
