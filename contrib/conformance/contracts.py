"""Contract base classes, one per family: declare what a technique promises, get one test per check.

A plugin author's whole test file::

    from longctx.contrib.conformance import KVContract

    class TestKnorm(KVContract):
        technique = "knorm"
        params = {"budget": 32}                                   # optional
        expected_failures = {"kv.no_eviction_equals_dynamic": "reason"}  # optional, strict

pytest collects ``test_check`` once per check of the contract (ids ``knorm:kv.nbytes_matches_tensors``,
so ``pytest -k nbytes`` selects one); a skipped check is a pytest skip, a check listed in
``expected_failures`` is a strict xfail (it *must* fail: if it passes, the test fails, as with
scikit-learn's ``xfail_strict``).

The same classes carry the per-technique expectations :func:`~longctx.contrib.conformance.check_plugin`
uses: which parameters mean "no change", which switch sparsity off, which make a store evict, the
reducer's budget parameter, whether an augmenter preserves tokens… Every attribute has a documented
default, so an unknown third-party technique is checked with the family's defaults (and the checks that
need a declaration are skipped with a reason saying which attribute to set).

This module does not import pytest: the test parametrisation lives in ``pytest_generate_tests``, which
pytest calls on the class, and the kit's functions stay usable without pytest.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, ClassVar


class Contract:
    """Base of every contract. Subclass a family contract and set ``technique`` (or use
    :class:`PluginContract` and set ``plugin``)."""

    #: The family the technique belongs to (set by the family contracts).
    family: ClassVar[str | None] = None
    #: The technique's registered name.
    technique: ClassVar[str | None] = None
    #: Parameters for the behavioural checks, over the config's defaults (CLI-style names).
    params: ClassVar[Mapping[str, Any]] = {}
    #: ``{check name: reason}``: checks known to fail, run as strict expected failures.
    expected_failures: ClassVar[Mapping[str, str]] = {}
    #: The tiny fixture architectures the checks run on (see :mod:`longctx.contrib.conformance.fixtures`).
    archs: ClassVar[tuple[str, ...]] = ("llama",)
    #: The registry to take the technique from; ``None``: every installed plugin (loaded non-strictly,
    #: so a broken plugin is reported by the checks instead of stopping collection).
    registry: ClassVar[Any] = None

    # -- the kit side ---------------------------------------------------------------------------------

    @classmethod
    def subject_id(cls) -> str:
        return str(cls.technique)

    @classmethod
    def check_groups(cls) -> tuple[str, ...]:
        return ("static", cls.family) if cls.family else ()

    @classmethod
    def check_names(cls) -> list[str]:
        """The checks this contract runs, in order; validates ``expected_failures`` against them."""
        from longctx.contrib.conformance.checks import checks_in

        names = [c.name for c in checks_in(*cls.check_groups())]
        unknown = sorted(set(cls.expected_failures) - set(names))
        if unknown:
            raise ValueError(
                f"{cls.__name__}.expected_failures names unknown check(s) {', '.join(unknown)}; "
                f"the checks of this contract are: {', '.join(names)}"
            )
        return names

    @classmethod
    def get_registry(cls) -> Any:
        from longctx.contrib.conformance.runner import default_registry

        return cls.registry if cls.registry is not None else default_registry()

    # -- the pytest side --------------------------------------------------------------------------------

    def pytest_generate_tests(self, metafunc: Any) -> None:
        """One ``test_check`` per check; ``expected_failures`` become strict xfail marks."""
        if "lc_check" not in metafunc.fixturenames:
            return
        import pytest

        cls = metafunc.cls
        if cls.family is not None and not cls.technique:
            raise ValueError(f"{cls.__name__}: set technique = 'NAME' (the registered technique to check)")
        if cls.family is None and not getattr(cls, "plugin", None):
            raise ValueError(f"{cls.__name__}: subclass a family contract (KVContract, …) or PluginContract")
        params = []
        for name in cls.check_names():
            marks = []
            if name in cls.expected_failures:
                marks.append(pytest.mark.xfail(reason=cls.expected_failures[name], strict=True))
            params.append(pytest.param(name, id=f"{cls.subject_id()}:{name}", marks=marks))
        metafunc.parametrize("lc_check", params)

    def test_check(self, lc_check: str) -> None:
        """Run one conformance check (the parameter) on this contract's technique."""
        import pytest

        from longctx.contrib.conformance.runner import run_contract_check

        result = run_contract_check(type(self), lc_check)
        if result.outcome == "skipped":
            pytest.skip(f"{type(self).subject_id()}:{lc_check}: {result.reason or 'skipped'}")
        if result.outcome == "failed":
            pytest.fail(result.text() + _notes(result), pytrace=False)


def _notes(result: Any) -> str:
    return "".join(f"\n  note: {n}" for n in result.notes)


class PluginContract(Contract):
    """The plugin-level checks (``plugin.*``) for the plugin (entry point) named ``plugin``."""

    #: The plugin's entry-point name.
    plugin: ClassVar[str | None] = None

    @classmethod
    def subject_id(cls) -> str:
        return str(cls.plugin)

    @classmethod
    def check_groups(cls) -> tuple[str, ...]:
        return ("plugin",)


