"""The check registry: every conformance check is a plain function with a stable name.

A check takes a :class:`~longctx.contrib.conformance.subject.Subject` (the technique or plugin under test,
its contract, the registry and the kit's fixtures) and either returns (passed), raises
:class:`CheckFailure` (violated: which check, what was expected, what was seen) or raises
:class:`CheckSkipped` (the check does not apply: a capability the technique or the contract does not
declare). Anything else a check lets escape is reported as a failure of that check.

Names are ``"<group>.<what_is_checked>"`` — ``plugin.*`` for a plugin, ``static.*`` for every technique,
and the family name (``positional.*``, ``attention.*``, ``kv.*``, ``reduction.*``, ``augmentation.*``,
``evaluation.*``) for behaviour. They are stable: ``expected_failures`` maps them to reasons, and pytest
test ids carry them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from longctx.contrib.conformance.subject import Subject

#: The groups of checks, in the order they run: plugin-level, per technique, then each family's behaviour.
GROUPS: tuple[str, ...] = (
    "plugin",
    "static",
    "positional",
    "attention",
    "kv",
    "reduction",
    "augmentation",
    "evaluation",
)


class CheckFailure(Exception):
    """A contract violation: ``check`` expected ``expected`` but saw ``seen``."""

    def __init__(self, check: str, expected: str, seen: str, *, detail: str | None = None) -> None:
        self.check = check
        self.expected = expected
        self.seen = seen
        self.detail = detail
        super().__init__(self.message())

    def message(self) -> str:
        text = f"{self.check}: expected {self.expected}; seen {self.seen}"
        return text + (f"\n{self.detail}" if self.detail else "")


class CheckSkipped(Exception):
    """The check does not apply (say why: a missing capability, an undeclared contract attribute)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@attrs.frozen
class Check:
    """One registered check."""

    name: str
    group: str
    fn: Callable[[Subject], None]

    @property
    def doc(self) -> str:
        """What the check verifies (the first paragraph of its docstring)."""
        text = " ".join((self.fn.__doc__ or "").strip().split("\n\n")[0].split())
        text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([^`]+)`", r"\1", text)  # :func:`~a.b.name` -> name
        return text.replace("``", "")

    def __call__(self, subject: Subject) -> None:
        self.fn(subject)


_CHECKS: dict[str, Check] = {}


def check(name: str) -> Callable[[Callable[[Subject], None]], Callable[[Subject], None]]:
    """Register the decorated function as the check ``name`` (``"group.what"``)."""
    group, sep, rest = name.partition(".")
    if not sep or group not in GROUPS or not rest:
        raise ValueError(f"check name {name!r} must be '<group>.<name>' with group one of {', '.join(GROUPS)}")

    def deco(fn: Callable[[Subject], None]) -> Callable[[Subject], None]:
        if name in _CHECKS and _CHECKS[name].fn is not fn:
            raise ValueError(f"check {name!r} is registered twice")
        if not (fn.__doc__ or "").strip():
            raise ValueError(f"check {name!r} needs a docstring saying what it checks")
        _CHECKS[name] = Check(name, group, fn)
        return fn

    return deco


def _load_all() -> None:
    # importing the modules registers their checks
    from longctx.contrib.conformance import (  # noqa: F401
        attention,
        augmentation,
        evaluation,
        kv,
        positional,
        reduction,
        static,
    )


def all_checks() -> dict[str, Check]:
    """Every check, by name, in run order."""
    _load_all()
    order = {g: i for i, g in enumerate(GROUPS)}
    return dict(sorted(_CHECKS.items(), key=lambda kv: order[kv[1].group]))


def checks_in(*groups: str) -> Iterator[Check]:
    """The checks of ``groups``, in registration order."""
    for c in all_checks().values():
        if c.group in groups:
            yield c


def get_check(name: str) -> Check:
    checks = all_checks()
    try:
        return checks[name]
    except KeyError:
        raise KeyError(f"unknown check {name!r}; checks: {', '.join(checks)}") from None


def describe_checks() -> list[dict[str, Any]]:
    """Every check with its group and what it verifies (for docs and ``lc check --list``)."""
    return [{"name": c.name, "group": c.group, "doc": c.doc} for c in all_checks().values()]
