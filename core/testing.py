"""Offline test fixtures shared by longctx's tests and the conformance kit: a byte-level tokenizer
that needs no files, so tiny random models can round-trip real text."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

BYTE_SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
#: Vocabulary size of :func:`byte_tokenizer`: 4 special tokens + 256 bytes.
BYTE_VOCAB_SIZE = len(BYTE_SPECIALS) + 256


@lru_cache(maxsize=1)
def _byte_tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    # every byte is a token (ByteLevel's printable alphabet); specials first so pad=0, bos=1, eos=2
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {t: i for i, t in enumerate(BYTE_SPECIALS)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 1)]
    )
    return tok.to_str()


def byte_tokenizer() -> Any:
    """A transformers fast tokenizer over raw UTF-8 bytes (one token per byte, ``<bos>`` prepended,
    offsets mapping supported). Deterministic and offline; pairs with tiny models whose
    ``vocab_size >= BYTE_VOCAB_SIZE``."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_byte_tokenizer_json()),
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def random_ids(n: int, seed: int = 0, b: int = 1, *, vocab: int = 250) -> Any:
    """A ``(b, n)`` batch of random token ids in ``[5, vocab)`` (clear of the byte tokenizer's specials),
    deterministic by ``seed``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randint(5, vocab, (b, n), generator=g)


def rope_reference(x: Any, pos: Any, inv_freq: Any) -> Any:
    """RoPE as transformers applies it, for test oracles: ``x·cos(pθ) + rotate_half(x)·sin(pθ)``, with
    ``pos`` broadcasting against ``x[..., 0]``; angles in float32."""
    import torch

    from longctx.rope import rotate_half

    ang = pos.to(torch.float32)[..., None] * inv_freq.to(torch.float32)
    emb = torch.cat((ang, ang), dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def random_qkv(n: int, *, b: int = 2, h: int = 4, hkv: int = 2, d: int = 16, seed: int = 0) -> tuple[Any, Any, Any]:
    """Random ``q (b, h, n, d)``, ``k`` and ``v (b, hkv, n, d)`` for attention-function tests (GQA)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, n, d, generator=g)
    k = torch.randn(b, hkv, n, d, generator=g)
    v = torch.randn(b, hkv, n, d, generator=g)
    return q, k, v
