"""Context-extension methods on Gemma 3 270M beyond its window, on one GPU: passkey and perplexity at 32k–128k.

Issue 5, "Show it works on real models" (the GPU part). Gemma 3 270M was trained with a 32k window; every
method is set to reach ``--factor`` × 32k (default 4: 128k) and measured at 32k, 64k and 128k tokens with
the same engine as ``benchmarks/extension_cpu.py`` (imported from there):

* ``passkey`` at depth 0.5 (seed 0; the key is the same at every length), greedy, 10 new tokens;
* ``perplexity``: one forward pass over the first ``L`` tokens of *Pride and Prejudice* (YaRN's protocol,
  ``window`` = ``L``), NLL per 8 position buckets, output head applied in chunks (never the full
  ``L × 262k`` logits).

Methods (:func:`gpu_methods`): every RoPE method at factor ``F``, each declaring a ``F × 32k`` window —
``native``; ``abf:base_factor=1,window_factor=F`` (exactly native's frequencies with a declared ``F × 32k``
window, so that native's passkey is *measured* beyond 32k rather than refused); ``pi``, ``ntk``,
``dynamic-ntk``, ``yarn``, ``e2-llm`` (PI with ``g = F`` at inference) and ``clex`` (untrained: NTK with
``α = 2t − 1``, ``t = ⌈L'/32k⌉``) at ``factor=F``; ``abf:base_factor=F``, ``power-scaling:k=0.5`` and
``truncated-basis`` with ``window_factor=F``; and ``attention=self-extend:group_size=8,neighbor_window=1024``,
whose usable context ``(32k − W)·G + W`` ≈ 249k covers 128k. ``llama3`` and ``longrope`` are skipped (no
Gemma parameters).

Every measurement is one JSON row in ``--out``, written as soon as it exists; an out-of-memory error is
recorded as ``"oom"`` and the sweep goes on; ``--budget-s`` (default 270) stops cleanly before the next
measurement once spent, and rerunning with the same ``--out`` resumes. The tables printed at the end are
ready for ``docs/positional.md`` (with the date and the GPU name). Defaults: bf16; ``--dtype fp32`` and
``--fp32-rotation`` (float32 RoPE rotation in a bf16 model) are options; their rows go to another ``--out``.

    .venv/bin/python benchmarks/extension_gpu.py                         # one GPU, < 5 min
    .venv/bin/python benchmarks/extension_gpu.py --fp32-rotation --out runs/extension_gpu_fp32rot.json
    .venv/bin/python benchmarks/extension_gpu.py --device cpu --model tiny-llama --dtype fp32 \\
        --lengths 400,1k --methods native,pi:factor=2 --out /tmp/smoke.json   # CPU smoke mode, seconds
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import extension_cpu as engine  # the shared engine, next to this file

#: Default group size and neighbour window of self-extend: reaches (32k − 1024)·8 + 1024 ≈ 249k tokens.
SELF_EXTEND = "attention=self-extend:group_size=8,neighbor_window=1024"


def gpu_methods(factor: float) -> list[str]:
    """Every inference-time method set to reach ``factor`` × the model's window (see the module docstring)."""
    f = f"{factor:g}"
    return [
        "native",
        f"abf:base_factor=1,window_factor={f}",
        f"pi:factor={f}",
        f"ntk:factor={f}",
        f"dynamic-ntk:factor={f}",
        f"yarn:factor={f}",
        f"abf:base_factor={f},window_factor={f}",
        f"power-scaling:k=0.5,window_factor={f}",
        f"truncated-basis:window_factor={f}",
        f"clex:factor={f}",
        f"e2-llm:factor={f}",
        SELF_EXTEND,
    ]


GPU_DEFAULTS: dict[str, Any] = {
    **engine.CPU_DEFAULTS,
    "out": "runs/extension_gpu.json",
    "lengths": "32k,64k,128k",
    "seeds": "0",
    "seeds_long": "0",
    "long_from": 1 << 62,
    "methods": None,  # gpu_methods(--factor)
    "device": "cuda",
    "dtype": "bf16",
    "budget_s": 270.0,
    "ppl_metric": "ppl",
}


def gpu_header(meta: Mapping[str, Any]) -> str:
    """The line above the GPU tables: date, GPU, precision, versions."""
    rot = " with `fp32_rotation=true`" if any("fp32_rotation=true" in m for m in meta.get("methods") or ()) else ""
    return (
        f"Measured on **{meta.get('date', '?')}** on **{meta.get('device_name', '?')}** "
        f"({meta.get('model', '?')} in {meta.get('dtype', '?')}{rot}; torch {meta.get('torch', '?')}, "
        f"transformers {meta.get('transformers', '?')}"
        + (f", CUDA {meta['cuda']}" if meta.get("cuda") else "")
        + f"; {meta.get('seconds', '?')} s)."
    )


def main(argv: Iterable[str] | None = None) -> int:
    ap = engine.build_parser(GPU_DEFAULTS, __doc__.split("\n")[0])
    ap.add_argument("--factor", type=float, default=4.0, help="scale factor of every method (default 4: 32k → 128k)")
    args = ap.parse_args(None if argv is None else list(argv))
    if args.methods is None:
        args.methods = ";".join(gpu_methods(args.factor))
    from longctx.errors import LongctxError

    try:
        engine.run(
            args,
            title=f"Gemma 3 270M beyond its window (factor {args.factor:g}): NLL by position",
            header=gpu_header,
            print_fn=lambda s: print(s, flush=True),
        )
    except LongctxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