class PositionalContract(Contract):
    """Positional encodings: identity when told "no change", finite beyond the window, sliding layers
    untouched where claimed, undo restores the model."""

    family = "positional"
    archs = ("llama", "gemma3", "qwen2", "bert")
    #: Parameters meaning "no change" (``{"factor": 1}`` for a scaled RoPE; ``{}`` for an identity
    #: technique); ``None`` skips ``positional.no_change_is_identity``.
    identity_params: ClassVar[Mapping[str, Any] | None] = None
    #: Whether the technique, with ``params``, leaves Gemma 3's sliding-window layers alone (full-layer
    #: methods such as PI/NTK with ``layers=full``).
    sliding_layers_untouched: ClassVar[bool] = True
    #: Input length for ``positional.finite_beyond_window`` when the pipeline claims no bound, in multiples
    #: of the original window (and the cap on a claimed one).
    beyond_window_factor: ClassVar[int] = 4


class AttentionContract(Contract):
    """Attention patterns: dense when sparsity is off, causal, padding-safe, incremental = full, dtype
    preserved, undo restores the model."""

    family = "attention"
    archs = ("llama", "gemma3")
    #: Parameters that switch the pattern's sparsity off (``{"window": 1024}``: a window over the whole
    #: input); ``{}`` for a dense technique; ``None`` skips ``attention.dense_when_sparsity_off``.
    dense_params: ClassVar[Mapping[str, Any] | None] = None


class KVContract(Contract):
    """KV stores: honest ``nbytes``, logical length, no-eviction = dynamic cache, budget kept, crop/reset."""

    family = "kv"
    archs = ("llama", "gemma3")
    #: Parameters under which nothing is evicted for the fixtures' ~40 tokens; ``None``: ``params``.
    no_eviction_params: ClassVar[Mapping[str, Any] | None] = None
    #: Parameters that make the store evict within a few dozen tokens; ``None``: ``params``.
    eviction_params: ClassVar[Mapping[str, Any] | None] = None
    #: The per-layer token budget under ``eviction_params``; ``None``: ``describe()["max_tokens_per_layer"]``
    #: (no budget declared either way skips ``kv.budget_respected``).
    budget: ClassVar[int | None] = None


class ReductionContract(Contract):
    """Context reducers: within budget, exact provenance, sorted spans, the query kept, deterministic,
    odd inputs handled."""

    family = "reduction"
    #: The config field holding the token budget; ``None`` (or a name the config lacks) skips
    #: ``reduction.within_budget``.
    budget_param: ClassVar[str | None] = "budget"
    #: The budget the checks set (tokens of the byte tokenizer: a few sentences; the fixture texts are
    #: ~15× longer).
    budget: ClassVar[int] = 256


class AugmentationContract(Contract):
    """Augmenters: deterministic by seed, streaming, record schema, token preservation where claimed."""

    family = "augmentation"
    #: Whether every document token reappears in the records (``augmentation.preserves_tokens``).
    preserves_tokens: ClassVar[bool] = False
    #: Token ids the technique adds (knots, separators, …), excluded when counting preserved tokens;
    #: override :meth:`marker_tokens` to read them from the built augmenter.
    markers: ClassVar[Collection[int]] = ()
    #: The most documents the first record may pull from a stream of ``stream_document_length``-token
    #: documents.
    documents_per_record: ClassVar[int] = 16
    stream_document_length: ClassVar[int] = 24
    #: Token ids of the fixture documents (``[low, high)``).
    document_vocab: ClassVar[tuple[int, int]] = (16, 256)

    @classmethod
    def marker_tokens(cls, augmenter: Any) -> Collection[int]:
        """The token ids ``augmenter`` adds to its records (default: ``markers``)."""
        return cls.markers


class EvaluationContract(Contract):
    """Evaluation tasks: reproducible cases, lengths within tolerance, the gold answer in the context,
    a scorer that separates gold from wrong, taxonomy tags."""

    family = "evaluation"
    #: Case lengths (prompt with BOS + generation budget, byte tokenizer), depths and seeds to build.
    lengths: ClassVar[tuple[int, ...]] = (512, 1024)
    depths: ClassVar[tuple[float, ...]] = (0.0, 0.5, 1.0)
    seeds: ClassVar[tuple[int, ...]] = (0, 1)
    #: Allowed shortfall below the target length (fraction); ``None``: the config's ``tolerance`` when
    #: it has one, else 0.05.
    length_tolerance: ClassVar[float | None] = None
    #: False for tasks whose answer is computed from the context rather than copied from it
    #: (arithmetic, counting, SQL aggregates, …): ``evaluation.gold_in_context`` is then skipped.
    gold_in_context: ClassVar[bool] = True
    #: False for tasks that score through their own ``evaluate(pipeline, case)`` (perplexity, embedding
    #: retrieval) instead of scoring a generated text: ``evaluation.scorer_gold_and_wrong`` is skipped.
    generative: ClassVar[bool] = True

    @classmethod
    def wrong_answers(cls, case: Any) -> list[str]:
        """Answers the scorer must give 0.0: empty, another number (for a numeric gold answer), and an
        unrelated phrase."""
        gold = str(case.answer).strip()
        out = ["", "I could not find it."]
        if gold.lstrip("-").isdigit():
            out.append(str(int(gold) + 1))
        return out


FAMILY_CONTRACTS: dict[str, type[Contract]] = {
    c.family: c  # type: ignore[misc]
    for c in (
        PositionalContract,
        AttentionContract,
        KVContract,
        ReductionContract,
        AugmentationContract,
        EvaluationContract,
    )
}
