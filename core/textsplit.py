"""Offline text splitting shared by the reducers: sentences, token-aware chunks, token↔character maps.

DESIGN forbids nltk's punkt (it downloads at run time), so sentences come from a small regex splitter:
a sentence ends after ``.``, ``!``, ``?`` (or their CJK forms, or ``…``), optionally followed by closing
quotes/brackets, when whitespace follows — unless the word before the period is a common abbreviation
(``Mr.``, ``e.g.``) or a single letter (an initial); a line break always ends a sentence. Every span
returned is a half-open character range of the *original* string and the spans tile it exactly (the
whitespace between two sentences starts the later one), so reducers can keep exact provenance.

Token counts are taken in the pipeline's tokenizer. :class:`TokenMap` tokenizes a text once and, when
the tokenizer is a fast one (``return_offsets_mapping``), answers "how many tokens in ``text[s:e]``" and
"where do the first/last ``k`` tokens end/start" from the offsets; with any other tokenizer it falls
back to re-tokenizing substrings (exact for the substring, found by binary search where a position is
asked for). Token counts do not add across joins, so callers re-count what they assemble.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

__all__ = ["TokenMap", "chunk_spans", "sentence_spans"]

_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt vs etc e.g i.e cf al fig no vol pp ed inc ltd co jan feb mar apr jun "
    "jul aug sep sept oct nov dec".split()
)
# end punctuation, then closing quotes/brackets; the boundary is where the following whitespace begins
_END = re.compile(r"[.!?…。！？]+[\"'”’»)\]]*(?=\s)|[。！？]+[\"'”’»)\]]*|\n")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the sentences of ``text``, tiling it exactly.

    A span is the whitespace before a sentence plus the sentence itself (so a kept span starts where a
    word-initial token such as ``" The"`` or ``"▁The"`` starts); trailing whitespace of the text joins
    the last span. ``""`` has no spans.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _END.finditer(text):
        end = m.start() if m.group() == "\n" else m.end()  # a line break starts the next span
        if m.group().startswith(".") and m.group() == "." * len(m.group()):
            word = re.search(r"(\S+)$", text[start : m.start()])
            w = word.group(1).lower().lstrip("\"'“‘([") if word else ""
            if w in _ABBREVIATIONS or (len(w) == 1 and w.isalpha()):
                continue
        if text[start:end].strip():
            spans.append((start, end))
            start = end
    if start < len(text):
        if spans and not text[start:].strip():
            spans[-1] = (spans[-1][0], len(text))
        else:
            spans.append((start, len(text)))
    return spans


class TokenMap:
    """Token positions of one text in one tokenizer (no special tokens).

    ``offsets`` is the fast tokenizer's ``offset_mapping`` (``None`` when the tokenizer has none).
    """

    def __init__(self, tokenizer: Any, text: str) -> None:
        self.tokenizer = tokenizer
        self.text = text
        self.offsets: list[tuple[int, int]] | None = None
        try:
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            offsets = enc.get("offset_mapping") if hasattr(enc, "get") else None
            if offsets is not None:
                self.offsets = [(int(s), int(e)) for s, e in offsets]
            ids = enc["input_ids"]
        except (NotImplementedError, ValueError, TypeError):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        self.n = len(ids)
        if self.offsets is not None and len(self.offsets) != self.n:  # pragma: no cover - defensive
            self.offsets = None
        self._starts = [s for s, _ in self.offsets] if self.offsets is not None else None

    def _count(self, s: str) -> int:
        return len(self.tokenizer(s, add_special_tokens=False)["input_ids"]) if s else 0

    def count(self, start: int, end: int) -> int:
        """Tokens of ``text[start:end]``: with offsets, the tokens that start inside the range (each
        token of the whole text counted once over a tiling); otherwise ``text[start:end]`` re-tokenized."""
        if start >= end:
            return 0
        if self._starts is None:
            return self._count(self.text[start:end])
        return bisect.bisect_left(self._starts, end) - bisect.bisect_left(self._starts, start)

    def head_end(self, k: int, lo: int = 0, hi: int | None = None) -> int:
        """The character where the first ``k`` tokens of ``text[lo:hi]`` end (``lo`` when ``k <= 0``)."""
        hi = len(self.text) if hi is None else hi
        if k <= 0:
            return lo
        if self._starts is not None:
            i = bisect.bisect_left(self._starts, lo)
            j = bisect.bisect_left(self._starts, hi)
            if k >= j - i:
                return hi
            # cut where token k+1 starts: the kept range then holds at most k token starts (fewer when
            # token k is a byte of a character that token k+1 continues)
            return max(lo, self._starts[i + k])
        # largest c in [lo, hi] with count(text[lo:c]) <= k (binary search; counts grow with c)
        a, b = lo, hi
        while a < b:
            mid = (a + b + 1) // 2
            if self._count(self.text[lo:mid]) <= k:
                a = mid
            else:
                b = mid - 1
        return a

    def tail_start(self, k: int, lo: int = 0, hi: int | None = None) -> int:
        """The character where the last ``k`` tokens of ``text[lo:hi]`` start (``hi`` when ``k <= 0``)."""
        hi = len(self.text) if hi is None else hi
        if k <= 0:
            return hi
        if self._starts is not None:
            i = bisect.bisect_left(self._starts, lo)
            j = bisect.bisect_left(self._starts, hi)
            if k >= j - i:
                return lo
            c = self._starts[j - k]
            m = bisect.bisect_right(self._starts, c)
            if bisect.bisect_left(self._starts, c) < j - k:  # token k-from-the-end continues a character
                return self._starts[m] if m < j else hi
            return max(lo, c)
        # smallest c in [lo, hi] with count(text[c:hi]) <= k
        a, b = lo, hi
        while a < b:
            mid = (a + b) // 2
            if self._count(self.text[mid:hi]) <= k:
                b = mid
            else:
                a = mid + 1
        return a


def chunk_spans(tokens: TokenMap, max_tokens: int) -> list[tuple[int, int]]:
    """Chunks of ``tokens.text`` at sentence boundaries, each of at most ``max_tokens`` tokens.

    Consecutive sentences are merged greedily while the chunk stays within ``max_tokens``; a sentence
    longer than that is cut into pieces of ``max_tokens`` tokens at token boundaries. The chunks tile
    the text exactly. Counts are :meth:`TokenMap.count` counts, i.e. in the tokenization of the whole
    text.
    """
    if max_tokens <= 0:
        raise ValueError("max_tokens must be > 0")
    pieces: list[tuple[int, int, int]] = []  # (start, end, tokens): sentences, long ones cut
    for s, e in sentence_spans(tokens.text):
        n = tokens.count(s, e)
        while n > max_tokens:
            cut = tokens.head_end(max_tokens, s, e)
            k = max_tokens
            while cut <= s and k < n:  # a character of more than max_tokens tokens: take it whole
                k += 1
                cut = tokens.head_end(k, s, e)
            if cut <= s:
                break
            pieces.append((s, cut, tokens.count(s, cut)))
            s = cut
            n = tokens.count(s, e)
        if s < e:
            pieces.append((s, e, n))
    chunks: list[tuple[int, int]] = []
    cur_start, cur_end, cur_n = 0, 0, 0
    for s, e, n in pieces:
        if cur_end > cur_start and cur_n + n > max_tokens:
            chunks.append((cur_start, cur_end))
            cur_start, cur_n = s, 0
        cur_end = e
        cur_n += n
    if cur_end > cur_start:
        chunks.append((cur_start, cur_end))
    return chunks
