"""Lifecycle hooks: a few well-defined moments plugins may observe or wrap.

They are for tracing, profiling and logging; a technique never needs them to work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from longctx.hooks import hookspec

if TYPE_CHECKING:
    from longctx.registry import Registry
    from longctx.runtime import Pipeline


@hookspec(historic=True)
def lc_configure(registry: Registry) -> None:
    """Called once after every plugin is loaded and every technique registered.

    Historic: a plugin registered later still receives the call on registration.
    """


@hookspec
def lc_pipeline_composed(pipeline: Pipeline) -> None:
    """Called after :func:`longctx.compose` has applied every component to the model.

    :param pipeline: the composed pipeline; ``pipeline.describe()`` says what was changed.
    """


@hookspec(firstresult=True)
def lc_run_generate(pipeline: Pipeline, prompt: str, run: Callable[[], Any]) -> Any:
    """Runs one :meth:`Pipeline.generate` call; stops at the first non-``None`` result.

    The kernel's own implementation (``trylast``) returns ``run()``. Plugins add *wrappers*
    (``@hookimpl(wrapper=True)``, a generator whose ``yield`` returns the
    :class:`longctx.runtime.Generation`) to time, trace or log generation; a wrapper must return it.
    """


@hookspec(firstresult=True)
def lc_run_evaluate(task: str, pipeline: str, run: Callable[[], Any]) -> Any:
    """Runs the evaluation of one task on one pipeline (named by its spec string); as
    :func:`lc_run_generate`, the kernel's implementation returns ``run()`` and plugins wrap it."""
