"""What both ``e2-llm`` components promise to the longctx conformance kit, stated once.

The plugin module exposes them as ``LONGCTX_CONTRACTS`` (imported only when the kit asks). Liu et al.
2024, arXiv:2401.06951.
"""

# Contract attributes are class-level declarations (ClassVar on the base classes).
# ruff: noqa: RUF012

from __future__ import annotations

from longctx.contrib.conformance import AugmentationContract, PositionalContract


class E2LLMAugmentationContract(AugmentationContract):
    technique = "e2-llm"
    # R = 64 over the fixtures' 24-token documents: the first record needs ⌈64/24⌉ = 3 documents
    params = {"seq_len": 64}
    documents_per_record = 3
    preserves_tokens = True  # records are the documents' tokens, packed; nothing added (no eod_token)


class E2LLMPositionalContract(PositionalContract):
    technique = "e2-llm"
    identity_params = {"factor": 1.0}  # θ_i / 1
