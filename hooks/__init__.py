"""The longctx hook specifications: the contract between the kernel and its plugins.

A plugin is a module (loaded from the ``longctx.plugins`` entry-point group) that implements some of
these hooks with :data:`hookimpl`. There are two kinds of hooks:

* **Registration hooks**, one per family, in the register-callback style of ``llm`` and ``tox``.
  Each receives a ``register`` callable (:class:`Register`) and calls it once per technique::

      @hookimpl
      def lc_register_positional_encodings(register):
          register("pi", config=PIConfig, build=PositionInterpolation,
                   summary="Position interpolation", paper="Chen et al. 2023, arXiv:2306.15595")

* **Lifecycle hooks** (:mod:`longctx.hooks.lifecycle`): configure, pipeline composed, and wrappers
  around generation and evaluation, for tracing and profiling.

pluggy is the control plane only: factories return plain objects satisfying the family's Protocol,
and the forward pass never goes through ``pm.hook``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import pluggy

PROJECT = "longctx"

#: Marker for hook specifications (used by longctx itself).
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marker for hook implementations (used by plugins).
hookimpl = pluggy.HookimplMarker(PROJECT)


class Register(Protocol):
    """The callable a registration hook receives.

    :param name: the technique's name, unique within its family (``"streaming-llm"``).
    :param config: a frozen attrs class whose fields are the technique's parameters; every field has
        a default, so ``config()`` constructs.
    :param build: ``build(config, context) -> component``; the component satisfies the family's
        Protocol. ``context`` is a :class:`longctx.runtime.BuildContext` (model info, upstream
        components) and may be ``None`` for families that do not touch a model.
    :param summary: one line saying what the technique does.
    :param paper: the source: authors, year, arXiv id or DOI.
    :param requires: other techniques this one needs, as ``"family=name"`` strings
        (``"kv=sink-window"``). A requirement whose slot was left at its default is filled in.
    :param conflicts: techniques this one cannot be composed with (``"family=name"``).
    :param capabilities: model capabilities it needs: ``"rope"``, ``"absolute-positions"``,
        ``"causal-lm"``.
    """

    def __call__(
        self,
        name: str,
        *,
        config: type,
        build: Callable[..., Any],
        summary: str,
        paper: str,
        requires: Iterable[str] = (),
        conflicts: Iterable[str] = (),
        capabilities: Iterable[str] = (),
    ) -> None: ...


from longctx.hooks import (  # noqa: E402
    attention,
    augmentation,
    evaluation,
    kv,
    lifecycle,
    positional,
    reduction,
)

#: The six families, in the order the runtime applies them (reduction acts on text first).
FAMILIES: tuple[str, ...] = ("reduction", "positional", "kv", "attention", "augmentation", "evaluation")

#: family name -> the registration hook that populates it.
REGISTRATION_HOOKS: dict[str, str] = {
    "positional": "lc_register_positional_encodings",
    "attention": "lc_register_attention",
    "kv": "lc_register_kv_stores",
    "reduction": "lc_register_context_reducers",
    "augmentation": "lc_register_augmenters",
    "evaluation": "lc_register_evaluators",
}

SPEC_MODULES = (positional, attention, kv, reduction, augmentation, evaluation, lifecycle)

__all__ = [
    "FAMILIES",
    "PROJECT",
    "REGISTRATION_HOOKS",
    "SPEC_MODULES",
    "Register",
    "hookimpl",
    "hookspec",
]
