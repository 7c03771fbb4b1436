"""Plugin loading and the technique registry.

Plugins come only from installed distributions' entry points in the group ``longctx.plugins`` —
first-party techniques take exactly the same path. Loading is isolated per plugin: one that fails to
import or register is recorded with its error and the others keep working, unless strict mode
(``LONGCTX_STRICT_PLUGINS=1``) re-raises. Plugins can be blocked by name (``LONGCTX_DISABLE_PLUGINS=a,b``
or ``lc -p no:NAME``).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable, Iterator

# Python >= 3.10's importlib.metadata has the selection API (entry_points(group=…), EntryPoint.dist)
# that importlib-metadata backported, so no extra dependency is needed on supported versions.
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import attrs
import pluggy

from longctx import hooks
from longctx.errors import DuplicateTechniqueError, PluginError, UnknownTechniqueError
from longctx.params import ParamInfo, params_of

ENTRY_POINT_GROUP = "longctx.plugins"
STRICT_ENV = "LONGCTX_STRICT_PLUGINS"
DISABLE_ENV = "LONGCTX_DISABLE_PLUGINS"


@attrs.frozen
class Technique:
    """One registered technique: a typed factory with its provenance."""

    family: str
    name: str
    config: type
    build: Callable[..., Any]
    summary: str
    paper: str
    requires: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    capabilities: frozenset[str] = frozenset()
    plugin: str = ""
    distribution: str | None = None
    version: str | None = None

    @property
    def params(self) -> list[ParamInfo]:
        """The technique's parameters (name, type, default, help)."""
        return params_of(self.config)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable listing entry."""
        return {
            "family": self.family,
            "name": self.name,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "summary": self.summary,
            "paper": self.paper,
            "requires": list(self.requires),
            "conflicts": list(self.conflicts),
            "capabilities": sorted(self.capabilities),
            "parameters": [
                {"name": p.name, "type": p.type, "default": _jsonable(p.default), "help": p.help} for p in self.params
            ],
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    if v is None or isinstance(v, (bool, int, float, str, list, dict)):
        return v
    return str(v)


@attrs.frozen
class PluginStatus:
    """What happened to one plugin (entry point) at load time."""

    name: str
    status: str  # "loaded" | "failed" | "blocked"
    distribution: str | None = None
    version: str | None = None
    module: str = ""
    error: str | None = None
    techniques: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self, value_serializer=lambda _i, _a, v: list(v) if isinstance(v, tuple) else v)


class Registry:
    """All loaded techniques, by family and name, plus the status of every plugin."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._techniques: dict[str, dict[str, Technique]] = {f: {} for f in hooks.FAMILIES}
        self.plugins: dict[str, PluginStatus] = {}

    # -- registration --------------------------------------------------------------------------

    def _add(self, technique: Technique) -> None:
        family = self._techniques[technique.family]
        if technique.name in family:
            other = family[technique.name]
            raise DuplicateTechniqueError(
                f"{technique.family} technique {technique.name!r} is registered by both plugin "
                f"{other.plugin!r} and plugin {technique.plugin!r}; block one with -p no:NAME"
            )
        family[technique.name] = technique

    def registrar(self, family: str, plugin: str, dist: str | None, version: str | None) -> hooks.Register:
        """A ``register`` callable bound to one family and plugin (for provenance)."""

        def register(
            name: str,
            *,
            config: type,
            build: Callable[..., Any],
            summary: str,
            paper: str,
            requires: Iterable[str] = (),
            conflicts: Iterable[str] = (),
            capabilities: Iterable[str] = (),
        ) -> None:
            if not isinstance(name, str) or not name or any(c in name for c in " =:,"):
                raise PluginError(f"plugin {plugin!r}: invalid technique name {name!r}")
            if not attrs.has(config):
                raise PluginError(f"plugin {plugin!r}: config of {name!r} must be an attrs class")
            try:
                config()
            except Exception as e:
                raise PluginError(
                    f"plugin {plugin!r}: config of {name!r} must construct from its defaults ({e})"
                ) from None
            if not callable(build):
                raise PluginError(f"plugin {plugin!r}: build of {name!r} is not callable")
            for dep in (*requires, *conflicts):
                _parse_ref(dep, where=f"plugin {plugin!r}, technique {name!r}")
            self._add(
                Technique(
                    family=family,
                    name=name,
                    config=config,
                    build=build,
                    summary=summary,
                    paper=paper,
                    requires=tuple(requires),
                    conflicts=tuple(conflicts),
                    capabilities=frozenset(capabilities),
                    plugin=plugin,
                    distribution=dist,
                    version=version,
                )
            )

        return register  # type: ignore[return-value]

    # -- queries -------------------------------------------------------------------------------

    def get(self, family: str, name: str) -> Technique:
        """The technique ``name`` of ``family``; an unknown name lists the available ones."""
        if family not in self._techniques:
            raise UnknownTechniqueError(f"unknown family {family!r}; families: {', '.join(hooks.FAMILIES)}")
        try:
            return self._techniques[family][name]
        except KeyError:
            available = ", ".join(sorted(self._techniques[family])) or "(none loaded)"
            hint = ""
            for other, techs in self._techniques.items():
                if name in techs and other != family:
                    hint = f" ({name!r} is a {other} technique)"
            raise UnknownTechniqueError(f"unknown {family} technique {name!r}{hint}; available: {available}") from None

    def techniques(self, family: str | None = None) -> Iterator[Technique]:
        """Every technique, optionally of one family, in family then name order."""
        for fam in hooks.FAMILIES:
            if family is None or fam == family:
                yield from (self._techniques[fam][n] for n in sorted(self._techniques[fam]))

    def failed(self) -> list[PluginStatus]:
        return [p for p in self.plugins.values() if p.status != "loaded"]


