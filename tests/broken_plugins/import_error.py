"""A plugin whose module fails to import: a dependency it needs is not installed."""

import longctx_missing_dependency_for_tests  # noqa: F401

from longctx.hooks import hookimpl


@hookimpl
def lc_register_context_reducers(register):  # pragma: no cover - never reached
    raise AssertionError("unreachable")
