"""``truncate-middle``: keep the head and the tail of an over-long context, drop its middle.

Bai et al. 2023, "LongBench: A Bilingual, Multitask Benchmark for Long Context Understanding",
arXiv:2308.14508 (``pred.py``). LongBench's rule, with ``x_1 … x_n`` the context's tokens and ``B`` the
budget (their ``max_length``)::

    if n > B:  h = ⌊B/2⌋;  keep  x_1 … x_h  ⊕  x_{n−h+1} … x_n        (else keep everything)

— ``int(max_length/2)`` tokens from each end, so an odd budget keeps ``B − 1`` tokens; the middle is
where long-context models attend least ("lost in the middle"), and instructions at the start and the
question at the end survive.

Differences from ``pred.py``, both for exact provenance and a hard budget:

- LongBench decodes the two token slices and concatenates the strings. We keep the *character* spans
  of the source the kept tokens cover (from the fast tokenizer's offsets; other tokenizers by binary
  search over re-tokenized prefixes/suffixes) and join them with ``""``, so ``text`` is made of exact
  substrings of the source. A token that is one byte of a multi-byte character is kept only with the
  whole character.
- Token counts do not add across the join (two pieces may merge into different tokens), so the joined
  text is re-counted and, while it exceeds ``B``, both halves shrink by the excess (head first on odd
  excess): ``tokens_out ≤ B`` always holds.
- ``B = 1`` keeps nothing (``h = 0``); ``pred.py``'s ``tokens[-0:]`` would keep the whole input.
"""

from __future__ import annotations

from typing import Any

import attrs

from longctx.hooks import hookimpl
from longctx.params import positive
from longctx.text import Reduction, Span, count_tokens
from longctx.textsplit import TokenMap


@attrs.frozen
class TruncateMiddleConfig:
    """LongBench's single parameter: the token budget ``B`` (``max_length`` in ``pred.py``)."""

    budget: int = attrs.field(
        default=3500, validator=positive, metadata={"help": "max context tokens B; keeps ⌊B/2⌋ from each end"}
    )


def _spans(head: tuple[int, int], tail: tuple[int, int]) -> tuple[Span, ...]:
    """Sorted, non-overlapping, non-empty spans; touching halves merge into one span."""
    (hs, he), (ts, te) = head, tail
    ts = max(ts, he)
    if he > hs and te > ts and ts == he:
        return (Span(hs, te),)
    return tuple(Span(s, e) for s, e in ((hs, he), (ts, te)) if e > s)


class TruncateMiddle:
    """Keep the first and last ``⌊B/2⌋`` tokens (LongBench ``pred.py``)."""

    def __init__(self, config: TruncateMiddleConfig, ctx: Any = None) -> None:
        self.config = config

    def reduce(self, context: str, *, query: str | None = None, tokenizer: Any) -> Reduction:
        B = self.config.budget
        tm = TokenMap(tokenizer, context)
        n = tm.n
        if n <= B:
            spans = (Span(0, len(context)),) if context else ()
            return Reduction(context, spans, tokens_in=n, tokens_out=n, meta={"truncated": False})
        h_head = h_tail = B // 2
        while True:
            spans = _spans((0, tm.head_end(h_head)), (tm.tail_start(h_tail), len(context)))
            text = "".join(context[s.start : s.end] for s in spans)
            out = count_tokens(tokenizer, text)
            if out <= B:
                break
            # the join made extra tokens: shrink the halves by the excess, head first on an odd excess
            excess = min(out - B, h_head + h_tail)
            cut_head = min(h_head, max((excess + 1) // 2, excess - h_tail))
            h_head, h_tail = h_head - cut_head, h_tail - (excess - cut_head)
        return Reduction(
            text,
            spans,
            tokens_in=n,
            tokens_out=out,
            meta={"truncated": True, "head_tokens": h_head, "tail_tokens": h_tail},
        )


@hookimpl
def lc_register_context_reducers(register):
    register(
        "truncate-middle",
        config=TruncateMiddleConfig,
        build=TruncateMiddle,
        summary="Keep the first and last ⌊budget/2⌋ tokens of an over-long context (LongBench's truncation)",
        paper="Bai et al. 2023 (LongBench), arXiv:2308.14508",
    )
