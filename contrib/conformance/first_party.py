"""The contracts of longctx's own techniques: what each one promises, stated once.

:func:`~longctx.contrib.conformance.check_plugin` looks techniques up here (by family and name) when
their plugin ships no contract of its own; third-party techniques get the family's defaults.
"""

# Contract attributes are class-level declarations (ClassVar on the base classes).
# ruff: noqa: RUF012

from __future__ import annotations

from typing import Any

from longctx.contrib.conformance.contracts import (
    AttentionContract,
    AugmentationContract,
    Contract,
    EvaluationContract,
    KVContract,
    PositionalContract,
    ReductionContract,
)


class NativeContract(PositionalContract):
    technique = "native"
    identity_params = {}  # it is the identity


class PIContract(PositionalContract):
    technique = "pi"
    identity_params = {"factor": 1.0}  # θ_i / 1


class NTKContract(PositionalContract):
    technique = "ntk"
    identity_params = {"factor": 1.0}  # b · 1^(d/(d−2)) = b


class SdpaContract(AttentionContract):
    technique = "sdpa"
    dense_params = {}  # it is dense attention


class StreamingLLMContract(AttentionContract):
    technique = "streaming-llm"
    # sinks + window < the 40-token inputs: the sink+window pattern is really exercised
    params = {"sinks": 2, "window": 12}
    # a window over the whole input: every query sees every earlier token
    dense_params = {"sinks": 4, "window": 1024}


class DynamicContract(KVContract):
    technique = "dynamic"


class SinkWindowContract(KVContract):
    technique = "sink-window"
    params = {
        "sinks": 2,
        "window": 8,
    }  # holds 2 + 8 − 1 tokens: evicts within the fixtures' prompts
    no_eviction_params = {"sinks": 4, "window": 1024}


class TruncateMiddleContract(ReductionContract):
    technique = "truncate-middle"


class BM25Contract(ReductionContract):
    technique = "bm25"
    params = {"chunk_tokens": 32}  # several chunks per budget, so selection is exercised


#: Special ids outside the fixture documents' 16–255: knots, <D> </D> <S> <s> </S>, the ID alphabet.
_UTK_KNOTS = (300, 301, 302, 303)
_UTK_SORT = (310, 311, 312, 313, 314)
_UTK_IDS = tuple(range(320, 330))


class UntieKnotsContract(AugmentationContract):
    technique = "untie-knots"
    # every record untied (p = 1) with random cut points, so the RNG paths run
    params = {
        "seq_len": 64,
        "chunk_prob": 1.0,
        "split": "random",
        "knot_tokens": _UTK_KNOTS,
        "sort_tokens": _UTK_SORT,
        "id_tokens": _UTK_IDS,
        "id_length": 2,
    }
    preserves_tokens = True  # no truncation by default: every document token is kept
    # seq_len 64 over 24-token documents: the first record needs ⌈64/24⌉ = 3 documents
    documents_per_record = 3

    @classmethod
    def marker_tokens(cls, augmenter: Any) -> set[int]:
        c = augmenter.config
        eod = {c.eod_token} if c.eod_token is not None else set()
        return {*c.knot_tokens, *c.sort_tokens, *c.id_tokens, *eod}


class PasskeyContract(EvaluationContract):
    technique = "passkey"


#: (family, technique) -> contract, for every first-party technique.
FIRST_PARTY: dict[tuple[str, str], type[Contract]] = {
    (c.family, c.technique): c  # type: ignore[misc]
    for c in (
        NativeContract,
        PIContract,
        NTKContract,
        SdpaContract,
        StreamingLLMContract,
        DynamicContract,
        SinkWindowContract,
        TruncateMiddleContract,
        BM25Contract,
        UntieKnotsContract,
        PasskeyContract,
    )
}
