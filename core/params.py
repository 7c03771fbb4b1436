"""Technique parameters: typed, frozen attrs configs parsed from CLI strings, TOML and Python.

A technique's config is a frozen attrs class whose fields all have defaults. Values arrive as strings
from the command line (``"pi:factor=4"``) or as TOML/JSON scalars; :func:`make_config` converts them to
the field's declared type and runs the attrs validators, so every error names the technique, the
parameter and what was wrong.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

import attrs

from longctx.errors import ParameterError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@attrs.frozen
class ParamInfo:
    """One parameter of a technique, for listings and docs."""

    name: str
    type: str
    default: Any
    help: str = ""


def _field_types(cls: type) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # pragma: no cover - unresolvable annotations fall back to raw ones
        hints = {}
    return {f.name: hints.get(f.name, f.type) for f in attrs.fields(cls)}


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    text = str(tp).replace("typing.", "")
    return text


def params_of(cls: type) -> list[ParamInfo]:
    """The parameters of config class ``cls`` with type names, defaults and help (``metadata["help"]``)."""
    types = _field_types(cls)
    out = []
    for f in attrs.fields(cls):
        default = f.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()  # type: ignore[union-attr]
        out.append(ParamInfo(f.name, _type_name(types[f.name]), default, f.metadata.get("help", "")))
    return out


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Convert ``value`` (a CLI string or a TOML scalar) to type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None or (isinstance(value, str) and value.lower() in {"none", "null", ""}):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where)
            except ParameterError as e:
                errors.append(str(e))
        raise ParameterError(f"{where}: cannot read {value!r} as {_type_name(tp)}")
    if origin in (tuple, list):
        items = value.split(";") if isinstance(value, str) else list(value)
        inner = args[0] if args else str
        conv = [_convert(v.strip() if isinstance(v, str) else v, inner, where) for v in items if v != ""]
        return tuple(conv) if origin is tuple else conv
    if origin is typing.Literal:
        for a in args:
            if str(a) == str(value):
                return a
        raise ParameterError(f"{where}: {value!r} is not one of {', '.join(map(str, args))}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ParameterError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ParameterError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).replace("_", ""))
        except ValueError:
            raise ParameterError(f"{where}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ParameterError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        return str(value)
    return value


def make_config(cls: type, values: Mapping[str, Any], *, technique: str) -> Any:
    """Build config ``cls`` from ``values`` (strings or scalars), converting and validating each.

    :raises ParameterError: on an unknown parameter (listing the valid ones), a wrong type or a value
        the config's validators refuse.
    """
    types = _field_types(cls)
    kwargs: dict[str, Any] = {}
    for key, raw in values.items():
        name = key.replace("-", "_")
        if name not in types:
            valid = ", ".join(types) or "(none)"
            raise ParameterError(f"{technique}: unknown parameter {key!r}; valid parameters: {valid}")
        kwargs[name] = _convert(raw, types[name], f"{technique}:{key}")
    try:
        return cls(**kwargs)
    except ParameterError as e:
        if str(e).startswith(f"{technique}:"):
            raise
        raise ParameterError(f"{technique}: {e}") from None
    except (TypeError, ValueError) as e:
        raise ParameterError(f"{technique}: {e}") from None


def config_values(config: Any, *, only_changed: bool = False) -> dict[str, Any]:
    """The config's parameters as a plain, TOML/JSON-friendly dict."""
    out: dict[str, Any] = {}
    for f in attrs.fields(type(config)):
        v = getattr(config, f.name)
        default = f.default.factory() if isinstance(f.default, attrs.Factory) else f.default  # type: ignore
        if only_changed and v == default:
            continue
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def format_value(v: Any) -> str:
    """A value as it would be written on the command line."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return ";".join(format_value(x) for x in v)
    if v is None:
        return "none"
    return str(v)


# -- validators shared by technique configs ------------------------------------------------------


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ParameterError(msg)


def positive(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: value > 0."""
    _check(value is not None and value > 0, f"{attribute.name} must be > 0, got {value!r}")


def non_negative(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    """attrs validator: value >= 0."""
    _check(value is not None and value >= 0, f"{attribute.name} must be >= 0, got {value!r}")


def at_least(bound: float):
    """attrs validator factory: value >= bound."""

    def _v(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        _check(value is not None and value >= bound, f"{attribute.name} must be >= {bound}, got {value!r}")

    return _v


def in_range(lo: float, hi: float):
    """attrs validator factory: lo <= value <= hi."""

    def _v(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        _check(
            value is not None and lo <= value <= hi,
            f"{attribute.name} must be between {lo} and {hi}, got {value!r}",
        )

    return _v


def optional(validator: Any):
    """attrs validator factory: ``None`` is accepted, anything else goes through ``validator``."""
    return attrs.validators.optional(validator)


def one_of(*choices: str):
    """attrs validator factory: value is one of ``choices``."""

    def _v(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
        _check(value in choices, f"{attribute.name} must be one of {', '.join(choices)}, got {value!r}")

    return _v
