"""What a check runs against: a plugin or technique, its contract, the registry, and helpers to compose it.

:func:`inspect_plugin` looks at a plugin *without* the kernel's validation: it resolves the plugin
object (from the registry, its entry point or its module), registers it on a fresh plugin manager
(pluggy validates hookimpls against the hookspecs there), and calls its registration hooks with a
*recording* ``register`` that accepts anything. The static checks then judge each recorded call, so a
plugin the kernel refused still gets a precise verdict (which technique, which rule).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NoReturn

import attrs

from longctx.contrib.conformance import fixtures
from longctx.contrib.conformance.checks import CheckFailure, CheckSkipped

#: family -> PipelineSpec slot
SLOTS: dict[str, str] = {
    "positional": "positional",
    "attention": "attention",
    "kv": "kv",
    "reduction": "reducers",
    "augmentation": "augmenters",
    "evaluation": "evaluators",
}


def _error_text(e: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip()


# -- plugin inspection ---------------------------------------------------------------------------


@attrs.frozen
class Registration:
    """One ``register(...)`` call as the plugin made it (nothing validated)."""

    family: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]

    @property
    def name(self) -> Any:
        return self.args[0] if self.args else self.kwargs.get("name")

    def get(self, key: str, default: Any = None) -> Any:
        return self.kwargs.get(key, default)


@attrs.define
class PluginInspection:
    """What the kit found out about one plugin (entry point)."""

    name: str
    status: Any = None  # longctx.registry.PluginStatus, if the registry knows the plugin
    plugin: object | None = None
    load_error: str | None = None
    hook_error: str | None = None
    registration_error: str | None = None
    registrations: list[Registration] = attrs.field(factory=list)


def _entry_point(name: str) -> Any:
    from importlib.metadata import entry_points

    from longctx.registry import ENTRY_POINT_GROUP

    return next((ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name), None)


def _import_target(value: str) -> object:
    module, _, attr = value.partition(":")
    obj: object = importlib.import_module(module.strip())
    for part in filter(None, attr.strip().split(".")):
        obj = getattr(obj, part)
    return obj


def inspect_plugin(name: str, registry: Any, plugin: object | None = None) -> PluginInspection:
    """Resolve plugin ``name`` and record its registrations (see the module docstring).

    The plugin object is, in order: ``plugin``; the object the registry loaded; the entry point
    ``name`` of the ``longctx.plugins`` group; the module recorded in the registry's status. When none
    can be had, ``load_error`` says why (the import error, or the registry's recorded error).
    """
    from longctx import hooks
    from longctx.registry import make_plugin_manager

    status = registry.plugins.get(name) if registry is not None else None
    out = PluginInspection(name, status)
    obj = plugin
    if obj is None and registry is not None:
        obj = registry.pm.get_plugin(name)
    if obj is None and not (status is not None and status.status == "blocked"):
        ep = _entry_point(name)
        target = ep.value if ep is not None else (status.module if status is not None else None)
        if target:
            try:
                obj = ep.load() if ep is not None else _import_target(target)
            except Exception as e:
                out.load_error = f"{target}: {_error_text(e)}"
        if obj is None and out.load_error is None and status is not None and status.status == "failed":
            out.load_error = status.error or "failed to load"
        if obj is None and out.load_error is None:
            known = ", ".join(sorted(registry.plugins)) if registry is not None else "?"
            out.load_error = f"no entry point named {name!r} in the longctx.plugins group; installed plugins: {known}"
    out.plugin = obj
    if obj is None:
        return out

    pm = make_plugin_manager()
    registered = False
    try:
        pm.register(obj, name=name)
        registered = True
        pm.check_pending()
    except Exception as e:
        out.hook_error = _error_text(e)

    def recorder(family: str) -> Callable[..., None]:
        def register(*args: Any, **kwargs: Any) -> None:
            out.registrations.append(Registration(family, args, kwargs))

        return register

    for family, hook_name in hooks.REGISTRATION_HOOKS.items():
        if registered:
            impls = [i.function for i in getattr(pm.hook, hook_name).get_hookimpls() if i.plugin is obj]
        else:  # pluggy refused the plugin: call what looks like the hook to still see its registrations
            fn = getattr(obj, hook_name, None)
            impls = [fn] if callable(fn) else []
        for fn in impls:
            try:
                fn(register=recorder(family))
            except Exception as e:
                out.registration_error = f"{hook_name}: {_error_text(e)}"
    return out


# -- the subject ---------------------------------------------------------------------------------


class Refused(Exception):
    """A technique refused one fixture (a model it cannot take) with a clear longctx error."""


class Subject:
    """The plugin or technique under test, as one check sees it.

    :ivar check: the running check's name (failures carry it).
    :ivar contract: the :class:`~longctx.contrib.conformance.contracts.Contract` subclass in force.
    :ivar registry: the registry the technique is composed from.
    :ivar inspection: the plugin inspection (plugin-level and static checks).
    :ivar registration: the raw ``register`` call of the technique, when found.
    :ivar technique: the registry's :class:`~longctx.registry.Technique`, when registered.
    :ivar notes: remarks for the report (fixtures skipped, refusals accepted, …).
    """

    def __init__(
        self,
        *,
        check: str,
        contract: type,
        registry: Any,
        family: str | None = None,
        name: str | None = None,
        inspection: PluginInspection | None = None,
        registration: Registration | None = None,
        technique: Any = None,
    ) -> None:
        self.check = check
        self.contract = contract
        self.registry = registry
        self.family = family
        self.name = name
        self.inspection = inspection
        self.registration = registration
        self.technique = technique
        self.notes: list[str] = []

    # -- outcomes ---------------------------------------------------------------------------------

    def fail(self, expected: str, seen: str, detail: str | None = None) -> NoReturn:
        raise CheckFailure(self.check, expected, seen, detail=detail)

    def skip(self, reason: str) -> NoReturn:
        raise CheckSkipped(reason)

    def require_technique(self) -> Any:
        if self.technique is None:
            self.skip(f"{self.family} technique {self.name!r} is not registered (see static.registered)")
        return self.technique

    # -- configuration ----------------------------------------------------------------------------

    @property
    def params(self) -> dict[str, Any]:
        """The contract's parameters for behavioural checks (over the technique's defaults)."""
        return dict(self.contract.params or {})

    def config(self, params: Mapping[str, Any] | None = None) -> Any:
        from longctx.params import make_config

        tech = self.require_technique()
        return make_config(tech.config, dict(self.params if params is None else params), technique=tech.name)

    def spec(self, params: Mapping[str, Any] | None = None) -> Any:
        from longctx.spec import ComponentSpec, PipelineSpec

        comp = ComponentSpec(self.name, dict(self.params if params is None else params))
        slot = SLOTS[self.family]
        return PipelineSpec(**{slot: (comp,) if slot.endswith("s") else comp})

    def words(self, params: Mapping[str, Any] | None = None) -> str:
        """The spec as CLI words, for messages."""
        return str(self.spec(params))

    # -- composing ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def composed(self, lm: Any, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """``compose(lm, <this technique with params>)``, undone on exit. A :class:`LongctxError` while
        composing means the technique refuses this fixture: :class:`Refused`."""
        from longctx.errors import LongctxError
        from longctx.runtime import compose

        self.require_technique()
        try:
            pipe = compose(lm, self.spec(params), registry=self.registry)
        except LongctxError as e:
            raise Refused(f"{type(e).__name__}: {e}") from e
        try:
            yield pipe
        finally:
            pipe.undo()

    def component(self, lm: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """The built component of this technique, composed on ``lm`` (default: a tiny Llama). Text-side
        components (reducers, augmenters, evaluators) do not touch the model."""
        lm = lm if lm is not None else fixtures.tiny("llama")
        try:
            with self.composed(lm, params) as pipe:
                comp = pipe.components[SLOTS[self.family]]
                return comp[0] if isinstance(comp, list) else comp
        except Refused as e:
            self.skip(f"{self.words(params)} does not compose on tiny-llama ({e}); see static.satisfies_protocol")

    def over(self, archs: Iterable[str], run: Callable[[str], None]) -> None:
        """Run ``run(arch)`` on each fixture architecture; an arch the technique refuses (:class:`Refused`,
        or ``CheckSkipped`` from ``run``) is noted, and the check is skipped when every arch was."""
        ran, skipped = [], []
        for arch in archs:
            try:
                run(arch)
                ran.append(arch)
            except Refused as e:
                skipped.append(f"tiny-{arch} refused ({e})")
            except CheckSkipped as e:
                skipped.append(f"tiny-{arch}: {e.reason}")
        self.notes.extend(skipped)
        if not ran:
            self.skip("; ".join(skipped) or "no fixture architecture to run on")


# -- comparing outputs ----------------------------------------------------------------------------


def outputs(lm: Any, ids: Any, pipe: Any = None, **kwargs: Any) -> Any:
    """Logits of a causal LM (through ``pipe.forward`` with a fresh cache from its KV store, when given)
    or the last hidden state of an encoder, under ``torch.no_grad``."""
    import torch

    with torch.no_grad():
        if fixtures.is_causal(lm):
            out = pipe.forward(ids, **kwargs) if pipe is not None else lm.model(input_ids=ids, **kwargs)
            return out.logits
        return lm.model(input_ids=ids, **kwargs).last_hidden_state


def difference(got: Any, want: Any, atol: float, *, axis: int = 1) -> str | None:
    """``None`` when ``got`` ≈ ``want`` (``|Δ| ≤ atol``, same shape, NaN where NaN); else what differs."""
    import torch

    if tuple(got.shape) != tuple(want.shape):
        return f"shape {tuple(got.shape)} instead of {tuple(want.shape)}"
    g, w = got.detach().float(), want.detach().float()
    nan_mismatch = torch.isnan(g) != torch.isnan(w)
    delta = (g - w).abs().nan_to_num(0.0)
    delta[nan_mismatch] = float("inf")
    worst = float(delta.max()) if delta.numel() else 0.0
    if worst <= atol:
        return None
    idx = torch.nonzero(delta == delta.max())[0].tolist()
    where = f" at position {idx[axis]}" if len(idx) > axis else ""
    return f"max |Δ| = {worst:.3g}{where} (tolerance {atol:g})"


def attention_layer_types(model: Any) -> list[tuple[Any, str]]:
    """``(attention module, layer type)`` per decoder layer, in order."""
    from longctx.capabilities import text_config
    from longctx.runtime import iter_attention_modules

    cfg = text_config(model.config)
    types = list(getattr(cfg, "layer_types", None) or ["full_attention"] * cfg.num_hidden_layers)
    return [(m, types[m.layer_idx]) for m in iter_attention_modules(model)]


@contextlib.contextmanager
def capture_attention(model: Any) -> Iterator[dict[int, Any]]:
    """Record each attention module's output tensor (``{layer_idx: output}``) while the block runs."""
    from longctx.runtime import iter_attention_modules

    seen: dict[int, Any] = {}
    hooks = [
        m.register_forward_hook(lambda mod, _a, out, i=m.layer_idx: seen.__setitem__(i, out[0]))
        for m in iter_attention_modules(model)
    ]
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


