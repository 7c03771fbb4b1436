"""PNG figures of an evaluation run (``lc eval --out DIR`` draws them into ``DIR/figures/``).

* ``heatmap-<task>-<pipeline>.png`` — the needle-in-a-haystack picture: mean score per depth (rows) ×
  length (columns), one per task × pipeline, for tasks evaluated at more than one depth;
* ``lines-<task>.png`` — mean score against length, one line per pipeline, to compare pipelines.

matplotlib runs headless (the Agg backend); nothing is shown on screen.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["FIGURES_DIR", "draw_figures", "heatmap", "score_lines"]

FIGURES_DIR = "figures"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "x"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _length_label(n: int) -> str:
    return f"{n // 1024}k" if n % 1024 == 0 else (f"{n / 1000:g}k" if n % 1000 == 0 else str(n))


def heatmap(results: Iterable[Mapping[str, Any]], task: str, pipeline: str, path: Path) -> Path:
    """Draw the depth × length heatmap of one task on one pipeline (mean score per cell, 0 red … 1 green)."""
    plt = _pyplot()
    cells: dict[tuple[float, int], list[float]] = defaultdict(list)
    for r in results:
        if r["task"] == task and r["pipeline"] == pipeline:
            cells[(float(r["depth"]), int(r["target_tokens"]))].append(float(r["score"]))
    depths = sorted({d for d, _ in cells})
    lengths = sorted({n for _, n in cells})
    grid = [
        [(sum(cells[(d, n)]) / len(cells[(d, n)])) if cells.get((d, n)) else float("nan") for n in lengths]
        for d in depths
    ]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(lengths), 1.2 + 0.45 * len(depths)))
    im = ax.imshow(grid, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(lengths)), [_length_label(n) for n in lengths])
    ax.set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths])
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("depth")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            if v == v:  # not NaN
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
    ax.set_title(f"{task} · {pipeline}", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def score_lines(results: Iterable[Mapping[str, Any]], task: str, path: Path) -> Path:
    """Draw mean score against length for one task, one line per pipeline."""
    plt = _pyplot()
    by: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        if r["task"] == task:
            by[r["pipeline"]][int(r["target_tokens"])].append(float(r["score"]))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    lengths = sorted({n for d in by.values() for n in d})
    for pipeline, cells in sorted(by.items()):
        xs = sorted(cells)
        ax.plot(xs, [sum(cells[x]) / len(cells[x]) for x in xs], marker="o", label=pipeline)
    ax.set_xscale("log", base=2)
    ax.set_xticks(lengths, [_length_label(n) for n in lengths])
    ax.minorticks_off()
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("mean score")
    ax.set_title(task, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_figures(results: Iterable[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """Draw every figure for ``results`` into ``out_dir/figures/``; returns the paths written.

    Scores outside [0, 1] (perplexities and other unbounded measures) get no figure."""
    rows = [r for r in results if r.get("score") is not None]
    folder = Path(out_dir) / FIGURES_DIR
    written: list[Path] = []
    tasks = sorted({r["task"] for r in rows})
    for task in tasks:
        mine = [r for r in rows if r["task"] == task]
        if any(not 0.0 <= float(r["score"]) <= 1.0 for r in mine):
            continue
        written.append(score_lines(mine, task, folder / f"lines-{_slug(task)}.png"))
        if len({float(r["depth"]) for r in mine}) > 1:
            for pipeline in sorted({r["pipeline"] for r in mine}):
                written.append(heatmap(mine, task, pipeline, folder / f"heatmap-{_slug(task)}-{_slug(pipeline)}.png"))
    return written
