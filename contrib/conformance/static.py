"""Static checks: the plugin loads and registers cleanly, and every technique's registration is sound.

Plugin-level checks (``plugin.*``) judge the plugin as a whole; technique-level checks (``static.*``) judge
each ``register(...)`` call as the plugin made it (recorded by
:func:`~longctx.contrib.conformance.subject.inspect_plugin`, so a registration the kernel refused still
gets a precise verdict) and the technique as the registry holds it.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs

from longctx.contrib.conformance import fixtures
from longctx.contrib.conformance.checks import check
from longctx.contrib.conformance.subject import Refused, Subject, call_shape_error

# -- plugin level --------------------------------------------------------------------------------


def _inspection(s: Subject):
    if s.inspection is None:
        s.skip("no plugin to inspect")
    return s.inspection


@check("plugin.entry_point_loads")
def entry_point_loads(s: Subject) -> None:
    """The plugin's entry point (or module) imports and yields the plugin object."""
    ins = _inspection(s)
    if ins.status is not None and ins.status.status == "blocked":
        s.skip(f"plugin {ins.name!r} is blocked (LONGCTX_DISABLE_PLUGINS or -p no:NAME)")
    if ins.plugin is None:
        s.fail("the entry point to import and yield the plugin object", ins.load_error or "nothing to load")


@check("plugin.hookimpls_validate")
def hookimpls_validate(s: Subject) -> None:
    """Every ``@hookimpl`` of the plugin matches a longctx hookspec: pluggy accepts it on registration
    (argument names are a subset of the spec's) and ``check_pending()`` finds no hook without a spec."""
    ins = _inspection(s)
    if ins.plugin is None:
        s.skip("the plugin did not load (see plugin.entry_point_loads)")
    if ins.hook_error:
        s.fail("hookimpls that match the longctx hookspecs", ins.hook_error)


@check("plugin.registration_runs")
def registration_runs(s: Subject) -> None:
    """The plugin's registration hooks run to completion (called with a ``register`` that accepts
    anything, so only the plugin's own code can fail here)."""
    ins = _inspection(s)
    if ins.plugin is None:
        s.skip("the plugin did not load (see plugin.entry_point_loads)")
    if ins.registration_error:
        s.fail("the registration hooks to return without raising", ins.registration_error)


@check("plugin.technique_names_unique")
def technique_names_unique(s: Subject) -> None:
    """No technique name is registered twice in one family, by this plugin or by it and another plugin."""
    ins = _inspection(s)
    if ins.plugin is None:
        s.skip("the plugin did not load (see plugin.entry_point_loads)")
    counts = Counter((r.family, r.name) for r in ins.registrations)
    dups = [f"{f} {n!r} ({c}×)" for (f, n), c in counts.items() if c > 1]
    if dups:
        s.fail("each technique name once per family", "registered more than once: " + ", ".join(dups))
    clashes = []
    for (family, name), _ in counts.items():
        try:
            other = s.registry.get(family, name)
        except Exception:
            continue
        if other.plugin != ins.name:
            clashes.append(f"{family} {name!r} is also registered by plugin {other.plugin!r}")
    err = ins.status.error if ins.status is not None else None
    if err and "registered by both plugin" in err:
        clashes.append(err)
    if clashes:
        s.fail("technique names no other plugin uses", "; ".join(clashes))


@check("plugin.registered_by_kernel")
def registered_by_kernel(s: Subject) -> None:
    """The kernel's loader accepted the plugin: ``lc plugins`` reports it ``loaded`` with every technique
    it registers."""
    ins = _inspection(s)
    st = ins.status
    if st is None:
        s.skip(f"the registry does not know plugin {ins.name!r}")
    if st.status == "blocked":
        s.skip("blocked")
    if st.status != "loaded":
        s.fail("status 'loaded'", f"status {st.status!r}: {st.error}")
    made = {f"{r.family}/{r.name}" for r in ins.registrations}
    missing = sorted(made - set(st.techniques))
    if missing:
        s.fail(f"the registry to hold {', '.join(sorted(made))}", f"missing {', '.join(missing)}")


# -- technique level: the register() call ------------------------------------------------------------


def _registration(s: Subject):
    if s.registration is None:
        s.skip("the plugin's register() call for this technique was not found")
    return s.registration


def _config_cls(s: Subject) -> Any:
    if s.registration is not None:
        return s.registration.get("config")
    return s.require_technique().config


@check("static.registered")
def registered(s: Subject) -> None:
    """The technique is in the registry (the kernel accepted its registration)."""
    if s.technique is None:
        why = ""
        ins = s.inspection
        if ins is not None and ins.status is not None and ins.status.error:
            why = f" (plugin {ins.name!r}: {ins.status.error})"
        try:
            s.registry.get(s.family, s.name)
        except Exception as e:
            s.fail(f"{s.family} technique {s.name!r} in the registry", f"{e}{why}")


