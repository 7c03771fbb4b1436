"""longctx: a plugin microkernel that makes long-context techniques for language models composable.

Quick use::

    import longctx
    pipe = longctx.compose("gemma-3-270m", "positional=pi:factor=2 reduce=bm25:budget=1024")
    print(pipe.generate(prompt).text)
    pipe.undo()

The heavy modules (torch, transformers) are imported on first use of the names below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "compose": ("longctx.runtime", "compose"),
    "Pipeline": ("longctx.runtime", "Pipeline"),
    "Generation": ("longctx.runtime", "Generation"),
    "PipelineSpec": ("longctx.spec", "PipelineSpec"),
    "ComponentSpec": ("longctx.spec", "ComponentSpec"),
    "load_model": ("longctx.models", "load_model"),
    "LoadedModel": ("longctx.models", "LoadedModel"),
    "get_registry": ("longctx.registry", "get_registry"),
    "hookimpl": ("longctx.hooks", "hookimpl"),
    "LongctxError": ("longctx.errors", "LongctxError"),
}

if TYPE_CHECKING:
    from longctx.errors import LongctxError
    from longctx.hooks import hookimpl
    from longctx.models import LoadedModel, load_model
    from longctx.registry import Technique, get_registry
    from longctx.runtime import Generation, Pipeline, compose
    from longctx.spec import ComponentSpec, PipelineSpec


def list_techniques(family: str | None = None) -> list[Technique]:
    """Every technique the installed plugins register, optionally of one family."""
    from longctx.registry import get_registry

    return list(get_registry().techniques(family))


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'longctx' has no attribute {name!r}")


__all__ = [
    "ComponentSpec",
    "Generation",
    "LoadedModel",
    "LongctxError",
    "Pipeline",
    "PipelineSpec",
    "__version__",
    "compose",
    "get_registry",
    "hookimpl",
    "list_techniques",
    "load_model",
]
