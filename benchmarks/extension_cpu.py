"""Context-extension methods on Gemma 3 270M, on CPU: passkey and perplexity per position at 2k/4k/8k.

Issue 5, "Show it works on real models" (the CPU part). Each *method* is a pipeline spec — CLI words
such as ``attention=self-extend:group_size=8,neighbor_window=1024`` or ``positional=yarn:factor=2
attention=self-extend``; a bare technique (``pi:factor=2``) means ``positional=pi:factor=2``. Every
method is composed onto the model in turn and measured with two evaluation tasks through
:func:`longctx.evaluate.run_eval`:

* ``passkey`` — passkey retrieval (depth 0.5, one case per seed, length fitted in the model's own tokens,
  greedy decoding, scored by the first integer of the answer);
* ``perplexity`` — YaRN's sliding-window perplexity of a passage of *Pride and Prejudice* (seed 0: the
  opening of the novel, so the 2k passage is the start of the 4k and 8k ones), one forward pass per
  length, with the mean NLL of each of 8 position buckets (``nll_b0 … nll_b7``).

Gemma 3 270M has a 32k window, so at 2k–8k every method works *inside* it: the sanity criterion of the
issue is that no method breaks the model there (passkey and NLL close to ``native``). ``llama3`` and
``longrope`` are skipped (:data:`SKIPPED`): their parameters are model specific and Gemma 3 ships none.

The measurement engine (method parsing, the resumable JSON, OOM and time-budget handling, the markdown
tables) is shared with ``benchmarks/extension_gpu.py`` (32k → 128k on one GPU), which imports it from
here. Results go to ``--out``, a JSON file rewritten after every measurement; running again with the same
``--out`` skips every (method, task, length, seed) already recorded (``--retry-errors`` redoes those that
failed), so an interrupted run resumes where it stopped.

    .venv/bin/python benchmarks/extension_cpu.py --out runs/extension_cpu.json
    .venv/bin/python benchmarks/extension_cpu.py --lengths 2k --seeds 0 --methods native,pi:factor=2
    .venv/bin/python benchmarks/extension_cpu.py --methods "attention=self-extend:group_size=8,neighbor_window=1024"
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: Every inference-time method at factor 2 (Gemma 3 270M: 32k → 64k), self-extend with G = 8, W = 1024.
DEFAULT_METHODS = [
    "native",
    "pi:factor=2",
    "ntk:factor=2",
    "dynamic-ntk:factor=2",
    "yarn:factor=2",
    "abf:base_factor=2",
    "power-scaling:k=0.5",
    "truncated-basis",
    "clex:factor=2",
    "e2-llm:factor=2",
    "attention=self-extend:group_size=8,neighbor_window=1024",
]
SKIPPED = {
    "llama3": "needs Llama 3.1's original_max_position_embeddings and low/high frequency factors; "
    "Gemma 3 has none, so the figures would measure invented parameters",
    "longrope": "needs per-dimension short/long factor sets found by LongRoPE's search for a given model; "
    "none exist for Gemma 3",
}
#: Cell statuses: measured, the method's declared window is shorter than the case, out of memory, failed.
STATUSES = ("ok", "beyond-window", "oom", "error")
CPU_DEFAULTS: dict[str, Any] = {
    "out": "runs/extension_cpu.json",
    "lengths": "2k,4k,8k",
    "seeds": "0,1",
    "seeds_long": "0,1",
    "long_from": 8192,
    "methods": ",".join(DEFAULT_METHODS),
    "device": "cpu",
    "dtype": "fp32",
    "budget_s": None,
    "model": "gemma-3-270m",
    "ppl_metric": "nll",
}
_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory")


# -- methods ---------------------------------------------------------------------------------------


def parse_length(s: str) -> int:
    """``"2k"`` → 2048, ``"1.5k"`` → 1536, ``"300"`` → 300."""
    s = s.strip().lower()
    return int(float(s[:-1]) * 1024) if s.endswith("k") else int(s)


def length_label(n: int) -> str:
    """2048 → ``"2k"``; lengths that are not a multiple of 1024 stay as numbers."""
    return f"{n // 1024}k" if n % 1024 == 0 else str(n)


def _slot_words() -> frozenset[str]:
    from longctx.spec import WORDS

    return frozenset(WORDS)


def is_spec_word(word: str) -> bool:
    """Whether ``word`` names its slot (``attention=self-extend``), as opposed to a bare technique
    (``pi:factor=2``, whose first ``=`` comes after the ``:``)."""
    key, sep, _ = word.partition("=")
    return bool(sep) and ":" not in key and key.strip() in _slot_words()


def split_methods(raw: str) -> list[str]:
    """The methods of ``--methods``: ``;``-separated when a ``;`` is present, else ``,``-separated where a
    part that is only ``key=value`` (no ``:``, no slot word) continues the previous method's parameters:
    ``"native,pi:factor=2,attention=self-extend:group_size=8,neighbor_window=1024"`` is three methods."""
    if ";" in raw:
        return [m.strip() for m in raw.split(";") if m.strip()]
    methods: list[str] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        key, sep, _ = part.partition("=")
        continues = bool(sep) and ":" not in key and " " not in key and key.strip() not in _slot_words()
        if continues and methods:
            methods[-1] += "," + part
        else:
            methods.append(part)
    return methods


def spec_words(method: str) -> list[str]:
    """The pipeline-spec words of ``method``: bare techniques become ``positional=…``."""
    return [w if is_spec_word(w) else f"positional={w}" for w in method.split()]


def _with_param(word: str, param: str) -> str:
    slot, sep, value = word.partition("=") if is_spec_word(word) else ("", "", word)
    value = value + ("," if ":" in value else ":") + param
    return f"{slot}{sep}{value}"


def with_fp32_rotation(method: str) -> str:
    """``method`` with ``fp32_rotation=true`` on the component that rotates q and k at their absolute
    positions: the positional one when named, else ``self-extend`` (which rotates with the model's own
    RoPE), else an added ``positional=native:fp32_rotation=true``."""
    words = method.split()
    kinds = [(w.partition("=")[0] if is_spec_word(w) else "positional") for w in words]
    for i, k in enumerate(kinds):
        if k in ("positional", "pos"):
            words[i] = _with_param(words[i], "fp32_rotation=true")
            return " ".join(words)
    for i, (k, w) in enumerate(zip(kinds, words)):
        if k in ("attention", "attn") and w.partition("=")[2].split(":")[0].strip() == "self-extend":
            words[i] = _with_param(w, "fp32_rotation=true")
            return " ".join(words)
    return " ".join([*words, "positional=native:fp32_rotation=true"])


# -- the results file ------------------------------------------------------------------------------


def load_results(path: Path) -> dict[str, Any]:
    """The results JSON at ``path`` (``{"meta": …, "results": [...]}``), empty when missing or torn."""
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("results"), list):
                data.setdefault("meta", {})
                return data
        except json.JSONDecodeError:
            pass
    return {"meta": {}, "results": []}


def save_results(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` atomically (a killed run never leaves a torn file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def result_key(r: Mapping[str, Any]) -> tuple[str, str, int, int]:
    """What identifies a measurement: (method, task, length, seed)."""
    return (r["method"], r["task"], int(r["length"]), int(r["seed"]))


#: meta fields that must agree for rows to be comparable (resuming into another setting is refused)
SETTING_KEYS = ("model", "device_type", "dtype", "passkey_task", "ppl_task", "depth")


# -- one measurement -------------------------------------------------------------------------------


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` says the device (or host) ran out of memory."""
    import torch

    oom_types = tuple(
        t for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None)) if t
    )
    if oom_types and isinstance(exc, oom_types):
        return True
    return isinstance(exc, (MemoryError, RuntimeError)) and any(s in str(exc).lower() for s in _OOM_TEXT)


