"""Deliberately broken plugins: the conformance kit catches each violation with a precise message — the
check's name, what was expected and what was seen.

The plugins live in ``tests/broken_plugins/`` and are loaded through fake entry points next to the real
ones (so the default techniques compose), non-strictly: a plugin the kernel refuses is recorded as
failed, and the kit still inspects it from its module.
"""

# Contract attributes are class-level declarations (ClassVar on the base classes).
# ruff: noqa: RUF012

from __future__ import annotations

import importlib
import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from click.testing import CliRunner

from longctx.cli_check import check_cmd
from longctx.contrib.conformance import check_plugin, check_technique
from longctx.contrib.conformance.first_party import (
    PIContract,
    StreamingLLMContract,
    UntieKnotsContract,
)
from longctx.registry import ENTRY_POINT_GROUP, load_registry

HERE = Path(__file__).resolve().parent

MODULES = (
    "import_error",
    "no_defaults",
    "causality_leak",
    "lying_nbytes",
    "over_budget",
    "nondeterministic",
    "generous_scorer",
    "bad_hookimpl",
    "duplicate_name",
    "assorted_model",
    "assorted_text",
    "refused",
)


class FakeEntryPoint:
    """An entry point of the ``longctx.plugins`` group that is not installed: ``load`` imports a module."""

    dist = None

    def __init__(self, module: str) -> None:
        self.name = "broken-" + module.replace("_", "-")
        self.value = f"broken_plugins.{module}"

    def load(self) -> object:
        return importlib.import_module(self.value)


@pytest.fixture(scope="module")
def registry():
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    eps = [*entry_points(group=ENTRY_POINT_GROUP), *(FakeEntryPoint(m) for m in MODULES)]
    return load_registry(strict=False, entry_points_=eps)


def _only_failures(report, subject=None):
    return {r.check for r in report if r.outcome == "failed" and (subject is None or r.subject == subject)}


# -- the seven violations of the issue ---------------------------------------------------------------------


def test_a_plugin_that_fails_to_import(registry):
    assert registry.plugins["broken-import-error"].status == "failed"
    report = check_plugin("broken-import-error", registry=registry)
    r = report.result("plugin.entry_point_loads")
    assert r.outcome == "failed"
    assert r.expected == "the entry point to import and yield the plugin object"
    assert (
        "broken_plugins.import_error" in r.seen and "No module named 'longctx_missing_dependency_for_tests'" in r.seen
    )
    assert report.result("plugin.hookimpls_validate").outcome == "skipped"
    assert not report.ok


def test_a_config_without_defaults(registry):
    # the kernel refuses the registration; the kit still names the technique and the rule it breaks
    assert "must construct from its defaults" in registry.plugins["broken-no-defaults"].error
    report = check_plugin("broken-no-defaults", registry=registry)
    r = report.result("static.config_defaults_construct", "reduction/no-defaults")
    assert r.outcome == "failed"
    assert r.expected == "a default for every field of NoDefaultsConfig" and r.seen == "no default for budget"
    assert "static.config_defaults_construct: expected a default for every field" in r.reason
    assert report.result("plugin.registered_by_kernel").outcome == "failed"
    assert report.result("static.registered").outcome == "failed"
    # behaviour cannot be checked without a registered technique: skipped, saying why
    assert report.result("reduction.within_budget").outcome == "skipped"


def test_a_causality_leak(registry):
    report = check_technique("attention", "leaky", registry=registry)
    r = report.result("attention.causal")
    assert r.outcome == "failed"
    assert r.expected.startswith("logits at positions < 24 unchanged when tokens 24..39 change (tiny-llama")
    assert r.seen.startswith("they changed: max |Δ| = ") and "tolerance 1e-05" in r.seen
    # no mask at all: padding and incremental decoding break too; the static checks still pass
    assert _only_failures(report) == {"attention.causal", "attention.left_padding", "attention.incremental_equals_full"}


