"""The conformance kit, dogfooded: every first-party technique passes its family's contract.

The test classes below are generated from the registry — one per plugin (``plugin.*`` checks) and one per
technique (``static.*`` and family checks) — exactly as ``pytest --lc-plugin NAME`` generates them, with
the contracts of ``longctx.contrib.conformance.first_party``. Test ids are ``<technique>:<check>``, so
``pytest -k streaming-llm`` selects one technique and ``pytest -k kv.nbytes`` one check.

Then: the pytest-free API and its report, ``lc check`` (``check_cmd``), and pytest itself in a subprocess
— ``pytest --lc-plugin ntk`` from an empty folder, and a plugin author's test file with strict expected
failures.
"""

# Contract attributes are class-level declarations (ClassVar on the base classes).
# ruff: noqa: RUF012

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from longctx.cli_check import check_cmd
from longctx.contrib.conformance import (
    KVContract,
    PositionalContract,
    all_checks,
    check_plugin,
    check_technique,
    contract_for,
    default_registry,
    first_party_plugins,
    make_test_classes,
)
from longctx.contrib.conformance.first_party import FIRST_PARTY, SinkWindowContract
from longctx.contrib.conformance.runner import shipped_contracts
from longctx.contrib.conformance.subject import inspect_plugin

# -- the dogfood: the contracts over every first-party technique ----------------------------------------

globals().update(make_test_classes(first_party_plugins(), module=__name__))


def test_every_first_party_technique_has_a_contract_and_a_test_class():
    registry = default_registry()
    ours = {(t.family, t.name) for t in registry.techniques() if t.distribution == "longctx"}
    assert ours, "no first-party technique registered"
    # the table has no stale entries; a technique is covered by the table, by a contract its plugin
    # ships (LONGCTX_CONTRACTS), or by its family's default contract
    assert set(FIRST_PARTY) <= ours
    generated = {
        (cls.family, cls.technique)
        for cls in globals().values()
        if isinstance(cls, type) and cls.__name__.startswith("Test_") and hasattr(cls, "technique")
    }
    assert generated == ours
    shipped = {}
    for pname in first_party_plugins(registry):
        plugin = inspect_plugin(pname, registry).plugin
        for c in shipped_contracts(plugin):
            shipped[(c.family, c.technique)] = (c, plugin)
    assert set(shipped) <= ours
    for family, name in ours:
        if (family, name) in shipped:
            c, plugin = shipped[(family, name)]
            got = contract_for(family, name, plugin=plugin)
            assert (got.__qualname__, got.technique) == (c.__qualname__, name)
        elif (family, name) in FIRST_PARTY:
            assert contract_for(family, name) is FIRST_PARTY[(family, name)]
        else:
            assert contract_for(family, name).__mro__[1].family == family


def test_generated_classes_run_the_right_checks():
    cls = globals()["Test_attention_streaming_llm"]
    names = cls.check_names()
    assert names[0].startswith("static.") and "attention.causal" in names
    assert not any(n.startswith(("kv.", "positional.", "plugin.")) for n in names)
    assert globals()["TestPlugin_streaming_llm"].check_names() == [n for n in all_checks() if n.startswith("plugin.")]


def test_every_check_has_a_stable_name_and_a_docstring():
    for name, c in all_checks().items():
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", name), name
        assert len(c.doc) > 30, f"{name}: say what it checks"


# -- the pytest-free API --------------------------------------------------------------------------------


def test_check_plugin_reports_every_check_with_outcome_and_duration():
    report = check_plugin("pi")
    assert report.ok, str(report)
    checks = {r.check for r in report}
    assert {"plugin.entry_point_loads", "static.config_roundtrip", "positional.no_change_is_identity"} <= checks
    assert {r.subject for r in report} == {"plugin:pi", "positional/pi"}
    assert all(r.duration >= 0 for r in report)
    # the RoPE method is refused on BERT: noted, not failed
    identity = report.result("positional.no_change_is_identity")
    assert identity.outcome == "passed" and any("tiny-bert refused" in n for n in identity.notes)
    data = json.loads(json.dumps(report.to_json()))
    assert data["ok"] is True and data["counts"]["failed"] == 0
    assert {"check", "subject", "outcome", "reason", "expected", "seen", "duration", "notes"} <= set(data["results"][0])


