"""Data types shared by the text-side families: reductions (with provenance) and training records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs


@attrs.frozen
class Span:
    """A half-open character range ``[start, end)`` of the source text that a reducer kept."""

    start: int
    end: int

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"invalid span [{self.start}, {self.end})")


@attrs.frozen
class Reduction:
    """The result of a context reducer.

    ``text`` is the reduced context; ``spans`` are the kept pieces of the source, sorted and
    non-overlapping, so that ``text`` is those pieces joined by ``separator``; token counts are in the
    pipeline's tokenizer. When a pipeline chains reducers, the spans of the result it reports refer to
    the input of the *last* reducer (``tokens_in`` to the original context).
    """

    text: str
    spans: tuple[Span, ...]
    tokens_in: int
    tokens_out: int
    separator: str = ""
    meta: Mapping[str, Any] = attrs.field(factory=dict)

    def pieces(self, source: str) -> list[str]:
        """The kept pieces of ``source``, in order (``separator.join(pieces) == text``)."""
        return [source[s.start : s.end] for s in self.spans]

    def to_json(self) -> dict[str, Any]:
        return {
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "spans": [[s.start, s.end] for s in self.spans],
            **dict(self.meta),
        }


@attrs.frozen
class Record:
    """One training record made by an augmenter.

    ``input_ids`` is the sequence to train on; ``loss_mask[i]`` says whether token ``input_ids[i]`` is a
    training target (label-aligned: ``labels = where(loss_mask, input_ids, -100)``, shifted inside the
    model as HF causal LMs do); ``meta`` carries technique-specific provenance (document ids, chunk
    order, …).
    """

    input_ids: Sequence[int]
    loss_mask: Sequence[int]
    meta: Mapping[str, Any] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        if len(self.input_ids) != len(self.loss_mask):
            raise ValueError("input_ids and loss_mask must have the same length")


def count_tokens(tokenizer: Any, text: str) -> int:
    """Number of tokens of ``text`` without special tokens (BOS is counted by the pipeline)."""
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])
