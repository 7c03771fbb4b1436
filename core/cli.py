"""The ``lc`` command line: list techniques, compose pipelines, evaluate them.

Every command accepts ``--json`` for machines. Errors a user can act on print one clear message and
exit non-zero, without a traceback (set ``LONGCTX_DEBUG=1`` to see one).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from longctx import __version__
from longctx.errors import InputError, LongctxError, SpecError

console = Console()
err_console = Console(stderr=True)


def _registry(ctx: click.Context) -> Any:
    from longctx.registry import get_registry

    blocked = ctx.find_root().obj.get("blocked", ()) if ctx.find_root().obj else ()
    return get_registry(blocked=blocked)


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def parse_length(text: str) -> int:
    """``"4k"`` → 4096, ``"1500"`` → 1500, ``"1.5k"`` → 1536."""
    t = text.strip().lower()
    mult = 1
    if t.endswith("k"):
        mult, t = 1024, t[:-1]
    elif t.endswith("m"):
        mult, t = 1024 * 1024, t[:-1]
    try:
        value = float(t) * mult
    except ValueError:
        raise SpecError(f"cannot read length {text!r}; write e.g. 1024, 4k or 1.5k") from None
    if value < 1:
        raise SpecError(f"length must be positive, got {text!r}")
    return int(value)


def _csv(values: tuple[str, ...] | str | None) -> list[str]:
    if not values:
        return []
    if isinstance(values, str):
        values = (values,)
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


class LcGroup(click.Group):
    """Turns :class:`LongctxError` into a one-line message and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LongctxError as e:
            if os.environ.get("LONGCTX_DEBUG"):
                raise
            err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            sys.exit(130)


@click.group(cls=LcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-p",
    "plugin_opts",
    multiple=True,
    metavar="no:NAME",
    help="Block a plugin by name (repeatable), e.g. -p no:bm25. Adds to LONGCTX_DISABLE_PLUGINS.",
)
@click.version_option(__version__, prog_name="longctx")
@click.pass_context
def cli(ctx: click.Context, plugin_opts: tuple[str, ...]) -> None:
    """longctx: composable long-context techniques for language models."""
    blocked = []
    for opt in plugin_opts:
        if not opt.startswith("no:") or len(opt) <= 3:
            raise click.BadParameter(f"expected no:NAME, got {opt!r}", param_hint="-p")
        blocked.append(opt[3:])
    ctx.obj = {"blocked": tuple(blocked)}


# -- lc plugins ----------------------------------------------------------------------------------


