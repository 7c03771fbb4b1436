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
