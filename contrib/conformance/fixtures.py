"""Every fixture the contracts use, built in code: no files, no network, seconds on a CPU.

* tiny random models of each supported architecture (:func:`longctx.models.tiny_model`: Llama, Gemma 3
  with sliding + full layers, Qwen2, BERT) — a *fresh* model per call, so that a technique that fails to
  undo its changes cannot leak into the next check;
* the byte tokenizer (:func:`longctx.testing.byte_tokenizer`: one token per UTF-8 byte, BOS prepended);
* sample texts generated from a fixed word list with non-ASCII words (accents, Cyrillic, CJK, an emoji)
  and a "needle" sentence, plus a query about it;
* documents as token-id lists, and a document stream that counts what it gave out.

Everything is deterministic for a given seed (``random.Random``/``torch.Generator``, never global state).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from typing import Any

#: Causal tiny architectures (all RoPE); BERT has absolute positions and no LM head.
CAUSAL_ARCHS: tuple[str, ...] = ("llama", "gemma3", "qwen2")
ALL_ARCHS: tuple[str, ...] = (*CAUSAL_ARCHS, "bert")

_WORDS = (
    "the river runs past a quiet town where old stone houses lean over narrow streets and "
    "every morning the baker opens his shop before the bells ring over the market square while "
    "travellers count their coins and children chase pigeons between the fountains"
).split()
_FOREIGN = ("café", "naïve", "Zürich", "façade", "Ångström", "Москва", "東京", "日本語", "señor", "crème", "🙂")

#: The needle sentence of :func:`sample_text` and the query that asks for it.
NEEDLE = "The pass key is 48213."
QUERY = "What is the pass key?"


def tiny(arch: str, **overrides: Any) -> Any:
    """A fresh tiny random model (``LoadedModel``: ``.model``, ``.tokenizer``) of ``arch``."""
    from longctx.models import tiny_model

    return tiny_model(arch, **overrides)


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Any:
    from longctx.testing import byte_tokenizer

    return byte_tokenizer()


def tokenizer() -> Any:
    """The byte tokenizer (shared; it is stateless)."""
    return _tokenizer()


def is_causal(lm: Any) -> bool:
    return hasattr(lm.model, "generate") and "CausalLM" in type(lm.model).__name__


def token_ids(n: int, *, seed: int = 0, batch: int = 1, low: int = 5, high: int = 250) -> Any:
    """``(batch, n)`` random token ids in ``[low, high)`` (valid for every tiny model's vocabulary)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (batch, n), generator=g)


def sentences(n: int, *, seed: int = 0, foreign: bool = True) -> list[str]:
    """``n`` sentences of 6–14 words; with ``foreign``, about one word in six is non-ASCII."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = []
        for _ in range(rng.randint(6, 14)):
            pool = _FOREIGN if foreign and rng.random() < 0.17 else _WORDS
            words.append(rng.choice(pool))
        words[0] = words[0][:1].upper() + words[0][1:]
        out.append(" ".join(words) + rng.choice((".", ".", ".", "!", "?")))
    return out


def sample_text(n_sentences: int = 60, *, seed: int = 0, foreign: bool = True, needle: bool = True) -> str:
    """A paragraph of generated sentences (with line breaks every few sentences) and, with ``needle``,
    :data:`NEEDLE` near the middle."""
    rng = random.Random(seed + 1)
    sents = sentences(n_sentences, seed=seed, foreign=foreign)
    if needle:
        sents.insert(len(sents) // 2, NEEDLE)
    parts = []
    for i, s in enumerate(sents):
        parts.append(s)
        parts.append("\n" if rng.random() < 0.15 and i < len(sents) - 1 else " ")
    return "".join(parts[:-1])


def edge_texts() -> dict[str, str]:
    """Inputs a reducer must survive: empty, one character, whitespace only, short non-ASCII."""
    return {
        "empty": "",
        "one character": "a",
        "whitespace": "  \n \t ",
        "short non-ASCII": "Zürich — 東京 🙂 café.",
        "long non-ASCII": " ".join(_FOREIGN * 12),
    }


def documents(n: int = 12, *, seed: int = 0, vocab: tuple[int, int] = (16, 256), lengths: tuple[int, int] = (5, 40)):
    """``n`` documents as token-id lists with ids in ``[vocab[0], vocab[1])`` and lengths in ``lengths``."""
    rng = random.Random(seed)
    return [[rng.randrange(*vocab) for _ in range(rng.randint(*lengths))] for _ in range(n)]


class StreamOverrun(Exception):
    """Raised by :class:`DocumentStream` when more documents are pulled than allowed."""


class DocumentStream:
    """An endless iterator of documents that counts how many were pulled and raises
    :class:`StreamOverrun` once more than ``limit`` are — an augmenter that materialises its input
    (``list(documents)``) trips it instead of hanging."""

    def __init__(self, limit: int, *, length: int = 24, seed: int = 0, vocab: tuple[int, int] = (16, 256)) -> None:
        self.limit = limit
        self.length = length
        self.pulled = 0
        self._rng = random.Random(seed)
        self._vocab = vocab

    def __iter__(self) -> Iterator[list[int]]:
        return self

    def __next__(self) -> list[int]:
        if self.pulled >= self.limit:
            raise StreamOverrun(f"pulled more than {self.limit} documents")
        self.pulled += 1
        return [self._rng.randrange(*self._vocab) for _ in range(self.length)]