def _parse_ref(ref: str, *, where: str) -> tuple[str, str]:
    family, sep, name = ref.partition("=")
    if not sep or family not in hooks.FAMILIES or not name:
        raise PluginError(f"{where}: requirement/conflict {ref!r} must look like 'family=name'")
    return family, name


def parse_ref(ref: str) -> tuple[str, str]:
    """Split a ``"family=name"`` reference."""
    return _parse_ref(ref, where="reference")


def make_plugin_manager() -> pluggy.PluginManager:
    """A fresh plugin manager with every longctx hookspec added."""
    pm = pluggy.PluginManager(hooks.PROJECT)
    for mod in hooks.SPEC_MODULES:
        pm.add_hookspecs(mod)
    from longctx import _kernel_hooks

    pm.register(_kernel_hooks, name="longctx-kernel")
    return pm


def _env_list(name: str) -> list[str]:
    return [x.strip() for x in os.environ.get(name, "").split(",") if x.strip()]


def strict_default() -> bool:
    return os.environ.get(STRICT_ENV, "").lower() in {"1", "true", "yes", "on"}


def load_registry(
    *,
    blocked: Iterable[str] = (),
    strict: bool | None = None,
    extra_plugins: Iterable[tuple[str, object]] = (),
    entry_points_: Iterable[EntryPoint] | None = None,
) -> Registry:
    """Load every plugin from the entry-point group and collect their techniques.

    :param blocked: plugin (entry-point) or distribution names not to load, on top of
        ``LONGCTX_DISABLE_PLUGINS``.
    :param strict: re-raise the first plugin failure; defaults to ``LONGCTX_STRICT_PLUGINS``.
    :param extra_plugins: ``(name, module_or_object)`` pairs registered as if they came from entry
        points (for tests and embedding applications).
    :param entry_points_: override entry-point discovery (tests).
    """
    strict = strict_default() if strict is None else strict
    pm = make_plugin_manager()
    registry = Registry(pm)
    blocked_set = set(blocked) | set(_env_list(DISABLE_ENV))
    eps = list(entry_points(group=ENTRY_POINT_GROUP)) if entry_points_ is None else list(entry_points_)
    candidates: list[tuple[str, Callable[[], object], str | None, str | None, str]] = []
    for ep in eps:
        dist = getattr(ep, "dist", None)
        dname = dist.metadata["Name"] if dist is not None else None
        dver = dist.version if dist is not None else None
        candidates.append((ep.name, ep.load, dname, dver, ep.value))
    for name, obj in extra_plugins:
        candidates.append((name, (lambda o=obj: o), None, None, getattr(obj, "__name__", repr(obj))))

    seen: set[str] = set()
    for name, load, dname, dver, value in candidates:
        if name in seen:  # the same distribution installed twice (e.g. editable + wheel)
            continue
        seen.add(name)
        if name in blocked_set or (dname and dname in blocked_set):
            pm.set_blocked(name)
            registry.plugins[name] = PluginStatus(name, "blocked", dname, dver, value)
            continue
        before = {t.family + "/" + t.name for t in registry.techniques()}
        plugin: object = None
        try:
            plugin = load()
            pm.register(plugin, name=name)
            _collect(registry, pm, plugin, name, dname, dver)
        except Exception as e:
            if plugin is not None and pm.is_registered(plugin):
                pm.unregister(plugin)
            # roll back whatever the plugin registered before it failed
            for fam in hooks.FAMILIES:
                for tname in list(registry._techniques[fam]):
                    if f"{fam}/{tname}" not in before and registry._techniques[fam][tname].plugin == name:
                        del registry._techniques[fam][tname]
            if strict:
                if isinstance(e, PluginError):
                    raise
                raise PluginError(f"plugin {name!r} ({value}) failed to load: {e!r}") from e
            err = "".join(traceback.format_exception_only(type(e), e)).strip()
            registry.plugins[name] = PluginStatus(name, "failed", dname, dver, value, err)
            continue
        techs = tuple(f"{t.family}/{t.name}" for t in registry.techniques() if t.plugin == name)
        registry.plugins[name] = PluginStatus(name, "loaded", dname, dver, value, None, techs)
    pm.hook.lc_configure.call_historic(kwargs={"registry": registry})
    return registry


def _collect(
    registry: Registry, pm: pluggy.PluginManager, plugin: object, name: str, dist: str | None, ver: str | None
) -> None:
    """Call each registration hook implemented by ``plugin`` with a registrar bound to it."""
    for family, hook_name in hooks.REGISTRATION_HOOKS.items():
        caller = getattr(pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin:
                impl.function(register=registry.registrar(family, name, dist, ver))


_DEFAULT: Registry | None = None


def get_registry(*, reload: bool = False, blocked: Iterable[str] = ()) -> Registry:
    """The process-wide registry, loaded on first use. With ``blocked``, a separate registry without
    those plugins is loaded and returned (the process-wide one is left alone)."""
    global _DEFAULT
    blocked = tuple(blocked)
    if blocked:
        return load_registry(blocked=blocked)
    if _DEFAULT is None or reload:
        _DEFAULT = load_registry()
    return _DEFAULT


def set_registry(registry: Registry | None) -> None:
    """Replace the process-wide registry (tests, embedding applications)."""
    global _DEFAULT
    _DEFAULT = registry
