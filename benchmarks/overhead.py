"""Kernel overhead: prefill and decode through a composed pipeline vs the untouched model, same run.

Measures, on Gemma 3 270M (fp32, CPU unless CUDA is available):
  * prefill: one forward over a ``--prefill`` token prompt (default 2048);
  * decode: ``--decode`` greedy tokens (default 32) after a short prompt, minus the 1-token run.
The untouched model and each pipeline are timed interleaved, ``--repeats`` times, and the medians are
compared as ratios (pipeline / untouched). The target for the default pipeline is ≤ 1.03.

    python benchmarks/overhead.py [--model gemma-3-270m] [--spec "positional=pi:factor=2"] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from longctx import compose, load_model
from longctx.kvcache import cache_kwarg


def _prompt_ids(tokenizer, n: int) -> torch.Tensor:
    text = open(_data_file(), encoding="utf-8").read()
    ids = tokenizer(text[: n * 8], return_tensors="pt")["input_ids"][:, :n]
    assert ids.shape[1] == n, "text too short for the requested prefill"
    return ids


def _data_file() -> str:
    from pathlib import Path

    for cand in (
        Path(__file__).resolve().parents[1] / "../shared/data/pride_and_prejudice.txt",
        Path("../shared/data/pride_and_prejudice.txt"),
    ):
        if cand.exists():
            return str(cand)
    # fall back to generated text if the shared data is not present
    p = Path("/tmp/longctx_bench.txt")
    p.write_text(" ".join(f"word{i % 97} and sentence {i}." for i in range(20000)))
    return str(p)


@torch.inference_mode()
def time_prefill(model, ids, make_cache) -> float:
    kw = {cache_kwarg(model): make_cache(), "use_cache": True}
    t = time.perf_counter()
    model(input_ids=ids, attention_mask=torch.ones_like(ids), **kw)
    return time.perf_counter() - t


@torch.inference_mode()
def time_generate(model, ids, n: int, make_cache) -> float:
    kw = {cache_kwarg(model): make_cache()}
    t = time.perf_counter()
    model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=n,
        min_new_tokens=n,
        do_sample=False,
        top_p=None,
        top_k=None,
        temperature=None,
        **kw,
    )
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--spec", action="append", default=[], help="extra pipelines to time (spec words)")
    ap.add_argument("--prefill", type=int, default=2048)
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    lm = load_model(args.model)
    model = lm.model
    ids = _prompt_ids(lm.tokenizer, args.prefill)
    short = ids[:, :16]
    from longctx.kvcache import dynamic_cache

    def untouched():
        return dynamic_cache(model)

    specs = ["default", *args.spec]
    results: dict[str, dict[str, list[float]]] = {"untouched": {"prefill": [], "decode": []}}
    for s in specs:
        results[s] = {"prefill": [], "decode": []}
    # warm-up
    time_prefill(model, short, untouched)
    for _ in range(args.repeats):
        for name in ["untouched", *specs]:
            if name == "untouched":
                make = untouched
                pipe = None
            else:
                pipe = compose(lm, None if name == "default" else name)
                make = pipe.new_cache
            results[name]["prefill"].append(time_prefill(model, ids, make))
            d1 = time_generate(model, short, 1, make)
            dn = time_generate(model, short, args.decode + 1, make)
            results[name]["decode"].append(dn - d1)
            if pipe is not None:
                pipe.undo()
    report = {
        "model": args.model,
        "prefill_tokens": args.prefill,
        "decode_tokens": args.decode,
        "repeats": args.repeats,
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "pipelines": {},
    }
    base_p = statistics.median(results["untouched"]["prefill"])
    base_d = statistics.median(results["untouched"]["decode"])
    print(f"{'pipeline':<40} {'prefill s':>10} {'ratio':>7} {'decode s':>10} {'ratio':>7}")
    for name, r in results.items():
        p, d = statistics.median(r["prefill"]), statistics.median(r["decode"])
        report["pipelines"][name] = {
            "prefill_s": p,
            "decode_s": d,
            "prefill_ratio": p / base_p,
            "decode_ratio": d / base_d,
        }
        print(f"{name:<40} {p:>10.3f} {p / base_p:>7.3f} {d:>10.3f} {d / base_d:>7.3f}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