def free_memory() -> None:
    """Release what a failed measurement left behind (cached CUDA blocks, cycles)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def measure(
    lm: Any,
    method: str,
    task_name: str,
    task: Any,
    length: int,
    seed: int,
    *,
    depth: float = 0.5,
    case_cache: Path | None = None,
    run_eval: Callable[..., list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Compose ``method`` onto ``lm``, run one case of ``task`` at ``length`` tokens (seed ``seed``), undo.

    Returns the :func:`longctx.evaluate.run_eval` row plus ``method``, ``length``, ``status`` (one of
    :data:`STATUSES`), ``max_context`` (the composed pipeline's declared window) and ``wall_seconds``. An
    out-of-memory error or any other failure becomes a row (``status`` ``"oom"`` / ``"error"``), so a
    sweep goes on; the model is restored either way (the pipeline's context manager undoes it).
    """
    import longctx

    if run_eval is None:
        from longctx.evaluate import run_eval
    row: dict[str, Any] = {"method": method, "task": task_name, "length": length, "seed": seed}
    window: int | None = None
    t0 = time.perf_counter()
    failure: str | None = None
    try:
        with longctx.compose(lm, spec_words(method)) as pipe:
            window = pipe.max_context
            got = run_eval(
                {method: pipe},
                {task_name: task},
                lengths=[length],
                depths=[depth],
                samples=1,
                seed=seed,
                case_cache=case_cache,
            )
        r = dict(got[0])
        row.update({k: v for k, v in r.items() if k not in row})
        beyond = window is not None and int(r.get("actual_tokens") or 0) > window
        row["beyond_window"] = beyond
        row["status"] = "ok" if not r.get("error") else ("beyond-window" if beyond else "error")
    except Exception as e:  # one failed measurement must not end the sweep
        failure = "oom" if is_oom(e) else "error"
        row.update(status=failure, error=f"{type(e).__name__}: {e}"[:1000], score=None)
    if failure:
        free_memory()
    row["max_context"] = window
    row["wall_seconds"] = round(time.perf_counter() - t0, 2)
    return row