def test_capability_skips_carry_their_reason():
    report = check_technique("attention", "streaming-llm")
    padding = report.result("attention.left_padding")
    assert padding.outcome == "skipped" and "padded batches" in padding.reason
    native = check_technique("positional", "native", select=["finite_beyond_window"])
    assert [r.outcome for r in native] == ["skipped"] and "claims no window" in native.results[0].reason
    dynamic = check_technique("kv", "dynamic", select=["budget"])
    assert dynamic.results[0].outcome == "skipped" and "declares no budget" in dynamic.results[0].reason


def test_unknown_third_party_techniques_get_the_family_defaults():
    contract = contract_for("kv", "some-store")
    assert issubclass(contract, KVContract) and contract.technique == "some-store"
    assert contract.no_eviction_params is None and contract.budget is None


def test_a_plugin_can_ship_its_own_contract():
    from longctx.contrib.conformance import ReductionContract
    from longctx.hooks import hookimpl
    from longctx.plugins.truncate_middle import TruncateMiddle, TruncateMiddleConfig
    from longctx.registry import load_registry

    class ShippedContract(ReductionContract):
        technique = "shipped-reducer"
        budget_param = None  # declares no budget: reduction.within_budget must be skipped, saying why
        expected_failures = {"reduction.spans_sorted": "shipped with a (stale) expected failure"}

    class Plugin:
        LONGCTX_CONTRACTS = (ShippedContract,)

        @hookimpl
        def lc_register_context_reducers(self, register):
            register("shipped-reducer", config=TruncateMiddleConfig, build=TruncateMiddle, summary="s", paper="p")

    plugin = Plugin()
    registry = load_registry(strict=True, extra_plugins=[("shipped", plugin)])
    assert contract_for("reduction", "shipped-reducer", plugin=plugin) is ShippedContract
    report = check_plugin("shipped", registry=registry, select=["plugin.", "reduction."])
    assert {r.subject for r in report} == {"plugin:shipped", "reduction/shipped-reducer"}
    budget = report.result("reduction.within_budget")
    assert budget.outcome == "skipped" and "budget_param=None" in budget.reason
    assert report.result("reduction.spans_sorted").reason.startswith("XPASS(strict)")
    assert [r.check for r in report.failed] == ["reduction.spans_sorted"]


def test_expected_failures_must_name_checks_of_the_contract():
    class Typo(SinkWindowContract):
        expected_failures = {"kv.nbytes_match": "typo"}

    with pytest.raises(ValueError, match=r"unknown check\(s\) kv\.nbytes_match.*kv\.nbytes_matches_tensors"):
        check_technique("kv", "sink-window", contract=Typo)


def test_expected_failures_are_strict():
    class Declared(SinkWindowContract):
        # evicting "no-eviction" params: generation differs from the dynamic cache, as declared
        no_eviction_params = {"sinks": 2, "window": 8}
        expected_failures = {
            "kv.no_eviction_equals_dynamic": "the window is smaller than the prompt",
            "kv.nbytes_matches_tensors": "stale entry: it passes",
        }

    report = check_technique("kv", "sink-window", contract=Declared, select=["no_eviction", "nbytes"])
    xfailed = report.result("kv.no_eviction_equals_dynamic")
    assert xfailed.outcome == "xfailed" and "window is smaller" in xfailed.reason
    stale = report.result("kv.nbytes_matches_tensors")
    assert stale.outcome == "failed" and stale.reason.startswith("XPASS(strict)") and stale.seen == "it passed"
    assert not report.ok


# -- lc check -----------------------------------------------------------------------------------------------


