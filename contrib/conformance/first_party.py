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


# -- the RoPE scaling methods of the positional family (issue 5) ----------------------------------------


class DynamicNTKContract(PositionalContract):
    technique = "dynamic-ntk"
    # Dynamic NTK only changes RoPE past the original window L: inside it (the check's 48 tokens < 256) the
    # base is b·((s·L/L) − (s−1))^… = b at any factor, so its defaults are "no change" there. Beyond the
    # window no parameter is the identity (s = 1 still grows the base as L'/L).
    identity_params = {}


class YaRNContract(PositionalContract):
    technique = "yarn"
    identity_params = {"factor": 1.0}  # θ/1 and θ blended: θ; √(1/t) = 1 for s ≤ 1


class Llama3Contract(PositionalContract):
    technique = "llama3"
    identity_params = {"factor": 1.0}  # every band divides by 1


#: LongRoPE's factors are searched per model and have no defaults; the tiny fixtures' rotary dimension is
#: 16 (|D|/2 = 8 factors) on every architecture.
_LONGROPE_SHORT = (1.0, 1.0, 1.1, 1.2, 1.5, 1.8, 2.0, 2.0)
_LONGROPE_LONG = (1.0, 1.2, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


class LongRoPEContract(PositionalContract):
    technique = "longrope"
    params = {"short_factor": _LONGROPE_SHORT, "long_factor": _LONGROPE_LONG, "factor": 4.0}
    # λ_i = 1 in both sets and s = 1 (attention factor 1)
    identity_params = {"short_factor": (1.0,) * 8, "long_factor": (1.0,) * 8, "factor": 1.0}


class ABFContract(PositionalContract):
    technique = "abf"
    # declare an extended window so positional.finite_beyond_window runs (ABF claims none by default)
    params = {"base_factor": 50.0, "window_factor": 4.0}
    identity_params = {"base_factor": 1.0}  # θ' = 1·θ


FIRST_PARTY.update(
    {
        (c.family, c.technique): c  # type: ignore[misc]
        for c in (DynamicNTKContract, YaRNContract, Llama3Contract, LongRoPEContract, ABFContract)
    }
)


# -- Giraffe's truncated and power-scaled RoPE bases (issue 5) ----------------------------------------------


class TruncatedBasisContract(PositionalContract):
    technique = "truncated-basis"
    # declare an extended window so positional.finite_beyond_window runs (the basis claims none by itself)
    params = {"window_factor": 4.0}
    identity_params = {"a": 0.0, "b": 0.0}  # every θ_i > 0 is ≥ b: kept


class PowerScalingContract(PositionalContract):
    technique = "power-scaling"
    params = {"k": 0.5, "window_factor": 4.0}
    identity_params = {"k": 0.0}  # (1 − 2i/d)^0 = 1


FIRST_PARTY.update({(c.family, c.technique): c for c in (TruncatedBasisContract, PowerScalingContract)})  # type: ignore[misc]


# -- absolute position embeddings (encoders, issue 5) ---------------------------------------------------


class APEInterpolationContract(PositionalContract):
    technique = "ape-interpolation"
    archs = ("bert",)  # needs a learned absolute position table; the RoPE fixtures are refused
    identity_params = {"factor": 1.0}  # E'[j] = E[j/1] = E[j]


class LongCLIPContract(PositionalContract):
    technique = "long-clip"
    archs = ("bert",)
    identity_params = {"factor": 1.0}  # E'[j] = E[keep + (j − keep)/1] = E[j]


FIRST_PARTY.update({(c.family, c.technique): c for c in (APEInterpolationContract, LongCLIPContract)})  # type: ignore[misc]


# -- SelfExtend: grouped attention for distant keys (issue 5) -------------------------------------------


class SelfExtendContract(AttentionContract):
    technique = "self-extend"
    # a neighbour window shorter than the ~40-token inputs: the grouped scores are really exercised
    params = {"group_size": 2, "neighbor_window": 8}
    # a neighbour window over the whole input: every score uses exact positions (dense attention)
    dense_params = {"neighbor_window": 1024}


FIRST_PARTY.update({(c.family, c.technique): c for c in (SelfExtendContract,)})  # type: ignore[misc]
