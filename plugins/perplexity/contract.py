"""What ``perplexity`` promises to the longctx conformance kit (its ``EvaluationContract``), stated once.

The plugin module exposes it as ``LONGCTX_CONTRACTS`` (imported only when the kit asks).
"""

from __future__ import annotations

from longctx.contrib.conformance import EvaluationContract


class PerplexityContract(EvaluationContract):
    technique = "perplexity"
    # the "answer" is the ideal perplexity 1, computed by evaluate(), not a string copied from the text
    gold_in_context = False
    # scored by evaluate(pipeline, case) (a forward pass), not by generating an answer
    generative = False
