"""What ``knorm`` promises to the longctx conformance kit: its ``KVContract``, stated once.

The plugin module exposes it as ``LONGCTX_CONTRACTS`` (imported only when the kit asks), so ``lc check
knorm``, ``pytest --lc-plugin knorm`` and this distribution's own tests (``class TestKnorm(KnormContract)``)
all check knorm with the same declarations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from longctx.contrib.conformance import KVContract


class KnormContract(KVContract):
    technique = "knorm"
    #: every causal fixture: Llama (GQA), Gemma 3 (sliding + full layers: only the full layer evicts), Qwen2
    archs = ("llama", "gemma3", "qwen2")
    #: 16 tokens per layer and KV head, the newest 4 always among them: evicts within the fixtures' prompts
    params: ClassVar[Mapping[str, Any]] = {"budget": 16, "window": 4}
    eviction_params: ClassVar[Mapping[str, Any]] = {"budget": 16, "window": 4}
    #: a budget beyond the fixtures' ~40 tokens: nothing is evicted, so it must behave as the dynamic cache
    no_eviction_params: ClassVar[Mapping[str, Any]] = {"budget": 1024}
    # budget: read from describe()["max_tokens_per_layer"] (= budget); nothing expected to fail
