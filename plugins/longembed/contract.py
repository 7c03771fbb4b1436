"""What ``longembed-passkey`` and ``longembed-needle`` promise to the longctx conformance kit, stated once.

The plugin module exposes them as ``LONGCTX_CONTRACTS`` (imported only when the kit asks). The defaults
hold: the answer (the key, the needle sentence) is copied into the relevant document, and ``score``
compares the top document's answer with it exactly, so the gold answer scores 1 and wrong ones 0.
"""

# Contract attributes are class-level declarations (ClassVar on the base classes).
# ruff: noqa: RUF012

from __future__ import annotations

from longctx.contrib.conformance import EvaluationContract


class LongEmbedPasskeyContract(EvaluationContract):
    technique = "longembed-passkey"
    # a small pool keeps the checks fast (each query is a case)
    params = {"candidates": 4, "queries": 2}


class LongEmbedNeedleContract(EvaluationContract):
    technique = "longembed-needle"
    params = {"candidates": 4, "queries": 2}
