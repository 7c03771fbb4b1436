"""The longctx plugin-conformance kit: prove a plugin honours the contract of its family.

Three layers over one set of checks (plain functions with stable names, see :mod:`.checks`):

1. **Functions** (no pytest): :func:`check_plugin` and :func:`check_technique` run the static checks
   (entry point, hookimpls, names, config, CLI/TOML round-trip, Protocol, ``describe()``) and the
   family's behavioural checks on tiny fixture models, and return a :class:`Report`.
2. **Contract classes**, one per family (:class:`PositionalContract`, :class:`AttentionContract`,
   :class:`KVContract`, :class:`ReductionContract`, :class:`AugmentationContract`,
   :class:`EvaluationContract`, and :class:`PluginContract`): subclass one in a test file, name the
   technique, and pytest runs one test per check, with strict expected failures.
3. **pytest and CLI**: ``pytest --lc-plugin NAME`` runs the contracts of an installed plugin without any
   test file; ``lc check NAME [--json]`` prints the same report.

Every fixture lives in the kit (:mod:`.fixtures`): tiny random models of each architecture, the byte
tokenizer, generated texts and documents — nothing is read from disk or the network.
"""

from __future__ import annotations

from longctx.contrib.conformance.checks import (
    Check,
    CheckFailure,
    CheckSkipped,
    all_checks,
    describe_checks,
    get_check,
)
from longctx.contrib.conformance.contracts import (
    AttentionContract,
    AugmentationContract,
    Contract,
    EvaluationContract,
    KVContract,
    PluginContract,
    PositionalContract,
    ReductionContract,
)
from longctx.contrib.conformance.report import CheckResult, Report
from longctx.contrib.conformance.runner import (
    check_plugin,
    check_technique,
    contract_for,
    default_registry,
    first_party_plugins,
    make_test_classes,
)

__all__ = [
    "AttentionContract",
    "AugmentationContract",
    "Check",
    "CheckFailure",
    "CheckResult",
    "CheckSkipped",
    "Contract",
    "EvaluationContract",
    "KVContract",
    "PluginContract",
    "PositionalContract",
    "ReductionContract",
    "Report",
    "all_checks",
    "check_plugin",
    "check_technique",
    "contract_for",
    "default_registry",
    "describe_checks",
    "first_party_plugins",
    "get_check",
    "make_test_classes",
]