def test_a_lying_nbytes(registry):
    report = check_plugin("broken-lying-nbytes", registry=registry)
    assert _only_failures(report) == {"kv.nbytes_matches_tensors"}
    r = report.result("kv.nbytes_matches_tensors")
    assert r.expected == (
        "layer 0 (HalfCountedLayer) of tiny-llama to report the bytes of the tensors it holds: 6144 "
        "(keys 3072 + values 3072)"
    )
    assert r.seen == "nbytes = 3072 after 24 tokens"


def test_a_reducer_over_budget(registry):
    report = check_plugin("broken-over-budget", registry=registry)
    assert _only_failures(report) == {"reduction.within_budget"}
    r = report.result("reduction.within_budget")
    assert r.expected.startswith("at most 256 tokens (budget=256) for the long text (")
    assert r.seen.endswith(" tokens") and int(r.seen.split()[0]) > 256


def test_a_non_deterministic_augmenter(registry):
    report = check_plugin("broken-nondeterministic", registry=registry)
    assert _only_failures(report) == {"augmentation.deterministic"}
    r = report.result("augmentation.deterministic")
    assert r.expected == "identical records for seed 7 from the same augmenter"
    assert r.seen.startswith("record 0: input_ids[")


def test_a_scorer_that_rewards_a_wrong_answer(registry):
    report = check_plugin("broken-generous-scorer", registry=registry)
    assert _only_failures(report) == {"evaluation.scorer_gold_and_wrong"}
    r = report.result("evaluation.scorer_gold_and_wrong")
    gold = r.expected.split("gold ")[1].rstrip(")").strip("'")
    assert r.expected == f"score 0.0 for the wrong answer '{int(gold) + 1}' (gold '{gold}')"
    assert r.seen == "1.0"


# -- more plugin-level and static violations -----------------------------------------------------------------


def test_a_hookimpl_that_does_not_match_its_spec(registry):
    report = check_plugin("broken-bad-hookimpl", registry=registry)
    r = report.result("plugin.hookimpls_validate")
    assert r.outcome == "failed" and "lc_register_attention" in r.seen and "registrar" in r.seen


def test_a_technique_name_taken_by_another_plugin(registry):
    report = check_plugin("broken-duplicate-name", registry=registry)
    r = report.result("plugin.technique_names_unique")
    assert r.outcome == "failed" and "reduction 'bm25' is also registered by plugin 'bm25'" in r.seen


def test_registrations_the_kernel_refuses_are_judged_one_by_one(registry):
    report = check_plugin("broken-refused", registry=registry)
    assert report.result("static.register_call_valid", "reduction/bad name").seen == "'bad name'"
    r = report.result("static.build_callable", "reduction/not-callable")
    assert r.expected == "a callable build(config, ctx)" and r.seen == "'build_me'"


# -- every behavioural check can fail ---------------------------------------------------------------------------

