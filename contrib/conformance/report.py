"""Check results and the report ``check_plugin``/``check_technique`` return (and ``lc check`` prints)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs

#: The outcomes of one check. ``xfailed``: it failed and the contract lists it in ``expected_failures``;
#: a listed check that *passes* is reported ``failed`` (strict, as scikit-learn's ``xfail_strict``).
OUTCOMES = ("passed", "failed", "skipped", "xfailed")


@attrs.frozen
class CheckResult:
    """The outcome of one check on one subject (``"plugin:NAME"`` or ``"family/technique"``)."""

    check: str
    subject: str
    outcome: str
    #: why it was skipped or expected to fail; for a failure, the full message
    reason: str | None = None
    expected: str | None = None
    seen: str | None = None
    duration: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"

    def text(self) -> str:
        """One readable paragraph: which check on what, what was expected, what was seen."""
        head = f"{self.check} [{self.subject}]"
        if self.outcome == "failed" and self.expected is not None:
            text = f"{head}\n  expected: {self.expected}\n  seen:     {self.seen}"
            if self.reason and not self.reason.startswith(f"{self.check}: expected"):
                # an XPASS(strict) note, or the traceback of an error the technique raised
                text += "\n" + "\n".join("  " + line for line in self.reason.splitlines())
            return text
        return f"{head}: {self.outcome}" + (f" ({self.reason})" if self.reason else "")

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["notes"] = list(self.notes)
        d["duration"] = round(self.duration, 4)
        return d


@attrs.frozen
class Report:
    """The results of every check run for a plugin or technique."""

    #: what was checked: ``"plugin:NAME"`` or ``"family/technique"``
    target: str
    results: tuple[CheckResult, ...] = ()

    @property
    def ok(self) -> bool:
        """No check failed (skipped and expected failures are fine)."""
        return all(r.ok for r in self.results)

    def __iter__(self) -> Iterator[CheckResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def by_outcome(self, outcome: str) -> list[CheckResult]:
        return [r for r in self.results if r.outcome == outcome]

    @property
    def passed(self) -> list[CheckResult]:
        return self.by_outcome("passed")

    @property
    def failed(self) -> list[CheckResult]:
        return self.by_outcome("failed")

    @property
    def skipped(self) -> list[CheckResult]:
        return self.by_outcome("skipped")

    @property
    def xfailed(self) -> list[CheckResult]:
        return self.by_outcome("xfailed")

    def result(self, check: str, subject: str | None = None) -> CheckResult:
        """The result of ``check`` (on ``subject``, when several subjects ran it)."""
        for r in self.results:
            if r.check == check and (subject is None or r.subject == subject):
                return r
        raise KeyError(f"no result for {check!r}" + (f" on {subject!r}" if subject else ""))

    def counts(self) -> dict[str, int]:
        c = Counter(r.outcome for r in self.results)
        return {o: c.get(o, 0) for o in OUTCOMES}

    def summary(self) -> str:
        c = self.counts()
        return ", ".join(f"{n} {o}" for o, n in c.items() if n) or "no checks"

    def merge(self, other: Report, target: str | None = None) -> Report:
        return Report(target or self.target, self.results + other.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "counts": self.counts(),
            "results": [r.to_json() for r in self.results],
        }

    def __str__(self) -> str:
        lines = [f"{self.target}: {self.summary()}"]
        lines += [r.text() for r in self.failed]
        return "\n".join(lines)
