"""``lc check NAME [--json]``: run the conformance kit on a plugin or a technique and print its report.

NAME is a plugin (entry-point) name — every technique it registers is checked, with the plugin-level
checks — or a technique name (in every family that has one). The exit status is 0 when no check failed
(skipped checks and declared expected failures are fine), 1 when one did, 2 for a name nothing answers to.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow", "xfailed": "magenta"}
_MARK = {"passed": "✓", "failed": "✗", "skipped": "–", "xfailed": "x"}


def _registry(ctx: click.Context) -> Any:
    """The registry to check against: ``ctx.obj["registry"]`` when given (tests, embedding), else every
    installed plugin loaded non-strictly (a broken plugin must be reported, not abort the command),
    minus those blocked with ``lc -p no:NAME``."""
    obj = ctx.find_root().obj or {}
    if obj.get("registry") is not None:
        return obj["registry"]
    from longctx.registry import load_registry

    return load_registry(strict=False, blocked=obj.get("blocked", ()))


def run_checks(name: str, registry: Any, select: tuple[str, ...] = ()) -> list[Any]:
    """The reports for NAME: one for a plugin, one per family for a technique name."""
    from longctx.contrib.conformance import check_plugin, check_technique
    from longctx.errors import UnknownTechniqueError

    if name in registry.plugins:
        return [check_plugin(name, registry=registry, select=select or None)]
    techs = [t for t in registry.techniques() if t.name == name]
    if techs:
        return [check_technique(t.family, t.name, registry=registry, select=select or None) for t in techs]
    from longctx.contrib.conformance.subject import _entry_point

    if _entry_point(name) is not None:  # installed but not in this registry (blocked): check it anyway
        return [check_plugin(name, registry=registry, select=select or None)]
    plugins = ", ".join(sorted(registry.plugins)) or "(none)"
    names = ", ".join(sorted({t.name for t in registry.techniques()})) or "(none)"
    raise UnknownTechniqueError(f"no plugin or technique named {name!r}; plugins: {plugins}; techniques: {names}")


def _print(console: Console, reports: list[Any], verbose: bool) -> None:
    for report in reports:
        table = Table(title=f"[bold]{report.target}[/]  {report.summary()}", title_justify="left", expand=True)
        table.add_column("check", no_wrap=True)
        table.add_column("outcome", no_wrap=True, min_width=7)
        table.add_column("s", justify="right", no_wrap=True, style="dim")
        table.add_column("reason", overflow="fold", ratio=1)
        subject = None
        for r in report.results:
            if r.subject != subject:
                if subject is not None:
                    table.add_section()
                subject = r.subject
                table.add_row(f"[bold]{subject}[/]", "", "", "")
            style = _STYLE[r.outcome]
            why = (
                f"expected {r.expected}" if r.outcome == "failed" else ("" if r.outcome == "passed" else r.reason or "")
            )
            if verbose and r.notes:
                why = "\n".join(filter(None, [why, *r.notes]))
            table.add_row(
                f"[{style}]{_MARK[r.outcome]}[/] {r.check}", f"[{style}]{r.outcome}[/]", f"{r.duration:.2f}", why
            )
        console.print(table)
        for r in report.failed:
            console.print(f"[bold red]✗ {r.check}[/] [dim]({r.subject})[/]", highlight=False)
            console.print(f"    expected: {r.expected}", highlight=False, soft_wrap=True)
            console.print(f"    seen:     {r.seen}", highlight=False, soft_wrap=True)
            if r.reason and r.reason.startswith("XPASS"):
                console.print(f"    {r.reason}", highlight=False, soft_wrap=True)


def _list_checks(as_json: bool) -> None:
    from longctx.contrib.conformance import describe_checks

    checks = describe_checks()
    if as_json:
        click.echo(json.dumps(checks, indent=2, ensure_ascii=False))
        return
    table = Table(title="[bold]conformance checks[/]", title_justify="left", expand=True)
    table.add_column("check", no_wrap=True, style="bold")
    table.add_column("what it verifies", overflow="fold", ratio=1)
    for c in checks:
        table.add_row(c["name"], c["doc"])
    Console().print(table)


@click.command("check")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
@click.option("--list-checks", "list_checks", is_flag=True, help="List every check and what it verifies, then exit.")
@click.option(
    "--check",
    "-k",
    "select",
    multiple=True,
    metavar="TEXT",
    help="Run only the checks whose name contains TEXT (repeatable), e.g. -k kv. or -k nbytes.",
)
@click.option("--verbose", "-v", is_flag=True, help="Also show the notes of each check (fixtures skipped, …).")
@click.pass_context
def check_cmd(
    ctx: click.Context, name: str | None, as_json: bool, list_checks: bool, select: tuple[str, ...], verbose: bool
) -> None:
    """Check that plugin or technique NAME honours the contract of its family.

    Runs the conformance kit: static checks (entry point, hookimpls, names, config, CLI/TOML round-trip,
    Protocol, describe()) and the family's behavioural checks on tiny random models. Each failure says
    which check, what was expected and what was seen. Exits 1 if any check failed.
    """
    from longctx.errors import LongctxError

    if list_checks:
        _list_checks(as_json)
        return
    if not name:
        raise click.UsageError("give a plugin or technique NAME (or --list-checks)")
    try:
        reports = run_checks(name, _registry(ctx), select)
    except LongctxError as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    ok = all(r.ok for r in reports)
    if as_json:
        data = reports[0].to_json() if len(reports) == 1 else {"ok": ok, "reports": [r.to_json() for r in reports]}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        console = Console()
        _print(console, reports, verbose)
        total = reports[0]
        for r in reports[1:]:
            total = total.merge(r)
        verdict = "[bold green]conforms[/]" if ok else "[bold red]does not conform[/]"
        console.print(f"{name}: {verdict} — {total.summary()}", highlight=False)
    if not ok:
        sys.exit(1)
