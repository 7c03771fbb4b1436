"""The third-party plugin path, dogfooded on ``contrib/knorm`` (distribution ``longctx-knorm``).

``make install`` installs that distribution next to longctx (``pip install -e contrib/knorm``); from then
on it is an ordinary installed plugin: ``lc plugins`` lists it with its distribution and version, ``lc
compose`` uses it, and the conformance kit's KV contract passes on it.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, distribution

import pytest
from click.testing import CliRunner

from longctx.cli import cli

try:
    distribution("longctx-knorm")
except PackageNotFoundError:  # pragma: no cover - the Makefile installs it
    pytest.fail(
        "the example plugin distribution longctx-knorm is not installed; run `make install` "
        "(or `pip install --no-deps -e contrib/knorm`)",
        pytrace=False,
    )

# Prompts for the tiny models (byte tokenizer, 256-token window): long enough to evict, short enough to fit.
PROMPT = "The quick brown fox jumps over the lazy dog. " * 4 + "\nWhat did the fox do?"


def _lc(*args: str) -> dict:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _compose(words: str, model: str) -> dict:
    return _lc("compose", *words.split(), "--model", model, "--prompt", PROMPT, "--max-new-tokens", "8", "--json")


def test_lc_plugins_lists_knorm_with_its_distribution_and_version():
    data = _lc("plugins", "--json")
    tech = {(t["family"], t["name"]): t for t in data["techniques"]}[("kv", "knorm")]
    assert tech["distribution"] == "longctx-knorm" and tech["version"] == "0.1.0"
    assert tech["plugin"] == "knorm" and "2406.11430" in tech["paper"]
    assert [p["name"] for p in tech["parameters"]] == ["budget", "window"]
    assert tech["capabilities"] == ["causal-lm"] and tech["conflicts"] == ["attention=streaming-llm"]
    plugin = {p["name"]: p for p in data["plugins"]}["knorm"]
    assert plugin["status"] == "loaded" and plugin["distribution"] == "longctx-knorm"
    assert plugin["module"] == "longctx_knorm" and plugin["techniques"] == ["kv/knorm"]
    # and it can be blocked like any plugin, by entry-point or distribution name
    for name in ("knorm", "longctx-knorm"):
        blocked = _lc("-p", f"no:{name}", "plugins", "--json")
        assert not any(t["name"] == "knorm" for t in blocked["techniques"])


@pytest.mark.parametrize("model", ["tiny-llama", "tiny-gemma3"])
def test_lc_compose_uses_knorm_and_holds_fewer_kv_bytes(model):
    dense = _compose("kv=dynamic", model)
    small = _compose("kv=knorm:budget=32", model)
    kv = small["pipeline"]["kv"]
    assert kv["technique"] == "knorm" and kv["budget"] == 32 and kv["evicts"] is True
    comps = {c["slot"]: c for c in small["pipeline"]["components"]}
    assert comps["kv"]["plugin"] == "knorm" and comps["kv"]["params"] == {"budget": 32, "window": 0}
    n = small["result"]["prompt_tokens"]
    assert n == dense["result"]["prompt_tokens"] and n > 100
    assert small["result"]["new_tokens"] == 8
    assert 0 < small["result"]["kv_bytes"] < dense["result"]["kv_bytes"]
    if model == "tiny-llama":  # every layer is full attention: the bytes shrink by the budget's share
        total = n + 8 - 1  # the last generated token is never fed back
        assert small["result"]["kv_bytes"] * total == dense["result"]["kv_bytes"] * 32
    # a budget no prompt reaches changes nothing
    same = _compose("kv=knorm:budget=4096", model)
    assert same["result"]["text"] == dense["result"]["text"]
    assert same["result"]["kv_bytes"] == dense["result"]["kv_bytes"]


def test_lc_compose_reports_knorm_errors_cleanly():
    result = CliRunner().invoke(cli, ["compose", "kv=knorm:budget=8,window=9", "--model", "tiny-llama", "--dry-run"])
    assert result.exit_code == 2 and "window must be <= budget" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["compose", "kv=knorm", "attention=streaming-llm", "--model", "tiny-llama",
                                      "--dry-run"])  # fmt: skip
    assert result.exit_code == 2 and "streaming-llm" in result.output


def test_conformance_kit_passes_on_knorm():
    """The kit's plugin-level, static and KV checks all pass on knorm — and all of them run: the plugin
    ships its contract (``LONGCTX_CONTRACTS``), so the checks that need declarations (an eviction budget
    for ``kv.budget_respected``) are not skipped as they would be under the family's defaults."""
    try:
        from longctx.contrib.conformance import check_plugin
    except ImportError as e:  # pragma: no cover - the kit ships with longctx
        pytest.skip(f"the conformance kit is not available: {e}")
    report = check_plugin("knorm")
    failures = "\n".join(r.text() for r in report.results if not r.ok)
    assert report.ok, failures
    outcomes = {r.check: r.outcome for r in report.results}
    assert set(outcomes.values()) == {"passed"}, outcomes
    assert {r.subject for r in report.results} == {"plugin:knorm", "kv/knorm"}
    assert {"plugin.entry_point_loads", "static.config_roundtrip", "kv.nbytes_matches_tensors",
            "kv.budget_respected", "kv.no_eviction_equals_dynamic", "kv.crop_and_reset"} <= set(outcomes)  # fmt: skip
    budget = report.result("kv.budget_respected")
    assert any("16 of 16 tokens" in note for note in budget.notes)  # knorm's contract: budget=16, and it fills it


def test_lc_check_knorm():
    if "check" not in cli.commands:  # pragma: no cover - transitional: the kit's command is wired into `lc`
        pytest.skip("`lc check` is not a command of this longctx yet")
    data = _lc("check", "knorm", "--json")
    assert data["ok"] is True and data["target"] == "plugin:knorm"
    assert data["counts"]["failed"] == 0 and data["counts"]["skipped"] == 0 and data["counts"]["passed"] >= 20