@check("static.register_call_valid")
def register_call_valid(s: Subject) -> None:
    """``register`` is called as the hookspec documents: ``register(name, *, config, build, summary,
    paper, requires=(), conflicts=(), capabilities=())``; the name is a non-empty string without spaces,
    ``=``, ``:`` or ``,`` (it has to survive CLI words such as ``name:key=value``)."""
    from longctx.hooks import Register

    reg = _registration(s)
    try:
        inspect.signature(Register.__call__).bind(None, *reg.args, **reg.kwargs)
    except TypeError as e:
        s.fail("register(name, *, config=, build=, summary=, paper=[, requires=, conflicts=, capabilities=])", str(e))
    name = reg.name
    if not isinstance(name, str) or not name or any(c in name for c in " =:,\t\n"):
        s.fail("a non-empty technique name without spaces, '=', ':' or ','", repr(name))
    for key in ("requires", "conflicts", "capabilities"):
        value = reg.get(key, ())
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            s.fail(f"{key} as an iterable of strings", repr(value))


@check("static.config_is_attrs")
def config_is_attrs(s: Subject) -> None:
    """The config is an attrs class (so its fields are typed parameters the CLI, TOML and ``lc plugins``
    can read)."""
    cls = _config_cls(s)
    if not (isinstance(cls, type) and attrs.has(cls)):
        s.fail("an attrs class (@attrs.frozen)", f"{cls!r}")


@check("static.config_frozen")
def config_frozen(s: Subject) -> None:
    """The config is frozen: a built component can rely on its parameters not changing."""
    cls = _config_cls(s)
    if not (isinstance(cls, type) and attrs.has(cls)):
        s.skip("the config is not an attrs class (see static.config_is_attrs)")
    try:
        inst = cls()
    except Exception:
        s.skip("the config does not construct from defaults (see static.config_defaults_construct)")
    fields = attrs.fields(cls)
    if not fields:
        return
    try:
        setattr(inst, fields[0].name, getattr(inst, fields[0].name))
    except attrs.exceptions.FrozenInstanceError:
        return
    except Exception:
        return
    s.fail("a frozen attrs class (@attrs.frozen)", f"{cls.__name__}.{fields[0].name} can be assigned")


@check("static.config_defaults_construct")
def config_defaults_construct(s: Subject) -> None:
    """Every config field has a default, and ``config()`` constructs (the defaults pass the validators)."""
    cls = _config_cls(s)
    if not (isinstance(cls, type) and attrs.has(cls)):
        s.skip("the config is not an attrs class (see static.config_is_attrs)")
    missing = [f.name for f in attrs.fields(cls) if f.default is attrs.NOTHING]
    if missing:
        s.fail(f"a default for every field of {cls.__name__}", f"no default for {', '.join(missing)}")
    try:
        cls()
    except Exception as e:
        s.fail(f"{cls.__name__}() to construct from its defaults", f"{type(e).__name__}: {e}")


@check("static.build_callable")
def build_callable(s: Subject) -> None:
    """``build`` is callable as ``build(config, ctx)``."""
    build = _registration(s).get("build")
    if not callable(build):
        s.fail("a callable build(config, ctx)", repr(build))
    try:
        inspect.signature(build).bind(None, None)
    except TypeError as e:
        s.fail("build(config, ctx) to accept two positional arguments", str(e))
    except ValueError:
        pass


@check("static.summary_and_paper")
def summary_and_paper(s: Subject) -> None:
    """``summary`` is one non-empty line and ``paper`` names the source (non-empty)."""
    reg = _registration(s)
    summary, paper = reg.get("summary"), reg.get("paper")
    if not isinstance(summary, str) or not summary.strip() or "\n" in summary.strip():
        s.fail("a one-line summary", repr(summary))
    if not isinstance(paper, str) or not paper.strip():
        s.fail("the paper (authors, year, arXiv id or DOI)", repr(paper))


@check("static.references_valid")
def references_valid(s: Subject) -> None:
    """``requires``/``conflicts`` read ``family=name``, and every required technique is registered."""
    from longctx import hooks

    reg = _registration(s)
    for key in ("requires", "conflicts"):
        for ref in reg.get(key, ()) or ():
            family, sep, name = str(ref).partition("=")
            if not sep or family not in hooks.FAMILIES or not name:
                s.fail(f"{key} entries like 'kv=sink-window' (family one of {', '.join(hooks.FAMILIES)})", repr(ref))
            if key == "requires":
                try:
                    s.registry.get(family, name)
                except Exception as e:
                    s.fail(f"the required {family} technique {name!r} to be registered", str(e))


def _format_values(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items()) or "(no parameters)"