def test_lc_check_json_exits_0_and_lists_passed_checks():
    result = CliRunner().invoke(check_cmd, ["pi", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["target"] == "plugin:pi"
    passed = {r["check"] for r in data["results"] if r["outcome"] == "passed"}
    assert {"plugin.entry_point_loads", "static.satisfies_protocol", "positional.undo_restores"} <= passed


def test_lc_check_technique_name_and_table():
    result = CliRunner().invoke(check_cmd, ["native", "-k", "positional."], terminal_width=140)
    assert result.exit_code == 0, result.output
    assert "positional/native" in result.stdout and "positional.no_change_is_identity" in result.stdout
    assert "conforms" in result.stdout and "static." not in result.stdout


def test_lc_check_lists_the_checks():
    result = CliRunner().invoke(check_cmd, ["--list-checks", "--json"])
    assert result.exit_code == 0
    listed = {c["name"]: c for c in json.loads(result.stdout)}
    assert list(listed) == list(all_checks())
    assert "bytes of the tensors" in listed["kv.nbytes_matches_tensors"]["doc"]
    assert CliRunner().invoke(check_cmd, []).exit_code == 2  # NAME is needed otherwise


def test_lc_check_unknown_name_lists_what_exists():
    result = CliRunner().invoke(check_cmd, ["no-such-thing"])
    assert result.exit_code == 2
    assert "no plugin or technique named 'no-such-thing'" in result.output and "sink-window" in result.output


# -- pytest in a subprocess -----------------------------------------------------------------------------


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_pytest_lc_plugin_runs_the_contracts_from_an_empty_folder(tmp_path):
    proc = _pytest(tmp_path, "--lc-plugin", "ntk")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for check in ("plugin.entry_point_loads", "static.config_roundtrip", "positional.no_change_is_identity",
                  "positional.finite_beyond_window", "positional.sliding_layers_untouched",
                  "positional.undo_restores"):  # fmt: skip
        assert re.search(rf"PASSED .*test_check\[ntk:{re.escape(check)}\]", out), f"{check} did not pass:\n{out}"
    assert re.search(r"\b20 passed\b", out), out


def test_a_plugin_authors_test_file_with_strict_expected_failures(tmp_path):
    (tmp_path / "test_mine.py").write_text(
        textwrap.dedent(
            """
            from longctx.contrib.conformance import PositionalContract


            class TestPiAllLayers(PositionalContract):
                technique = "pi"
                params = {"layers": "all"}
                identity_params = {"factor": 1.0}
                expected_failures = {"positional.sliding_layers_untouched": "layers=all rescales sliding layers"}


            class TestPiStaleEntry(PositionalContract):
                technique = "pi"
                expected_failures = {"positional.undo_restores": "fixed long ago"}


            def test_the_plugin_fixtures(lc_registry, lc_tiny):
                assert lc_registry.get("positional", "pi").plugin == "pi"
                assert lc_tiny("gemma3").tokenizer is not None
            """
        )
    )
    proc = _pytest(tmp_path, "-k", "sliding_layers or undo_restores or fixtures")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # the stale entry passes: strict xfail fails the run
    assert re.search(r"XFAIL .*TestPiAllLayers::test_check\[pi:positional\.sliding_layers_untouched\]", out), out
    assert re.search(r"FAILED .*TestPiStaleEntry::test_check\[pi:positional\.undo_restores\]", out), out
    assert "XPASS(strict)" in out and "fixed long ago" in out
    assert re.search(r"PASSED .*TestPiAllLayers::test_check\[pi:positional\.undo_restores\]", out), out
    assert re.search(r"PASSED .*test_the_plugin_fixtures", out), out
    assert re.search(r"1 failed, 3 passed, \d+ deselected, 1 xfailed", out), out


def test_contract_classes_import_without_pytest_machinery():
    # the Contract base classes are plain classes: check_plugin uses them without pytest
    assert not hasattr(PositionalContract, "pytestmark")
    assert set(make_test_classes(["pi"])) == {"TestPlugin_pi", "Test_positional_pi"}