def model_state(lm: Any) -> dict[str, Any]:
    """What undo must restore: the config, the module tree, the attention implementation, and the
    per-module attributes longctx attaches."""
    from longctx.capabilities import text_config

    cfg = text_config(lm.model.config)
    return {
        "config": lm.model.config.to_dict(),
        "modules": [(n, type(m).__name__) for n, m in lm.model.named_modules()],
        "attn_implementation": cfg._attn_implementation,
        "attached": sorted(n for n, m in lm.model.named_modules() if "_lc" in m.__dict__),
    }


def state_difference(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    for key in before:
        if before[key] != after[key]:
            if key == "config":
                diff = sorted(k for k in set(before[key]) | set(after[key]) if before[key].get(k) != after[key].get(k))
                return f"config keys changed: {', '.join(diff)}"
            return f"{key} {before[key]!r} became {after[key]!r}"
    return None


def check_undo(s: Subject, archs: Iterable[str], *, seq: int, seed: int) -> None:
    """Compose, run, undo on each of ``archs``; the model must be as before (state and outputs)."""

    def run(arch: str) -> None:
        lm = fixtures.tiny(arch)
        ids = fixtures.token_ids(seq, seed=seed)
        base = outputs(lm, ids)
        before = model_state(lm)
        with s.composed(lm) as pipe:
            outputs(lm, ids, pipe)
        diff = state_difference(before, model_state(lm))
        if diff:
            s.fail(f"the model of tiny-{arch} restored after undo of {s.words()}", diff)
        diff = difference(outputs(lm, ids), base, 0.0)
        if diff:
            s.fail(f"bit-identical outputs on tiny-{arch} after undo of {s.words()}", diff)

    s.over(archs, run)


def call_shape_error(method: Any, proto_method: Any) -> str | None:
    """Whether ``method`` can be called the way the Protocol's ``proto_method`` is called (positional
    parameters positionally, keyword-only ones by keyword); the TypeError text if not."""
    try:
        sig = inspect.signature(method)
    except (TypeError, ValueError):
        return None
    args, kwargs = [], {}
    for p in list(inspect.signature(proto_method).parameters.values())[1:]:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            args.append(None)
        elif p.kind == p.KEYWORD_ONLY:
            kwargs[p.name] = None
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        return str(e)
    return None
