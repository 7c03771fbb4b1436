"""Running checks: ``check_plugin``, ``check_technique``, and the bridge the pytest contracts use.

Contracts are found, in order: one passed explicitly; one the plugin ships (a ``LONGCTX_CONTRACTS``
attribute of the plugin object: an iterable of contract classes); the kit's table of first-party
contracts (:mod:`~longctx.contrib.conformance.first_party`); else the family's default contract, whose
checks needing a declaration (identity parameters, dense parameters, token preservation, …) are skipped
with a reason naming the attribute to set.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from longctx.contrib.conformance.checks import Check, CheckFailure, CheckSkipped, checks_in
from longctx.contrib.conformance.contracts import FAMILY_CONTRACTS, Contract, PluginContract
from longctx.contrib.conformance.report import CheckResult, Report
from longctx.contrib.conformance.subject import PluginInspection, Refused, Registration, Subject, inspect_plugin

_DEFAULT_REGISTRY: Any = None


def default_registry() -> Any:
    """Every installed plugin, loaded non-strictly (a plugin that fails is recorded, and reported by
    the checks) — once per process."""
    global _DEFAULT_REGISTRY
    if _DEFAULT_REGISTRY is None:
        from longctx.registry import load_registry

        _DEFAULT_REGISTRY = load_registry(strict=False)
    return _DEFAULT_REGISTRY


# -- contracts ---------------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"\W+", "_", name).strip("_")


def shipped_contracts(plugin: object | None) -> list[type[Contract]]:
    """The contracts a plugin ships as ``LONGCTX_CONTRACTS``: a sequence of contract classes, or a mapping
    of technique name → contract class."""
    shipped = getattr(plugin, "LONGCTX_CONTRACTS", None) or ()
    if isinstance(shipped, Mapping):
        shipped = shipped.values()
    return list(shipped)


def contract_for(family: str, name: str, *, plugin: object | None = None) -> type[Contract]:
    """The contract of technique ``name`` (see the module docstring for the lookup order)."""
    for c in shipped_contracts(plugin):
        if getattr(c, "family", None) == family and getattr(c, "technique", None) == name:
            return c
    from longctx.contrib.conformance.first_party import FIRST_PARTY

    if (family, name) in FIRST_PARTY:
        return FIRST_PARTY[(family, name)]
    base = FAMILY_CONTRACTS[family]
    return type(f"{base.__name__}_{_slug(name)}", (base,), {"technique": name, "__module__": __name__})


# -- running one check --------------------------------------------------------------------------------


def run_check(check: Check, subject: Subject) -> CheckResult:
    """Run ``check`` on ``subject``; the raw outcome (``expected_failures`` not applied).

    An exception other than :class:`CheckFailure`/:class:`CheckSkipped` escaping the check — the
    technique crashed where the check called it — fails the check, with the error as what was seen.
    """
    label = f"{subject.family}/{subject.name}" if subject.family else f"plugin:{subject.name}"
    expected = seen = None
    t0 = time.perf_counter()
    try:
        check(subject)
        outcome, reason = "passed", None
    except CheckFailure as e:
        outcome, reason, expected, seen = "failed", e.message(), e.expected, e.seen
    except CheckSkipped as e:
        outcome, reason = "skipped", e.reason
    except Refused as e:  # composing refused with a longctx error: this fixture is not for the technique
        outcome, reason = "skipped", f"refuses the fixture: {e}"
    except Exception as e:
        outcome, expected, seen = "failed", "the check to run without an unexpected error", f"{type(e).__name__}: {e}"
        reason = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-3:]).strip()
    duration = time.perf_counter() - t0
    return CheckResult(check.name, label, outcome, reason, expected, seen, duration, tuple(subject.notes))


def apply_expected_failures(result: CheckResult, expected: dict[str, str]) -> CheckResult:
    """Strict expected failures: a listed check that fails is ``xfailed``; one that passes fails."""
    import attrs

    reason = expected.get(result.check)
    if reason is None:
        return result
    if result.outcome == "failed":
        return attrs.evolve(result, outcome="xfailed", reason=f"{reason} — {result.reason}")
    if result.outcome == "passed":
        return attrs.evolve(
            result,
            outcome="failed",
            expected=f"{result.check} to fail (listed in expected_failures: {reason})",
            seen="it passed",
            reason=f"XPASS(strict): {reason}",
        )
    return result


def _select(checks: Iterable[Check], select: Iterable[str] | None) -> list[Check]:
    pats = list(select or ())
    return [c for c in checks if not pats or any(p in c.name for p in pats)]


# -- subjects -----------------------------------------------------------------------------------------


def _find_technique(registry: Any, family: str, name: str) -> Any:
    try:
        return registry.get(family, name)
    except Exception:
        return None


def _inspection_for(registry: Any, family: str, name: str, technique: Any) -> PluginInspection | None:
    """The inspection of the plugin that registers ``family/name`` (also among plugins that failed)."""
    if technique is not None and technique.plugin:
        return inspect_plugin(technique.plugin, registry)
    for st in registry.plugins.values():
        if st.status == "failed":
            ins = inspect_plugin(st.name, registry)
            if any(r.family == family and r.name == name for r in ins.registrations):
                return ins
    return None


def _registration(ins: PluginInspection | None, family: str, name: str) -> Registration | None:
    if ins is None:
        return None
    return next((r for r in ins.registrations if r.family == family and r.name == name), None)


def _technique_report(
    family: str,
    name: str,
    contract: type[Contract],
    registry: Any,
    inspection: PluginInspection | None,
    select: Iterable[str] | None,
) -> Report:
    technique = _find_technique(registry, family, name)
    registration = _registration(inspection, family, name)
    results = []
    for c in _select(checks_in(*contract.check_groups()), select):
        subject = Subject(
            check=c.name,
            contract=contract,
            registry=registry,
            family=family,
            name=name,
            inspection=inspection,
            registration=registration,
            technique=technique,
        )
        results.append(apply_expected_failures(run_check(c, subject), dict(contract.expected_failures)))
    return Report(f"{family}/{name}", tuple(results))


def check_technique(
    family: str,
    name: str,
    *,
    registry: Any = None,
    contract: type[Contract] | None = None,
    select: Iterable[str] | None = None,
) -> Report:
    """Run the static and behavioural checks of technique ``name`` of ``family``.

    :param registry: where the technique comes from (default: every installed plugin).
    :param contract: its contract (default: as :func:`contract_for` finds it).
    :param select: only checks whose name contains one of these strings.
    """
    registry = registry if registry is not None else default_registry()
    technique = _find_technique(registry, family, name)
    inspection = _inspection_for(registry, family, name, technique)
    if contract is None:
        contract = contract_for(family, name, plugin=inspection.plugin if inspection else None)
    contract.check_names()  # validates expected_failures
    return _technique_report(family, name, contract, registry, inspection, select)


def check_plugin(
    name: str,
    *,
    registry: Any = None,
    plugin: object | None = None,
    contracts: Iterable[type[Contract]] = (),
    select: Iterable[str] | None = None,
) -> Report:
    """Run every check for plugin ``name`` (an entry-point name): the plugin-level checks, then the static
    and behavioural checks of every technique it registers.

    :param registry: the registry the plugin was loaded into (default: every installed plugin, loaded
        non-strictly); a plugin the registry could not load is still inspected from its entry point or
        module, so a refused registration is reported by the precise check it breaks.
    :param plugin: the plugin object, when it is not reachable through an entry point.
    :param contracts: contract classes to use for its techniques (matched by family and technique).
    :param select: only checks whose name contains one of these strings.
    """
    from longctx.errors import LongctxError

    registry = registry if registry is not None else default_registry()
    if name not in registry.plugins and plugin is None and _plugin_entry_point(name) is None:
        available = ", ".join(sorted(registry.plugins)) or "(none)"
        raise LongctxError(f"no plugin named {name!r}; installed plugins: {available}")
    inspection = inspect_plugin(name, registry, plugin)
    results: list[CheckResult] = []
    for c in _select(checks_in("plugin"), select):
        subject = Subject(check=c.name, contract=PluginContract, registry=registry, name=name, inspection=inspection)
        results.append(run_check(c, subject))
    explicit = {(c.family, c.technique): c for c in contracts}
    report = Report(f"plugin:{name}", tuple(results))
    for family, tname in _techniques_of(name, registry, inspection):
        contract = explicit.get((family, tname)) or contract_for(family, tname, plugin=inspection.plugin)
        contract.check_names()
        report = report.merge(_technique_report(family, tname, contract, registry, inspection, select))
    return report


def _plugin_entry_point(name: str) -> Any:
    from longctx.contrib.conformance.subject import _entry_point

    return _entry_point(name)


def _techniques_of(name: str, registry: Any, inspection: PluginInspection) -> list[tuple[str, str]]:
    """``(family, technique)`` the plugin registers: as recorded from its hooks (so refused registrations
    are checked too), else as the registry holds them."""
    out: list[tuple[str, str]] = []
    for r in inspection.registrations:
        key = (r.family, r.name if isinstance(r.name, str) else repr(r.name))
        if key not in out:
            out.append(key)
    for t in registry.techniques():
        if t.plugin == name and (t.family, t.name) not in out:
            out.append((t.family, t.name))
    return out


# -- the pytest bridge ----------------------------------------------------------------------------------

_PARTS: dict[type, tuple[Any, ...]] = {}


def run_contract_check(contract: type[Contract], check_name: str) -> CheckResult:
    """Run one check of ``contract`` (raw outcome: pytest applies the strict xfail marks itself)."""
    from longctx.contrib.conformance.checks import get_check

    check = get_check(check_name)
    if contract not in _PARTS:
        registry = contract.get_registry()
        if issubclass(contract, PluginContract):
            _PARTS[contract] = (registry, None, None, inspect_plugin(str(contract.plugin), registry), None)
        else:
            family, name = str(contract.family), str(contract.technique)
            technique = _find_technique(registry, family, name)
            ins = _inspection_for(registry, family, name, technique)
            _PARTS[contract] = (registry, family, name, ins, technique)
    registry, family, name, ins, technique = _PARTS[contract]
    if issubclass(contract, PluginContract):
        subject = Subject(check=check.name, contract=contract, registry=registry, name=contract.plugin, inspection=ins)
    else:
        subject = Subject(
            check=check.name,
            contract=contract,
            registry=registry,
            family=family,
            name=name,
            inspection=ins,
            registration=_registration(ins, family, name),
            technique=technique,
        )
    return run_check(check, subject)


def make_test_classes(
    plugins: Iterable[str] | None = None,
    *,
    registry: Any = None,
    module: str | None = None,
    distribution: str | None = None,
) -> dict[str, type]:
    """pytest test classes (``Test…``) running the contracts of ``plugins`` — a plugin-level class per
    plugin and one per technique it registers, with the contract :func:`contract_for` finds.

    :param plugins: plugin (entry-point) names; default: every plugin of the registry (of
        ``distribution``, when given).
    :param module: the ``__module__`` to give the classes (the test module that holds them).

    Use in a test module: ``globals().update(make_test_classes(["my-plugin"], module=__name__))``.
    """
    registry = registry if registry is not None else default_registry()
    if plugins is None:
        plugins = [n for n, st in registry.plugins.items() if distribution is None or st.distribution == distribution]
    out: dict[str, type] = {}
    mod = module or __name__

    def add(name: str, base: type, attrs: dict[str, Any]) -> None:
        cls = type(name, (base,), {**attrs, "registry": registry, "__module__": mod, "__qualname__": name})
        out[name] = cls

    for pname in plugins:
        add(f"TestPlugin_{_slug(pname)}", PluginContract, {"plugin": pname})
        inspection = inspect_plugin(pname, registry)
        for family, tname in _techniques_of(pname, registry, inspection):
            add(f"Test_{family}_{_slug(tname)}", contract_for(family, tname, plugin=inspection.plugin), {})
    return out


def first_party_plugins(registry: Any = None) -> list[str]:
    """The plugins of the ``longctx`` distribution itself."""
    registry = registry if registry is not None else default_registry()
    return [n for n, st in registry.plugins.items() if st.distribution == "longctx"]


__all__ = [
    "apply_expected_failures",
    "check_plugin",
    "check_technique",
    "contract_for",
    "default_registry",
    "first_party_plugins",
    "make_test_classes",
    "run_check",
    "run_contract_check",
]
