"""Perplexity against position: the mean NLL of each position bucket, one line per pipeline × length.

The ``perplexity`` task records ``nll_b0 … nll_b{B−1}`` (the mean NLL of the tokens in ``B`` equal slices
of the passage) and the slices' token boundaries. :func:`bucket_curves` averages them over the result rows
of each (pipeline, length) cell; :func:`nll_by_position` draws the curves into a PNG (matplotlib's
headless Agg backend, the style of :mod:`longctx.figures`): x is the token position of each bucket's
centre, y its mean NLL in nats — a model that uses its context well goes down with position; one that
breaks past its window goes up there.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from longctx.errors import InputError
from longctx.figures import _length_label, _pyplot

__all__ = ["bucket_curves", "nll_by_position"]

_BUCKET = re.compile(r"nll_b(\d+)$")


def _centres(row: Mapping[str, Any], buckets: int) -> list[float]:
    """Token position (BOS = 0) of the middle of each bucket of ``row``."""
    edges = (row.get("extra") or {}).get("bucket_edges")
    if not edges or len(edges) != buckets + 1:
        n = float((row.get("metrics") or {}).get("tokens") or row["target_tokens"])
        edges = [b * n / buckets for b in range(buckets + 1)]
    # scored token t (0-based) sits at position t + 1, after BOS
    return [1 + (edges[b] + edges[b + 1] - 1) / 2 for b in range(buckets)]


def bucket_curves(
    results: Iterable[Mapping[str, Any]], task: str = "perplexity"
) -> dict[tuple[str, int], tuple[list[float], list[float]]]:
    """``(pipeline, length) -> (bucket centres, mean NLL per bucket)`` over the rows of ``task`` that ran
    (rows with an error or no bucket metrics are skipped)."""
    cells: dict[tuple[str, int], list[Mapping[str, Any]]] = defaultdict(list)
    for r in results:
        if r.get("task") != task or r.get("error"):
            continue
        if any(_BUCKET.match(k) for k in r.get("metrics") or {}):
            cells[(str(r["pipeline"]), int(r["target_tokens"]))].append(r)
    out: dict[tuple[str, int], tuple[list[float], list[float]]] = {}
    for key, rows in sorted(cells.items()):
        buckets = 1 + max(int(_BUCKET.match(k).group(1)) for r in rows for k in r["metrics"] if _BUCKET.match(k))
        xs = [0.0] * buckets
        sums, counts = [0.0] * buckets, [0] * buckets
        for r in rows:
            for b, x in enumerate(_centres(r, buckets)):
                v = r["metrics"].get(f"nll_b{b}")
                if v is not None:
                    sums[b] += float(v)
                    counts[b] += 1
                    xs[b] += x
        keep = [b for b in range(buckets) if counts[b]]
        out[key] = ([xs[b] / counts[b] for b in keep], [sums[b] / counts[b] for b in keep])
    return out


def nll_by_position(
    results: Iterable[Mapping[str, Any]],
    path: str | Path,
    *,
    task: str = "perplexity",
    title: str | None = None,
) -> Path:
    """Draw the mean NLL per position bucket, one line per pipeline × length, into the PNG ``path``.

    :raises InputError: when no row of ``task`` has bucket metrics.
    """
    curves = bucket_curves(results, task)
    if not curves:
        raise InputError(f"no {task} results with per-bucket NLL (nll_b0, …) to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    several = len({n for _, n in curves}) > 1
    for (pipeline, length), (xs, ys) in curves.items():
        label = f"{pipeline} · {_length_label(length)}" if several else pipeline
        ax.plot(xs, ys, marker="o", markersize=3, label=label)
    ax.set_xlabel("token position (bucket centre)")
    ax.set_ylabel("mean NLL (nats / token)")
    ax.set_title(title or f"{task}: NLL by position", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