@cli.command("plugins")
@click.option(
    "--family",
    "-f",
    type=click.Choice(["positional", "attention", "kv", "reduction", "augmentation", "evaluation"]),
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def plugins_cmd(ctx: click.Context, family: str | None, as_json: bool) -> None:
    """List every technique, with its plugin, distribution, parameters and paper, and plugins that failed."""
    reg = _registry(ctx)
    techs = list(reg.techniques(family))
    problems = [p for p in reg.plugins.values() if p.status != "loaded"]
    if as_json:
        _emit_json(
            {
                "techniques": [t.to_json() for t in techs],
                "plugins": [p.to_json() for p in reg.plugins.values()],
            }
        )
        return
    from longctx.hooks import FAMILIES
    from longctx.params import format_value

    for fam in FAMILIES:
        rows = [t for t in techs if t.family == fam]
        if not rows:
            continue
        table = Table(title=f"[bold]{fam}[/]", title_justify="left", expand=True)
        table.add_column("technique", no_wrap=True, style="bold")
        table.add_column("parameters", overflow="fold")
        table.add_column("summary · paper · plugin", overflow="fold", ratio=1)
        for t in rows:
            params = "\n".join(f"{p.name}: {p.type} = {format_value(p.default)}" for p in t.params) or "—"
            extra = f"\n[yellow]requires {', '.join(t.requires)}[/]" if t.requires else ""
            origin = f"{t.plugin} ({t.distribution or '?'} {t.version or ''})".strip()
            table.add_row(t.name, params, f"{t.summary}\n[dim]{t.paper}\nplugin {origin}[/]{extra}")
        console.print(table)
    if problems:
        pt = Table(title="plugins not loaded", title_style="bold red")
        for col in ("plugin", "status", "distribution", "error"):
            pt.add_column(col, overflow="fold")
        for p in problems:
            pt.add_row(p.name, p.status, f"{p.distribution or '?'} {p.version or ''}", p.error or "")
        console.print(pt)


# -- lc compose ----------------------------------------------------------------------------------


def _spec_from(words: tuple[str, ...], from_file: str | None, model: str | None) -> Any:
    from longctx.models import DEFAULT_MODEL
    from longctx.spec import PipelineSpec

    base = PipelineSpec.load(from_file) if from_file else None
    spec = PipelineSpec.from_words(words, base)
    if model:
        import attrs

        spec = attrs.evolve(spec, model=model)
    if spec.model is None:
        import attrs

        spec = attrs.evolve(spec, model=DEFAULT_MODEL)
    return spec


def _tree(pipe: Any) -> Tree:
    d = pipe.describe()
    m = d["model"]
    root = Tree(
        f"[bold]pipeline[/] on [cyan]{pipe.spec.model}[/] ({m['architecture']}, {m['num_layers']} layers, "
        f"window {m['max_position_embeddings']}, {', '.join(m['capabilities'])})"
    )
    for c in d["components"]:
        params = ", ".join(f"{k}={v}" for k, v in c["params"].items())
        node = root.add(f"[magenta]{c['slot']}[/] = [bold]{c['technique']}[/]" + (f"({params})" if params else ""))
        node.add(f"[dim]{c['paper']}[/]")
        change = d["changes"].get(c["slot"])
        if change and change.get("changed", True) is not False:
            node.add(f"changed: {json.dumps(change, default=str)[:200]}")
    for note in d["notes"]:
        root.add(f"[yellow]note:[/] {note}")
    root.add(f"usable context: {d['max_context'] if d['max_context'] is not None else 'unbounded'} tokens")
    return root


@cli.command("compose")
@click.argument("spec_words", nargs=-1, metavar="[SPEC]...")
@click.option("--model", "-m", help="Model name, HF folder or .gguf file (default: gemma-3-270m).")
@click.option("--from", "from_file", type=click.Path(dir_okay=False), help="Read the pipeline spec from a TOML file.")
@click.option("--save", type=click.Path(dir_okay=False), help="Write the validated spec to a TOML file.")
@click.option("--prompt", help="The prompt text.")
@click.option("--prompt-file", type=click.Path(dir_okay=False), help="Read the prompt from a file.")
@click.option("--query", help="The question to keep when reducing (default: the prompt's last line).")
@click.option("--max-new-tokens", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--dry-run", is_flag=True, help="Validate and show the composition; do not generate.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def compose_cmd(
    ctx: click.Context,
    spec_words: tuple[str, ...],
    model: str | None,
    from_file: str | None,
    save: str | None,
    prompt: str | None,
    prompt_file: str | None,
    query: str | None,
    max_new_tokens: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Validate a pipeline, show it as a tree, and run it on a prompt.

    SPEC words look like: positional=pi:factor=2 attention=streaming-llm:sinks=4,window=512
    reduce=bm25:budget=1024
    """
    if prompt is not None and prompt_file is not None:
        raise InputError("give either --prompt or --prompt-file, not both")
    if prompt_file is not None:
        try:
            prompt = Path(prompt_file).read_text(encoding="utf-8")
        except OSError as e:
            raise InputError(f"cannot read prompt file {prompt_file!r}: {e.strerror or e}") from None
    if prompt is not None and not prompt.strip():
        raise InputError("the prompt is empty")
    if prompt is None and not dry_run and not save:
        raise InputError("nothing to run: give --prompt TEXT or --prompt-file F (or --dry-run to only validate)")
    spec = _spec_from(spec_words, from_file, model)
    reg = _registry(ctx)
    from longctx.models import load_model
    from longctx.runtime import compose

    # validate names and parameters before paying for the model
    spec = spec.normalized(reg)
    lm = load_model(spec.model, progress=not as_json)
    pipe = compose(lm, spec, registry=reg)
    try:
        if save:
            pipe.spec.save(save)
        result = None
        if prompt is not None and not dry_run:
            with console.status("generating…") if not as_json else _null():
                result = pipe.generate(prompt, query=query, max_new_tokens=max_new_tokens)
        if as_json:
            _emit_json({"pipeline": pipe.describe(), "result": result.to_json() if result else None})
            return
        console.print(_tree(pipe))
        if save:
            console.print(f"saved spec to [bold]{save}[/]")
        if result is not None:
            t = Table(show_header=False, box=None)
            t.add_row("answer", repr(result.text))
            t.add_row("prompt tokens", str(result.prompt_tokens))
            if result.reduction is not None:
                t.add_row("reduced from", f"{result.reduction.tokens_in} context tokens")
            t.add_row("time", f"{result.seconds:.2f} s (prefill {result.prefill_seconds:.2f} s)")
            t.add_row("KV bytes", f"{result.kv_bytes:,}")
            console.print(t)
    finally:
        pipe.undo()


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: Any) -> None:
        return None


# -- lc eval -------------------------------------------------------------------------------------


@cli.command("eval")
@click.option(
    "--task", "-t", "tasks", multiple=True, help="Evaluation task, e.g. passkey or niah:haystack=essay (repeatable)."
)
@click.option("--lengths", "-l", help="Comma-separated target lengths in tokens, e.g. 1k,2k,4k.")
@click.option("--depths", "-d", default="0.5", show_default=True, help="Comma-separated needle depths in [0, 1].")
@click.option("--samples", "-n", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--pipeline",
    "pipelines",
    multiple=True,
    help="A pipeline: quoted spec words or a TOML file (repeatable; default: the unchanged model).",
)
@click.option("--model", "-m", help="Model name, HF folder or .gguf file (default: gemma-3-270m).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Write results.jsonl (resumable), summary.json, summary.csv and figures/ here.",
)
@click.option("--chat-template", is_flag=True, help="Render prompts with the tokenizer's chat template.")
@click.option("--no-case-cache", is_flag=True, help="Generate cases afresh instead of reading the case cache.")
@click.option("--list-tasks", is_flag=True, help="List the evaluation tasks with their taxonomy and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    tasks: tuple[str, ...],
    lengths: str | None,
    depths: str,
    samples: int,
    seed: int,
    pipelines: tuple[str, ...],
    model: str | None,
    out_dir: str | None,
    chat_template: bool,
    no_case_cache: bool,
    list_tasks: bool,
    as_json: bool,
) -> None:
    """Run evaluation tasks over lengths × depths for one or more pipelines on identical cases."""
    from longctx.evaluate import run_eval_specs

    reg = _registry(ctx)
    if list_tasks:
        _list_tasks(reg, as_json)
        return
    if not tasks:
        raise SpecError("name at least one --task (lc eval --list-tasks shows them)")
    if not lengths:
        raise SpecError("give --lengths, e.g. --lengths 1k,2k,4k")
    length_list = [parse_length(x) for x in _csv(lengths)]
    try:
        depth_list = [float(x) for x in _csv(depths)]
    except ValueError:
        raise SpecError(f"cannot read depths {depths!r}; write e.g. 0,0.5,1") from None
    if any(not 0.0 <= d <= 1.0 for d in depth_list):
        raise SpecError(f"depths must be within [0, 1], got {depths!r}")
    specs = {}
    for p in pipelines or ("default",):
        specs[p] = _pipeline_spec(p, model)
    summary = run_eval_specs(
        specs,
        tasks=list(tasks),
        lengths=length_list,
        depths=depth_list,
        samples=samples,
        seed=seed,
        out_dir=Path(out_dir) if out_dir else None,
        registry=reg,
        model=model,
        progress=not as_json,
        chat_template=chat_template,
        case_cache=not no_case_cache,
    )
    if as_json:
        _emit_json(summary)
        return
    table = Table(title="results (mean score)")
    # sub-metric columns only for a single task (several tasks' metrics would not fit: see summary.csv)
    one_task = len({r["task"] for r in summary["by_length"]}) == 1
    metric_names = sorted({k for r in summary["by_length"] for k in (r.get("metrics") or {})}) if one_task else []
    for col in ("task", "diffusion/scope", "length", "pipeline", "score", *metric_names, "n", "s / case"):
        table.add_column(col)
    for row in summary["by_length"]:
        metrics = row.get("metrics") or {}
        table.add_row(
            row["task"],
            f"{row.get('diffusion') or '?'}/{row.get('scope') or '?'}",
            str(row["length"]),
            row["pipeline"],
            f"{row['score']:.3f}" if row["score"] is not None else "—",
            *(f"{metrics[m]:.3f}" if metrics.get(m) is not None else "—" for m in metric_names),
            str(row["n"]) + (f" ({row['errors']} errors)" if row.get("errors") else ""),
            f"{row['seconds']:.2f}" if row["seconds"] is not None else "—",
        )
    console.print(table)
    if out_dir:
        console.print(
            f"results: [bold]{Path(out_dir) / 'results.jsonl'}[/] · summary.json · summary.csv (with every sub-metric)"
        )
        for f in summary.get("figures", []):
            console.print(f"figure: {f}")


def _list_tasks(reg: Any, as_json: bool) -> None:
    """Print every evaluation task with Goldman et al.'s diffusion / scope taxonomy."""
    from longctx.params import make_config

    rows = []
    for tech in sorted(reg.techniques("evaluation"), key=lambda t: t.name):
        try:
            tags = dict(getattr(tech.build(make_config(tech.config, {}, technique=tech.name), None), "tags", {}))
        except Exception as e:  # a task that cannot be built with its defaults still gets listed
            tags = {"error": f"{type(e).__name__}: {e}"}
        rows.append(
            {
                "task": tech.name,
                "diffusion": tags.get("diffusion"),
                "scope": tags.get("scope"),
                "summary": tech.summary,
                "plugin": tech.plugin,
            }
        )
    if as_json:
        _emit_json(rows)
        return
    table = Table(title="evaluation tasks (taxonomy: Goldman et al. 2024, arXiv:2407.00402)")
    for col in ("task", "diffusion", "scope", "summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["task"], r["diffusion"] or "?", r["scope"] or "?", r["summary"] or "")
    console.print(table)


def _pipeline_spec(text: str, model: str | None) -> Any:
    from longctx.spec import PipelineSpec

    if text == "default":
        spec = PipelineSpec()
    elif text.endswith(".toml"):
        spec = PipelineSpec.load(text)
    else:
        spec = PipelineSpec.from_words(text.split())
    if model and spec.model is None:
        import attrs

        spec = attrs.evolve(spec, model=model)
    return spec


from longctx.cli_check import check_cmd  # noqa: E402  (the command lives with the conformance kit's CLI)

cli.add_command(check_cmd)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="lc")


if __name__ == "__main__":  # pragma: no cover
    main()