CASES = [
    # (family, technique, check, in expected, in seen)
    ("positional", "nan-rope", "positional.finite_beyond_window", "finite outputs for 1024 tokens", "non-finite"),
    (
        "positional",
        "sticky-rope",
        "positional.undo_restores",
        "bit-identical outputs on tiny-llama after undo",
        "max |Δ|",
    ),
    ("attention", "upcast", "attention.dtype_preserved", "bfloat16 attention outputs", "layer 0: torch.float32"),
    ("attention", "sticky-attention", "attention.undo_restores", "restored after undo", "became 'lc_sticky_test'"),
    ("kv", "no-evict", "kv.budget_respected", "at most 8 tokens (2048 bytes) per layer", "holds 24 tokens"),
    ("kv", "off-by-one", "kv.seq_length_counts_tokens", "get_seq_length(0) == 24 (tokens fed)", "23"),
    ("kv", "sticky-reset", "kv.crop_and_reset", "get_seq_length() == 0 after reset", "20"),
    ("kv", "set-describe", "static.describe_is_json", "JSON-serialisable", "Object of type set"),
    ("reduction", "reversed-spans", "reduction.spans_sorted", "sorted, non-overlapping spans", "starts before span 0"),
    ("reduction", "lowercase", "reduction.provenance_exact", "separator.join(pieces(source)) == text", "'Children"),
    ("reduction", "coin-flip", "reduction.deterministic", "the same reduction of the long text", "spans"),
    ("reduction", "fragile", "reduction.edge_inputs", "handle the empty (0 characters)", "IndexError"),
    ("reduction", "positional-only", "static.satisfies_protocol", "reduce callable as reduce(context", "'q'"),
    ("reduction", "mutable-config", "static.config_frozen", "frozen attrs class", "budget can be assigned"),
    ("reduction", "comma-default", "static.config_roundtrip", "'comma-default:stopwords=a,the'", "malformed"),
    ("reduction", "no-paper", "static.summary_and_paper", "the paper", "''"),
    ("reduction", "needs-missing", "static.references_valid", "kv technique 'missing'", "unknown kv technique"),
    ("augmentation", "materialiser", "augmentation.streams", "at most 16 documents", "pulled more than 16"),
    ("augmentation", "dict-records", "augmentation.record_schema", "longctx.text.Record", "is a dict"),
    ("evaluation", "unseeded-passkey", "evaluation.reproducible", "identical cases", "prompt"),
    ("evaluation", "sloppy-length", "evaluation.length_within_tolerance", "507..512 tokens", "256 tokens"),
    ("evaluation", "hidden-answer", "evaluation.gold_in_context", "in the prompt", "not there"),
    ("evaluation", "untagged", "evaluation.tags", "tags['diffusion'] one of low, high", "'medium'"),
]


@pytest.mark.parametrize(("family", "name", "check", "expected", "seen"), CASES, ids=[c[2] for c in CASES])
def test_each_check_can_fail(registry, family, name, check, expected, seen):
    r = check_technique(family, name, registry=registry, select=[check]).result(check)
    assert r.outcome == "failed", r
    assert expected in r.expected and seen in r.seen, r.text()


class WrongIdentity(PIContract):
    identity_params = {"factor": 2.0}  # a lie: factor 2 changes the model


class AllLayers(PIContract):
    params = {"layers": "all"}  # sliding layers rescaled, yet the contract claims they are untouched


class SparseDense(StreamingLLMContract):
    dense_params = {"sinks": 2, "window": 12}  # a window smaller than the 60-token input


class Truncating(UntieKnotsContract):
    params = {
        **UntieKnotsContract.params,
        "truncate": True,
    }  # the reference's cut drops tokens


@pytest.mark.parametrize(
    ("family", "name", "contract", "check", "seen"),
    [
        ("positional", "pi", WrongIdentity, "positional.no_change_is_identity", "max |Δ|"),
        ("positional", "pi", AllLayers, "positional.sliding_layers_untouched", "max |Δ|"),
        ("attention", "streaming-llm", SparseDense, "attention.dense_when_sparsity_off", "max |Δ|"),
        ("augmentation", "untie-knots", Truncating, "augmentation.preserves_tokens", "missing"),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v else None,
)
def test_false_claims_in_a_contract_are_caught(family, name, contract, check, seen):
    r = check_technique(family, name, contract=contract, select=[check]).result(check)
    assert r.outcome == "failed" and seen in r.seen, r


# -- lc check on a broken plugin ---------------------------------------------------------------------------------


def test_lc_check_exits_1_and_says_what_was_expected_and_seen(registry):
    runner = CliRunner()
    result = runner.invoke(check_cmd, ["broken-lying-nbytes"], obj={"registry": registry}, terminal_width=200)
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "✗ kv.nbytes_matches_tensors" in out and "does not conform" in out
    assert "expected: layer 0 (HalfCountedLayer) of tiny-llama to report the bytes" in out
    assert "seen:     nbytes = 3072 after 24 tokens" in out
    result = runner.invoke(check_cmd, ["broken-import-error", "--json"], obj={"registry": registry})
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    failed = {r["check"]: r for r in data["results"] if r["outcome"] == "failed"}
    assert data["ok"] is False and "longctx_missing_dependency_for_tests" in failed["plugin.entry_point_loads"]["seen"]
