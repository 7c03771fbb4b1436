"""pytest plugin of the longctx conformance kit (entry point ``pytest11: longctx``).

``pytest --lc-plugin NAME`` (repeatable) runs the family contracts of the installed plugin ``NAME`` —
plugin-level checks and every technique it registers — without any test file: the test classes are
generated in memory and collected as one synthetic module (``longctx-conformance::…``), added before
``-k``/``-m`` selection. Given alone, the option runs only those tests (``testpaths`` are not collected);
test paths given on the command line run too. Without the option the plugin does nothing
but register assertion rewriting for the kit, so it costs nothing to the test runs of projects that
happen to have longctx installed (the kit, torch and transformers are imported only when asked for).
"""

from __future__ import annotations

from typing import Any

import pytest

# Base-class contracts live outside test files; without this, asserts in contract subclasses' helper
# modules inside the kit would lose pytest's introspection (writing_plugins.rst, "Assertion Rewriting").
pytest.register_assert_rewrite("longctx.contrib.conformance")

_NODE = "longctx-conformance"


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("longctx", "longctx plugin conformance")
    group.addoption(
        "--lc-plugin",
        action="append",
        default=[],
        metavar="NAME",
        help="run the longctx conformance contracts on the installed plugin NAME (entry point of the "
        "longctx.plugins group); repeatable; no test file needed",
    )


def pytest_configure(config: Any) -> None:
    if not config.getoption("lc_plugin", None):
        return
    # `pytest --lc-plugin NAME` alone runs the kit only; paths given on the command line run as well
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = []


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    """Add the generated contract tests before selection (``-k``, ``-m``) sees the items."""
    plugins = config.getoption("lc_plugin", None)
    if not plugins:
        return
    module = _ConformanceModule.from_parent(session, path=_anchor(), name=_NODE, nodeid=_NODE)
    module.lc_plugins = list(dict.fromkeys(plugins))
    items[:0] = list(session.genitems(module))


def _anchor() -> Any:
    """A real path for the synthetic module's node (the kit's package folder); never imported by path."""
    from pathlib import Path

    import longctx.contrib.conformance as kit

    return Path(kit.__file__)


class _ConformanceModule(pytest.Module):
    """A test module built in memory: one class per plugin and per technique it registers."""

    lc_plugins: list[str]

    def _getobj(self) -> Any:
        import types

        from longctx.contrib.conformance import make_test_classes

        mod = types.ModuleType("longctx_conformance_generated")
        mod.__file__ = str(self.path)
        for name, cls in make_test_classes(self.lc_plugins, module=mod.__name__).items():
            setattr(mod, name, cls)
        return mod


@pytest.fixture
def lc_registry() -> Any:
    """Every installed longctx plugin, loaded non-strictly (the kit's registry)."""
    from longctx.contrib.conformance import default_registry

    return default_registry()


@pytest.fixture
def lc_tiny() -> Any:
    """Factory of fresh tiny random models: ``lc_tiny("gemma3")`` (llama, gemma3, qwen2, bert)."""
    from longctx.contrib.conformance.fixtures import tiny

    return tiny