@check("static.config_roundtrip")
def config_roundtrip(s: Subject) -> None:
    """The config survives the CLI and TOML, for the defaults and for the contract's parameters: every
    value written as ``name:key=value,…`` (:class:`~longctx.spec.ComponentSpec`) and parsed back gives an
    equal config; and the spec as ``lc compose --save`` writes it (normalised: the values that differ
    from the defaults) saved as TOML and loaded back gives an equal config."""
    from longctx.params import config_values, make_config
    from longctx.spec import ComponentSpec, PipelineSpec

    tech = s.require_technique()
    for label, params in (("defaults", {}), ("contract params", s.params)):
        try:
            cfg = make_config(tech.config, params, technique=tech.name)
        except Exception as e:
            s.fail(f"the {label} to make a config", f"{type(e).__name__}: {e}")
        values = config_values(cfg)
        text = str(ComponentSpec(tech.name, values))
        try:
            via_cli = make_config(tech.config, ComponentSpec.parse(text).params, technique=tech.name)
        except Exception as e:
            s.fail(f"the CLI string {text!r} to parse back", f"{type(e).__name__}: {e}")
        if via_cli != cfg:
            s.fail(
                f"the CLI string {text!r} to give back {_format_values(values)}",
                _format_values(config_values(via_cli)),
            )
        toml = "(not written)"
        try:
            toml = s.spec(values).normalized(s.registry).to_toml()
            loaded = PipelineSpec.from_toml(toml).normalized(s.registry)
            comp = next(c for _slot, fam, c in loaded.components() if fam == s.family and c.name == tech.name)
            via_toml = make_config(tech.config, comp.params, technique=tech.name)
        except Exception as e:
            s.fail(
                f"the spec with {_format_values(values)} to save as TOML and load back",
                f"{type(e).__name__}: {e}",
                toml,
            )
        if via_toml != cfg:
            s.fail(
                f"the TOML round-trip to give back {_format_values(values)}",
                _format_values(config_values(via_toml)),
                detail=toml,
            )


@contextlib.contextmanager
def _composed_somewhere(s: Subject) -> Iterator[tuple[Any, str]]:
    """Compose the technique (contract params) on the first fixture architecture it accepts."""
    refusals = []
    for arch in s.contract.archs:
        try:
            with s.composed(fixtures.tiny(arch)) as pipe:
                yield pipe, arch
                return
        except Refused as e:
            refusals.append(f"tiny-{arch}: {e}")
    s.fail(
        f"{s.words()} to compose on one of the fixture models ({', '.join(s.contract.archs)})",
        "; ".join(refusals),
    )


@check("static.satisfies_protocol")
def satisfies_protocol(s: Subject) -> None:
    """The component ``build`` returns (composed on a tiny fixture model) is an instance of the family's
    runtime-checkable Protocol, and its methods accept the calls the Protocol documents."""
    from longctx.contrib.conformance.subject import SLOTS
    from longctx.hooks.attention import AttentionPattern
    from longctx.hooks.augmentation import Augmenter
    from longctx.hooks.evaluation import EvalTask
    from longctx.hooks.kv import KVStore
    from longctx.hooks.positional import PositionalEncoding
    from longctx.hooks.reduction import ContextReducer

    protocols = {
        "positional": PositionalEncoding,
        "attention": AttentionPattern,
        "kv": KVStore,
        "reduction": ContextReducer,
        "augmentation": Augmenter,
        "evaluation": EvalTask,
    }
    s.require_technique()
    proto = protocols[s.family]
    with _composed_somewhere(s) as (pipe, _arch):
        comp = pipe.components[SLOTS[s.family]]
        comp = comp[0] if isinstance(comp, list) else comp
    if not isinstance(comp, proto):
        members = [n for n in proto.__dict__ if not n.startswith("_")]
        missing = [n for n in members if not hasattr(comp, n)]
        s.fail(f"an instance of {proto.__name__}", f"{type(comp).__name__} lacks {', '.join(missing) or '?'}")
    for name, member in proto.__dict__.items():
        if name.startswith("_") or not callable(member):
            continue
        err = call_shape_error(getattr(comp, name), member)
        if err:
            sig = str(inspect.signature(member)).replace("self, ", "")
            s.fail(f"{type(comp).__name__}.{name} callable as {name}{sig}", err)


@check("static.describe_is_json")
def describe_is_json(s: Subject) -> None:
    """``describe()`` of a pipeline composed with the technique is JSON-serialisable (it is what
    ``lc compose --json`` prints), as is the KV store's own ``describe()``."""
    s.require_technique()
    with _composed_somewhere(s) as (pipe, arch):
        for what, value in (
            ("Pipeline.describe()", pipe.describe()),
            ("the KV store's describe()", pipe.kv.describe()),
        ):
            try:
                json.dumps(value)
            except (TypeError, ValueError) as e:
                s.fail(f"{what} to be JSON-serialisable (on tiny-{arch})", f"{e}: {value!r:.300}")
