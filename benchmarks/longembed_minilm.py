"""LongEmbed passkey retrieval on all-MiniLM-L6-v2, on CPU: truncation vs stretched position tables.

all-MiniLM-L6-v2 has 512 learned absolute positions. Documents of 1k and 2k tokens therefore either get
truncated to their first 512 tokens (the ``truncation`` baseline: the pipeline with no positional
extension) or need a longer position table, which two training-free techniques provide:

* ``ape-interpolation:factor=4`` — LongEmbed's plug-and-play position interpolation, 2048 positions;
* ``long-clip:keep=20,factor=4.2`` — Long-CLIP's knowledge-preserved stretching, the first 20 positions
  kept, ``20 + 492·4.2 = 2086`` positions (λ = 4, the paper's CLIP value, gives 1988 < 2048 here).

Each cell is the ``longembed-passkey`` task (top-1 accuracy, LongEmbed's nDCG@1): a pool of
``--candidates`` documents of the same filler, each with its own person and pass key at the depth, and
``--queries`` queries "what is the pass key for <name>?" against the whole pool. Depths are averaged in
the per-length table and shown separately below it. Chance is ``1/candidates``.

    .venv/bin/python benchmarks/longembed_minilm.py                       # the table in the docs
    .venv/bin/python benchmarks/longembed_minilm.py --candidates 50 --queries 50 --depths 0.1,0.3,0.5,0.7,0.9

Writes ``--out`` (``runs/longembed_minilm``: results.jsonl, summary.json) and prints markdown tables.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from collections import defaultdict
from pathlib import Path

PIPELINES = {
    "truncation": [],
    "ape-interpolation": ["positional=ape-interpolation:factor=4"],
    "long-clip": ["positional=long-clip:keep=20,factor=4.2"],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="1024,2048")
    ap.add_argument("--depths", default="0.1,0.5,0.9")
    ap.add_argument("--candidates", type=int, default=20)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/longembed_minilm")
    args = ap.parse_args(argv)

    import torch

    from longctx.evaluate import run_eval_specs
    from longctx.spec import PipelineSpec

    lengths = [int(x) for x in args.lengths.split(",")]
    depths = [float(x) for x in args.depths.split(",")]
    task = f"longembed-passkey:candidates={args.candidates},queries={args.queries}"
    specs = {
        name: PipelineSpec.from_words(words, PipelineSpec(model="all-minilm-l6-v2"))
        for name, words in PIPELINES.items()
    }
    t0 = time.perf_counter()
    summary = run_eval_specs(
        specs,
        tasks=[task],
        lengths=lengths,
        depths=depths,
        seed=args.seed,
        out_dir=args.out,
        case_cache=False,
        figures=False,
    )
    wall = time.perf_counter() - t0

    from longctx.evaluate import read_results

    rows = [r for r in read_results(Path(args.out) / "results.jsonl") if r["task"] == task]
    cell: dict[tuple[str, int, float | None], list[dict]] = defaultdict(list)
    for r in rows:
        cell[(r["pipeline"], r["target_tokens"], r["depth"])].append(r)
        cell[(r["pipeline"], r["target_tokens"], None)].append(r)

    def mean(rs: list[dict], key: str) -> float:
        vals = [r["score"] if key == "score" else r["metrics"][key] for r in rs]
        return sum(vals) / len(vals)

    def lab(n: int) -> str:
        return f"{n // 1024}k" if n % 1024 == 0 else str(n)

    print(f"# LongEmbed passkey, all-MiniLM-L6-v2 — {_dt.date.today().isoformat()}")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} · {os.cpu_count()} CPU cores · torch "
        f"{torch.__version__} · {torch.get_num_threads()} threads · python {platform.python_version()}"
    )
    print(f"{args.candidates} candidates, {args.queries} queries per length × depth, seed {args.seed}, depths {depths}")
    print(f"wall time {wall:.0f} s\n")
    head = "| pipeline | " + " | ".join(f"{lab(n)} top-1 | {lab(n)} MRR" for n in lengths) + " |"
    print(head)
    print("|" + "---|" * (1 + 2 * len(lengths)))
    for p in PIPELINES:
        cells = [cell[(p, n, None)] for n in lengths]
        print(
            f"| `{p}` | "
            + " | ".join(f"{mean(c, 'score'):.2f} | {mean(c, 'reciprocal_rank'):.2f}" for c in cells)
            + " |"
        )
    print("\ntop-1 by depth:\n")
    print("| pipeline | " + " | ".join(f"{lab(n)} @ {d:g}" for n in lengths for d in depths) + " |")
    print("|" + "---|" * (1 + len(lengths) * len(depths)))
    for p in PIPELINES:
        vals = [mean(cell[(p, n, d)], "score") for n in lengths for d in depths]
        print(f"| `{p}` | " + " | ".join(f"{v:.2f}" for v in vals) + " |")
    print(f"\nchance: {1 / args.candidates:.2f}; results: {summary['results_file']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