def describe_row(r: Mapping[str, Any]) -> str:
    """One progress line for a measurement."""
    head = f"{r['method'][:56]:56s} {r['task']:10s} {length_label(int(r['length'])):>5s} seed={r['seed']}"
    if r["status"] != "ok":
        return f"{head}: {r['status'].upper()} {str(r.get('error') or '')[:160]} ({r['wall_seconds']}s)"
    if r["task"].startswith("perplexity"):
        m = r.get("metrics") or {}
        return (
            f"{head}: nll={m.get('nll', float('nan')):.4f} ppl={m.get('ppl', float('nan')):.3f} ({r['wall_seconds']}s)"
        )
    return (
        f"{head}: score={r['score']:.0f} pred={str(r.get('prediction'))!r} answer={r.get('answer')} "
        f"({r['wall_seconds']}s)"
    )


# -- tables ----------------------------------------------------------------------------------------

_SHORT = {"beyond-window": "n/a", "oom": "oom", "error": "error"}


def _rows(data: Mapping[str, Any], method: str, task: str, length: int) -> list[Mapping[str, Any]]:
    return [r for r in data["results"] if r["method"] == method and r["task"] == task and int(r["length"]) == length]


def _status_cell(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The cell of a group with no measured row: its (first) failure status; ``None`` if one ran."""
    if any(r["status"] == "ok" for r in rows):
        return None
    return _SHORT.get(rows[0]["status"], rows[0]["status"]) if rows else "–"


def passkey_cell(rows: Sequence[Mapping[str, Any]]) -> str:
    """``correct/tried`` over the measured rows (failures noted), or the failure status."""
    bad = _status_cell(rows)
    if bad is not None:
        return bad
    ok = [r for r in rows if r["status"] == "ok"]
    cell = f"{sum(float(r['score']) for r in ok):.0f}/{len(ok)}"
    failed = len(rows) - len(ok)
    return cell + (f" (+{failed} {_SHORT.get(rows[-1]['status'], 'failed')})" if failed else "")


def mean_nll(rows: Sequence[Mapping[str, Any]]) -> float | None:
    """Token-weighted mean NLL of the measured perplexity rows (``None`` if none ran)."""
    ok = [r for r in rows if r["status"] == "ok" and (r.get("metrics") or {}).get("nll") is not None]
    if not ok:
        return None
    w = [float(r["metrics"].get("tokens") or 1.0) for r in ok]
    return sum(wi * float(r["metrics"]["nll"]) for wi, r in zip(w, ok)) / sum(w)


def ppl_cell(rows: Sequence[Mapping[str, Any]], ref: float | None, metric: str) -> str:
    """``nll (Δ vs ref)`` (``metric="nll"``) or the perplexity (``"ppl"``), or the failure status."""
    bad = _status_cell(rows)
    if bad is not None:
        return bad
    nll = mean_nll(rows)
    assert nll is not None
    if metric == "ppl":
        ppl = math.exp(nll)
        return f"{ppl:.2f}" if ppl < 1e4 else f"{ppl:.3g}"
    return f"{nll:.4f}" + ("" if ref is None else f" ({nll - ref:+.4f})")


def results_table(
    data: Mapping[str, Any],
    methods: Sequence[str],
    lengths: Sequence[int],
    *,
    passkey_task: str = "passkey",
    ppl_task: str = "perplexity",
    metric: str = "nll",
    reference: str = "native",
) -> str:
    """Markdown: per method, passkey ``correct/tried`` and perplexity per length. With ``metric="nll"`` a
    perplexity cell is the mean NLL (nats/token) and, in brackets, its difference to ``reference``."""
    name = "NLL (Δ vs native)" if metric == "nll" else "PPL"
    head = ["method"] + [f"passkey@{length_label(n)}" for n in lengths] + [f"{name}@{length_label(n)}" for n in lengths]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    refs = {n: mean_nll(_rows(data, reference, ppl_task, n)) for n in lengths}
    for m in methods:
        cells = [f"`{m}`"]
        cells += [passkey_cell(_rows(data, m, passkey_task, n)) for n in lengths]
        cells += [ppl_cell(_rows(data, m, ppl_task, n), refs[n], metric) for n in lengths]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bucket_table(
    data: Mapping[str, Any],
    methods: Sequence[str],
    length: int,
    *,
    ppl_task: str = "perplexity",
    reference: str | None = "native",
) -> str:
    """Markdown: mean NLL per position bucket of the ``length``-token passage, one row per method
    (columns labelled by the buckets' token ranges, BOS = position 0). With ``reference`` measured, its
    row holds its NLL and every other row the difference to it (``+0.012``: worse by 0.012 nats/token)."""
    rows_by_method = {m: [r for r in _rows(data, m, ppl_task, length) if r["status"] == "ok"] for m in methods}
    if reference is not None and reference not in rows_by_method:
        rows_by_method = {reference: [r for r in _rows(data, reference, ppl_task, length) if r["status"] == "ok"]} | (
            rows_by_method
        )
    some = next((rs[0] for rs in rows_by_method.values() if rs), None)
    if some is None:
        return f"(no {ppl_task} measurement at {length_label(length)})"
    edges = (some.get("extra") or {}).get("bucket_edges")
    n_b = sum(1 for k in some["metrics"] if k.startswith("nll_b"))
    if not edges or len(edges) != n_b + 1:
        edges = [round(b * (length - 1) / n_b) for b in range(n_b + 1)]
    labels = [f"{_tok(edges[b] + 1)}–{_tok(edges[b + 1])}" for b in range(n_b)]
    lines = ["| method | " + " | ".join(labels) + " |", "|" + "---|" * (n_b + 1)]

    def means(rs: Sequence[Mapping[str, Any]]) -> list[float | None]:
        out: list[float | None] = []
        for b in range(n_b):
            vals = [float(r["metrics"][f"nll_b{b}"]) for r in rs if f"nll_b{b}" in r["metrics"]]
            out.append(sum(vals) / len(vals) if vals else None)
        return out

    ref = means(rows_by_method[reference]) if reference is not None and rows_by_method.get(reference) else None
    for m, rs in rows_by_method.items():
        bad = _status_cell(_rows(data, m, ppl_task, length)) or "–"
        cells = []
        for b, v in enumerate(means(rs)):
            if v is None:
                cells.append(bad)
            elif ref is None or m == reference or ref[b] is None:
                cells.append(f"{v:.3f}")
            else:
                cells.append(f"{v - ref[b]:+.3f}")
        lines.append(f"| `{m}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _tok(n: int) -> str:
    return f"{n / 1024:g}k" if n >= 1024 and n % 512 == 0 else str(n)


def short_label(method: str) -> str:
    """``method`` without its slot words (``attention=self-extend:…`` → ``self-extend:…``), for legends."""
    return " ".join(w.partition("=")[2] if is_spec_word(w) else w for w in method.split())


def figure(data: Mapping[str, Any], length: int, path: Path, *, ppl_task: str = "perplexity", title: str = "") -> Path:
    """The ``perplexity`` plugin's NLL-by-position PNG of the ``length``-token measurements."""
    from longctx.plugins.perplexity.figures import nll_by_position

    rows = [
        {**r, "task": "perplexity", "pipeline": short_label(r["method"])}
        for r in data["results"]
        if r["task"] == ppl_task and int(r["length"]) == length and r["status"] == "ok"
    ]
    return nll_by_position(rows, path, title=title or None)


# -- the sweep -------------------------------------------------------------------------------------


def machine_meta(device: str) -> dict[str, Any]:
    """Date, versions and the device's name (GPU name, or the CPU model and thread count)."""
    import torch
    import transformers

    meta: dict[str, Any] = {
        "date": _dt.date.today().isoformat(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "device": device,
        "device_type": device.split(":")[0],
    }
    if device.startswith("cuda"):
        meta["device_name"] = torch.cuda.get_device_name(torch.device(device))
        meta["cuda"] = torch.version.cuda
    else:
        name = platform.processor() or platform.machine()
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        meta["device_name"] = f"{name}, {torch.get_num_threads()} threads"
    return meta


def build_parser(defaults: Mapping[str, Any], description: str) -> argparse.ArgumentParser:
    """The command line shared by the CPU and GPU benchmarks, with their own defaults."""
    d = defaults
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", default=d["out"], help="JSON results file (resumed if present)")
    ap.add_argument("--model", default=d["model"], help="model name or path (tiny-llama for a smoke run)")
    ap.add_argument("--lengths", default=d["lengths"], help="lengths in tokens, e.g. 2k,4k,8k")
    ap.add_argument("--seeds", default=d["seeds"], help="passkey seeds below --long-from, e.g. 0,1")
    ap.add_argument("--seeds-long", default=d["seeds_long"], help="passkey seeds at lengths >= --long-from")
    ap.add_argument("--long-from", type=parse_length, default=d["long_from"], help="where --seeds-long starts")
    ap.add_argument("--ppl-seeds", default="0", help="perplexity passages (seed s: the s-th passage)")
    ap.add_argument(
        "--methods",
        default=d["methods"],
        help="methods (pipeline spec words), ';'-separated or ',' (see split_methods)",
    )
    ap.add_argument("--tasks", default="passkey,perplexity", help="which of passkey,perplexity to run")
    ap.add_argument("--passkey-task", default="passkey", help="passkey task with parameters")
    ap.add_argument("--ppl-task", default="perplexity", help="perplexity task with parameters")
    ap.add_argument("--depth", type=float, default=0.5, help="passkey depth")
    ap.add_argument("--device", default=d["device"], help="cpu, cuda, cuda:N or auto")
    ap.add_argument("--dtype", default=d["dtype"], choices=("fp32", "bf16", "fp16"))
    ap.add_argument("--fp32-rotation", action="store_true", help="add fp32_rotation=true to every method")
    ap.add_argument("--budget-s", type=float, default=d["budget_s"], help="start no measurement after this many s")
    ap.add_argument("--retry-errors", action="store_true", help="redo recorded oom/error measurements")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--case-cache", default="default", help="generated-case cache folder, 'default' or 'none'")
    ap.add_argument("--figure", default=None, help="PNG of NLL per position bucket at the longest length")
    ap.add_argument("--ppl-metric", default=d["ppl_metric"], choices=("nll", "ppl"), help="perplexity cells")
    ap.add_argument("--table-only", action="store_true", help="print the tables of --out and exit")
    return ap


def plan(
    methods: Sequence[str],
    lengths: Sequence[int],
    tasks: Sequence[str],
    *,
    seeds: Sequence[int],
    seeds_long: Sequence[int],
    long_from: int,
    ppl_seeds: Sequence[int],
) -> list[tuple[int, str, int, str]]:
    """``(length, task kind, seed, method)`` in running order: shortest length first, then passkey before
    perplexity, every method per cell — a run cut short leaves complete short columns."""
    jobs = []
    for n in sorted(lengths):
        for kind in ("passkey", "perplexity"):
            if kind not in tasks:
                continue
            ss = ppl_seeds if kind == "perplexity" else (seeds_long if n >= long_from else seeds)
            for s in ss:
                for m in methods:
                    jobs.append((n, kind, s, m))
    return jobs


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from longctx.errors import InputError

        raise InputError(f"--device {device}: torch sees no CUDA device here; use --device cpu")
    return device


def run(
    args: argparse.Namespace, *, title: str, header: Callable[[Mapping[str, Any]], str], print_fn=print
) -> dict[str, Any]:
    """Run (or resume) the sweep of ``args`` and print its tables; returns the results data."""
    import torch

    t_start = time.perf_counter()
    methods = split_methods(args.methods)
    if args.fp32_rotation:
        methods = [with_fp32_rotation(m) for m in methods]
    lengths = sorted(parse_length(x) for x in args.lengths.split(",") if x.strip())
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = load_results(out)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    setting = {
        "model": args.model,
        "device_type": device.split(":")[0],
        "dtype": args.dtype,
        "passkey_task": args.passkey_task,
        "ppl_task": args.ppl_task,
        "depth": args.depth,
    }
    old = {k: data["meta"].get(k) for k in SETTING_KEYS if k in data["meta"]}
    if data["results"] and any(old.get(k) != v for k, v in setting.items() if k in old):
        from longctx.errors import InputError

        raise InputError(f"{out} holds results for {old}, not {setting}; give another --out to measure this setting")

    from longctx.evaluate import case_cache_dir, load_tasks

    # tasks keyed as run_eval names them (typed, non-default parameters: "perplexity:buckets=4")
    task_objs = {**load_tasks([args.passkey_task]), **load_tasks([args.ppl_task])}
    task_of = dict(zip(("passkey", "perplexity"), task_objs))

    def tables() -> str:
        parts = [
            header(data["meta"]),
            "",
            results_table(
                data,
                methods,
                lengths,
                passkey_task=task_of["passkey"],
                ppl_task=task_of["perplexity"],
                metric=args.ppl_metric,
            ),
        ]
        if "perplexity" in tasks:
            parts += [
                "",
                f"Mean NLL (nats/token) per position bucket, {length_label(lengths[-1])}-token passage "
                "(native: its NLL; other methods: their difference to native):",
                "",
                bucket_table(data, methods, lengths[-1], ppl_task=task_of["perplexity"]),
            ]
        return "\n".join(parts)

    def draw() -> None:
        if not (args.figure and "perplexity" in tasks):
            return
        try:
            p = figure(data, lengths[-1], Path(args.figure), ppl_task=task_of["perplexity"], title=title)
            print_fn(f"figure: {p}")
        except Exception as e:  # a figure is a bonus: report, do not fail the run
            print_fn(f"figure not drawn: {type(e).__name__}: {e}")

    if args.table_only:
        print_fn(tables())
        draw()
        return data

    import longctx

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    data["meta"].update(machine_meta(device), **setting, title=title, skipped=SKIPPED, methods=methods)
    lm = longctx.load_model(args.model, dtype=dtype)
    lm.model.to(device=device, dtype=dtype)
    print_fn(f"loaded {args.model} ({args.dtype}, {device}) in {time.perf_counter() - t_start:.1f}s")
    cache = (
        None
        if args.case_cache == "none"
        else (case_cache_dir() if args.case_cache == "default" else Path(args.case_cache))
    )

    retry = {"oom", "error"} if args.retry_errors else set()
    done = {result_key(r) for r in data["results"] if r.get("status") not in retry}
    data["results"] = [r for r in data["results"] if r.get("status") not in retry]
    stopped = None
    for n, kind, s, m in plan(
        methods,
        lengths,
        tasks,
        seeds=_ints(args.seeds),
        seeds_long=_ints(args.seeds_long or args.seeds),
        long_from=args.long_from,
        ppl_seeds=_ints(args.ppl_seeds),
    ):
        tname = task_of[kind]
        if (m, tname, n, s) in done:
            continue
        if args.budget_s is not None and time.perf_counter() - t_start >= args.budget_s:
            stopped = f"time budget of {args.budget_s:g}s reached; rerun with the same --out to resume"
            break
        row = measure(lm, m, tname, task_objs[tname], n, s, depth=args.depth, case_cache=cache)
        data["results"].append(row)
        done.add(result_key(row))
        data["meta"]["stopped"] = None
        save_results(out, data)
        print_fn(describe_row(row))
    data["meta"]["stopped"] = stopped
    data["meta"]["seconds"] = round(time.perf_counter() - t_start, 1)
    save_results(out, data)
    print_fn("")
    print_fn(tables())
    for name, why in SKIPPED.items():
        print_fn(f"\nskipped {name}: {why}")
    if stopped:
        print_fn(f"\nSTOPPED: {stopped}")
    draw()
    print_fn(f"total {time.perf_counter() - t_start:.0f}s")
    return data


def cpu_header(meta: Mapping[str, Any]) -> str:
    """The line above the CPU tables: date, machine, versions."""
    return (
        f"Measured on **{meta.get('date', '?')}** on {meta.get('device_name', '?')} ({meta.get('model', '?')}, "
        f"{meta.get('dtype', '?')}, torch {meta.get('torch', '?')}, transformers {meta.get('transformers', '?')})."
    )


def main(argv: Iterable[str] | None = None) -> int:
    args = build_parser(CPU_DEFAULTS, __doc__.split("\n")[0]).parse_args(None if argv is None else list(argv))
    from longctx.errors import LongctxError

    try:
        run(
            args,
            title="Gemma 3 270M on CPU: NLL by position",
            header=cpu_header,
            print_fn=lambda s: print(s, flush=True),
        )
    except LongctxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
