"""Shared fixtures: tiny random models (no files, seconds to build) with an offline byte tokenizer."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("LONGCTX_STRICT_PLUGINS", "1")


def _tiny(arch: str, **overrides):
    from longctx.models import tiny_model

    return tiny_model(arch, **overrides)


@pytest.fixture
def tiny_llama():
    """A 2-layer random Llama (GQA) with the byte tokenizer."""
    return _tiny("llama")


@pytest.fixture
def tiny_gemma3():
    """A 4-layer random Gemma 3 (3 sliding layers with window 16, 1 full layer) with the byte tokenizer."""
    return _tiny("gemma3")


@pytest.fixture
def tiny_qwen2():
    return _tiny("qwen2")


@pytest.fixture
def tiny_bert():
    return _tiny("bert")


@pytest.fixture
def tiny():
    """Factory: ``tiny("llama", num_hidden_layers=3)``."""
    return _tiny


@pytest.fixture
def byte_tok():
    from longctx.testing import byte_tokenizer

    return byte_tokenizer()
