"""RoPE under bf16: drift of attention logits from relative-position invariance, by key position.

Wang et al. 2024, "When Precision Meets Position: BFloat16 Breaks Down RoPE in Long-Context Training",
arXiv:2411.13476. For two rotary configurations — Gemma 3 270M's full-attention layers (θ = 1,000,000,
head_dim 256, as in its config; no model is loaded) and a Llama-style θ = 10,000, head_dim 128 — this
prints, per bucket of key positions ``p``, the mean and maximum of ``|L(p) − L(0)|`` where
``L(p) = ⟨R_{p+Δ} q, R_p k⟩`` for seeded random q, k and distances Δ, with the rotation as transformers
does it in a bf16 model (``bf16``), with ``fp32_rotation=true`` (``bf16+fp32-rotation``) and in a
float32 model (``fp32``). See :mod:`longctx.rope_precision` for exactly what is computed. CPU only, well
under a minute:

    .venv/bin/python benchmarks/rope_precision.py
    .venv/bin/python benchmarks/rope_precision.py --samples 64 --per-bucket 256 --json runs/rope_precision.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from longctx.rope_precision import DEFAULT_DISTANCES, DEFAULT_EDGES, relative_drift

#: (label, head_dim, RoPE base θ)
CONFIGS = [
    ("Gemma 3 270M, full-attention layers (θ = 1M, head_dim 256)", 256, 1_000_000.0),
    ("Llama-style (θ = 10k, head_dim 128)", 128, 10_000.0),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=32, help="random (q, k) pairs (default 32)")
    ap.add_argument("--per-bucket", type=int, default=128, help="key positions per bucket (default 128)")
    ap.add_argument(
        "--distances", default=",".join(map(str, DEFAULT_DISTANCES)), help="relative distances Δ, comma-separated"
    )
    ap.add_argument("--max-position", type=int, default=DEFAULT_EDGES[-1], help="last bucket edge (default 128k)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the reports here")
    args = ap.parse_args(argv)
    edges = (*(e for e in DEFAULT_EDGES if e < args.max_position), args.max_position)
    distances = tuple(int(x) for x in args.distances.split(","))

    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} threads")
    print(f"samples {args.samples}, {args.per_bucket} key positions per bucket, distances Δ = {distances}")
    out = []
    for label, head_dim, base in CONFIGS:
        t0 = time.perf_counter()
        r = relative_drift(
            head_dim=head_dim,
            base=base,
            edges=edges,
            per_bucket=args.per_bucket,
            distances=distances,
            samples=args.samples,
            seed=args.seed,
        )
        dt = time.perf_counter() - t0
        print(f"\n## {label}\n")
        print(f"RMS of the exact logits L(0): {r.logit_rms:.2f}  ({dt:.1f} s)\n")
        print(r.table())
        out.append({"config": label, "seconds": dt, **r.to_json()})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))
        print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
