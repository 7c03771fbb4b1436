"""Pipeline specs: which technique fills each slot, from CLI words, TOML files or Python.

A :class:`PipelineSpec` names the model and one component per slot — ``positional``, ``attention`` and
``kv`` (one each), ``reducers``, ``augmenters`` and ``evaluators`` (ordered lists). Each component is a
technique name plus parameters: ``pi:factor=4`` or ``streaming-llm:sinks=4,window=1024``. Specs
round-trip through TOML (save → load → the same pipeline).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from longctx.errors import SpecError
from longctx.params import config_values, format_value, make_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

#: Default technique of each single slot; "the unchanged model".
DEFAULTS = {"positional": "native", "attention": "sdpa", "kv": "dynamic"}
SINGLE_SLOTS = ("positional", "attention", "kv")
LIST_SLOTS = {"reducers": "reduction", "augmenters": "augmentation", "evaluators": "evaluation"}
SLOT_FAMILY = {"positional": "positional", "attention": "attention", "kv": "kv", **LIST_SLOTS}
#: CLI words accepted for each slot (``reduce=bm25`` adds to ``reducers``).
WORDS = {
    "positional": "positional",
    "pos": "positional",
    "attention": "attention",
    "attn": "attention",
    "kv": "kv",
    "reduce": "reducers",
    "reducer": "reducers",
    "augment": "augmenters",
    "eval": "evaluators",
    "model": "model",
}


@attrs.frozen
class ComponentSpec:
    """A technique name with its parameters (raw strings until validated)."""

    name: str
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)

    @classmethod
    def parse(cls, text: str) -> ComponentSpec:
        """Parse ``"name"`` or ``"name:key=value,key=value"``."""
        text = text.strip()
        name, _, rest = text.partition(":")
        name = name.strip()
        if not name:
            raise SpecError(f"empty technique name in {text!r}")
        params: dict[str, str] = {}
        if rest.strip():
            for item in rest.split(","):
                key, sep, value = item.partition("=")
                if not sep or not key.strip():
                    raise SpecError(f"malformed parameter {item!r} in {text!r}; write {name}:key=value,key=value")
                params[key.strip()] = value.strip()
        return cls(name, params)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={format_value(v)}" for k, v in self.params.items())


def _component(value: Any, where: str) -> ComponentSpec:
    if isinstance(value, ComponentSpec):
        return value
    if isinstance(value, str):
        return ComponentSpec.parse(value)
    if isinstance(value, Mapping):
        d = dict(value)
        name = d.pop("technique", None)
        if not isinstance(name, str):
            raise SpecError(f'{where}: a component table needs technique = "name"')
        return ComponentSpec(name, d)
    raise SpecError(f"{where}: expected a technique string or table, got {value!r}")


def _toml_value(v: Any) -> Any:
    """TOML has no null: ``None`` is written as ``"none"``, which reads back as ``None``."""
    if v is None:
        return "none"
    return list(v) if isinstance(v, tuple) else v


@attrs.frozen
class PipelineSpec:
    """What to compose: the model plus one technique per slot."""

    model: str | None = None
    #: ``None`` means "not chosen": the default technique is used, and a requirement may fill it.
    positional: ComponentSpec | None = None
    attention: ComponentSpec | None = None
    kv: ComponentSpec | None = None
    reducers: tuple[ComponentSpec, ...] = ()
    augmenters: tuple[ComponentSpec, ...] = ()
    evaluators: tuple[ComponentSpec, ...] = ()

    def slot(self, name: str) -> ComponentSpec:
        """The component in single slot ``name``, the default technique when none was chosen."""
        c = getattr(self, name)
        return c if c is not None else ComponentSpec(DEFAULTS[name])

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_words(cls, words: Iterable[str], base: PipelineSpec | None = None) -> PipelineSpec:
        """Parse CLI words such as ``positional=pi:factor=2 reduce=bm25:budget=1024``.

        Words override ``base`` for single slots and append to its lists.
        """
        spec = base or cls()
        changes: dict[str, Any] = {}
        lists = {k: list(getattr(spec, k)) for k in LIST_SLOTS}
        for word in words:
            slot_word, sep, value = word.partition("=")
            slot = WORDS.get(slot_word.strip())
            if not sep or slot is None:
                raise SpecError(
                    f"cannot read {word!r}: write SLOT=TECHNIQUE[:key=value,…] with SLOT one of "
                    + ", ".join(sorted(set(WORDS) - {"pos", "attn", "reducer"}))
                )
            if slot == "model":
                changes["model"] = value.strip() or None
            elif slot in LIST_SLOTS:
                lists[slot].append(ComponentSpec.parse(value))
            else:
                changes[slot] = ComponentSpec.parse(value)
        changes.update({k: tuple(v) for k, v in lists.items()})
        return attrs.evolve(spec, **changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PipelineSpec:
        """Build from the TOML layout (see :meth:`to_dict`)."""
        data = dict(data.get("pipeline", data))
        known = {"model", *SINGLE_SLOTS, *LIST_SLOTS}
        unknown = set(data) - known
        if unknown:
            raise SpecError(
                f"unknown key(s) {', '.join(sorted(unknown))} in pipeline spec; known: {', '.join(sorted(known))}"
            )
        kwargs: dict[str, Any] = {}
        if data.get("model") is not None:
            if not isinstance(data["model"], str):
                raise SpecError("model must be a string (a name, a folder or a .gguf file)")
            kwargs["model"] = data["model"]
        for slot in SINGLE_SLOTS:
            if slot in data:
                kwargs[slot] = _component(data[slot], slot)
        for slot in LIST_SLOTS:
            if slot in data:
                items = data[slot]
                if not isinstance(items, list):
                    raise SpecError(f"{slot} must be a list (use [[{slot}]] tables in TOML)")
                kwargs[slot] = tuple(_component(v, f"{slot}[{i}]") for i, v in enumerate(items))
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<string>") -> PipelineSpec:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise SpecError(f"{source}: malformed TOML: {e}") from None
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> PipelineSpec:
        """Read a spec from a TOML file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise SpecError(f"cannot read spec file {str(p)!r}: {e.strerror or e}") from None
        return cls.from_toml(text, source=str(p))

    # -- output ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The TOML layout: ``[pipeline]`` with ``[pipeline.SLOT]`` tables (``technique = …`` + params)."""

        def table(c: ComponentSpec) -> dict[str, Any]:
            return {
                "technique": c.name,
                **{k: _toml_value(v) for k, v in c.params.items()},
            }

        out: dict[str, Any] = {}
        if self.model is not None:
            out["model"] = self.model
        for slot in SINGLE_SLOTS:
            if getattr(self, slot) is not None:
                out[slot] = table(getattr(self, slot))
        for slot in LIST_SLOTS:
            items = getattr(self, slot)
            if items:
                out[slot] = [table(c) for c in items]
        return {"pipeline": out}

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml(), encoding="utf-8")

    def words(self) -> list[str]:
        """CLI words reproducing this spec (defaults omitted)."""
        out = []
        if self.model:
            out.append(f"model={self.model}")
        for slot in SINGLE_SLOTS:
            c = getattr(self, slot)
            if c is not None:
                out.append(f"{slot}={c}")
        rev = {"reducers": "reduce", "augmenters": "augment", "evaluators": "eval"}
        for slot in LIST_SLOTS:
            out += [f"{rev[slot]}={c}" for c in getattr(self, slot)]
        return out

    def __str__(self) -> str:
        return " ".join(self.words()) or "default"

    # -- validation ----------------------------------------------------------------------------

    def components(self) -> list[tuple[str, str, ComponentSpec]]:
        """``(slot, family, component)`` for every component, in application order."""
        out = [("reducers", "reduction", c) for c in self.reducers]
        out += [(s, SLOT_FAMILY[s], self.slot(s)) for s in ("positional", "kv", "attention")]
        out += [("augmenters", "augmentation", c) for c in self.augmenters]
        out += [("evaluators", "evaluation", c) for c in self.evaluators]
        return out

    def normalized(self, registry: Any) -> PipelineSpec:
        """Validate every technique and parameter against ``registry``; return the spec with typed
        parameter values (only those that differ from the defaults)."""

        def norm(family: str, c: ComponentSpec) -> ComponentSpec:
            tech = registry.get(family, c.name)
            cfg = make_config(tech.config, c.params, technique=c.name)
            return ComponentSpec(c.name, config_values(cfg, only_changed=True))

        kwargs: dict[str, Any] = {}
        for slot in SINGLE_SLOTS:
            c = getattr(self, slot)
            kwargs[slot] = None if c is None else norm(SLOT_FAMILY[slot], c)
        for slot, fam in LIST_SLOTS.items():
            kwargs[slot] = tuple(norm(fam, c) for c in getattr(self, slot))
        return attrs.evolve(self, **kwargs)
