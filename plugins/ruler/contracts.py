"""The conformance contracts of the RULER tasks: the lengths each needs in the kit's byte tokenizer.

One byte is one token there, so prompts are ~4× longer than in a real tokenizer: the niah templates plus
their 128-token budget need ~500 bytes, the few-shot tasks (vt, cwe) a few thousand, and the haystack
of distractor needles grows one needle (~60–110 bytes) at a time, so its lengths land within one needle
of the target rather than within the 2 % tolerance.
"""

from __future__ import annotations

from longctx.contrib.conformance.contracts import EvaluationContract

__all__ = ["CONTRACTS"]


def _contract(technique: str, **attrs: object) -> type[EvaluationContract]:
    title = "".join(p.capitalize() for p in technique.split("-"))
    return type(f"{title}Contract", (EvaluationContract,), {"technique": technique, "__module__": __name__, **attrs})


CONTRACTS: tuple[type[EvaluationContract], ...] = (
    *(
        _contract(name, lengths=(1024, 2048))
        for name in (
            "ruler-niah-single-1",
            "ruler-niah-single-2",
            "ruler-niah-single-3",
            "ruler-niah-multikey-1",
            "ruler-niah-multivalue",
            "ruler-niah-multiquery",
        )
    ),
    # one distractor needle per line: a uuid one is ~110 bytes, 5.4 % of 2048
    _contract("ruler-niah-multikey-2", lengths=(2048, 4096), length_tolerance=0.06),
    _contract("ruler-niah-multikey-3", lengths=(2048, 4096), length_tolerance=0.06),
    # the one-shot example alone is fitted to 500 tokens
    _contract("ruler-vt", lengths=(2048, 4096)),
    # below 4096 the short setting; from 4096 on the 40-word example and 30x common words need ~6k bytes
    _contract("ruler-cwe", lengths=(2048, 8192)),
    # the three answers must be strictly more frequent than rank 5: a few hundred coded words
    _contract("ruler-fwe", lengths=(2048, 4096)),
    _contract("ruler-qa", lengths=(1024, 2048)),
)
