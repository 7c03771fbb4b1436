"""The kernel's own implementations of the lifecycle hooks (registered first, run last)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from longctx.hooks import hookimpl


@hookimpl(trylast=True)
def lc_run_generate(pipeline: Any, prompt: str, run: Callable[[], Any]) -> Any:
    return run()


@hookimpl(trylast=True)
def lc_run_evaluate(task: str, pipeline: str, run: Callable[[], Any]) -> Any:
    return run()
