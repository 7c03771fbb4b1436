"""RoPE extension methods on Gemma 3 270M, on CPU: passkey at 2k/4k and perplexity on 2k tokens.

Issue 5, "Show it works on real models" (the CPU part). Every RoPE positional method at factor 2 is
composed onto Gemma 3 270M and measured on

* passkey retrieval (the ``passkey`` evaluation task, depth 0.5, one case per seed) at each length, and
* mean NLL / perplexity of the first ~2048 tokens of ``pride_and_prejudice.txt`` (``pipe.score``).

Gemma 3 270M has a 32k window, so at 2k/4k every method works *inside* the window: the sanity
criterion of the issue is that no method breaks the model there (passkey and perplexity close to
``native``). ``llama3`` and ``longrope`` are skipped: their parameters are model specific (Llama 3.1's
``original_max_position_embeddings`` / frequency factors, LongRoPE's searched per-dimension factor
sets), and Gemma 3 ships with none, so any figure would measure made-up parameters.

Results are appended to ``--out`` (a JSON file rewritten after every measurement); running again with
the same ``--out`` skips what is already there.

    .venv/bin/python benchmarks/extension_cpu.py --out runs/extension_cpu.json
    .venv/bin/python benchmarks/extension_cpu.py --lengths 2k --seeds 0 --methods native,pi:factor=2
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

DEFAULT_METHODS = [
    "native",
    "pi:factor=2",
    "ntk:factor=2",
    "dynamic-ntk:factor=2",
    "yarn:factor=2",
    "abf:base_factor=2",
    "power-scaling:k=0.5",
    "truncated-basis",
]
SKIPPED = {
    "llama3": "needs Llama 3.1's original_max_position_embeddings and low/high frequency factors; "
    "Gemma 3 has none, so the figures would measure invented parameters",
    "longrope": "needs per-dimension short/long factor sets found by LongRoPE's search for a given model; "
    "none exist for Gemma 3",
}
TEXT = Path("/work/shared/data/pride_and_prejudice.txt")
PPL_TOKENS = 2048


def parse_length(s: str) -> int:
    s = s.strip().lower()
    return int(float(s[:-1]) * 1024) if s.endswith("k") else int(s)


def ppl_text(tokenizer, path: Path, n_tokens: int) -> tuple[str, int]:
    """The prefix of ``path`` that tokenizes (with BOS, as ``pipe.score`` encodes it) to ~``n_tokens``."""
    raw = path.read_text(encoding="utf-8")
    enc = tokenizer(raw[: n_tokens * 8], add_special_tokens=False, return_offsets_mapping=True)
    offsets = enc["offset_mapping"]
    # leave room for BOS
    k = min(len(offsets), n_tokens - 1)
    text = raw[: offsets[k - 1][1]]
    return text, k


def load_results(path: Path) -> dict:
    if path.exists():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            pass
    return {"meta": {}, "results": []}


def save_results(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def key_of(r: dict) -> tuple:
    return (r["method"], r["kind"], r.get("length"), r.get("seed"))


def table(data: dict, methods: list[str], lengths: list[int]) -> str:
    rows = data["results"]
    head = ["method"] + [f"passkey@{L // 1024}k" for L in lengths] + ["NLL@2k", "PPL@2k", "ΔNLL vs native"]
    native_nll = next((r["nll"] for r in rows if r["method"] == "native" and r["kind"] == "ppl"), None)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        cells = [f"`{m}`"]
        for L in lengths:
            rs = [r for r in rows if r["method"] == m and r["kind"] == "passkey" and r["length"] == L]
            if not rs:
                cells.append("–")
            elif any(r.get("error") for r in rs):
                cells.append("error")
            else:
                cells.append(f"{sum(r['score'] for r in rs):.0f}/{len(rs)}")
        p = next((r for r in rows if r["method"] == m and r["kind"] == "ppl"), None)
        if p is None or p.get("error"):
            cells += ["error" if p else "–", "", ""]
        else:
            d = "" if native_nll is None else f"{p['nll'] - native_nll:+.4f}"
            cells += [f"{p['nll']:.4f}", f"{math.exp(p['nll']):.2f}", d]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/extension_cpu.json", help="JSON results file (resumed if present)")
    ap.add_argument("--lengths", default="2k,4k", help="passkey lengths in tokens, e.g. 2k,4k")
    ap.add_argument("--seeds", default="0,1", help="passkey seeds, e.g. 0,1")
    ap.add_argument("--seeds-long", default=None, help="seeds for lengths > 2k (default: same as --seeds), e.g. 0")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="';'-separated positional specs")
    ap.add_argument("--no-ppl", action="store_true", help="skip the perplexity measurement")
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args(argv)

    # methods: ';' separates when given, else ',' between specs that contain no '=' ambiguity
    raw = args.methods
    if ";" in raw:
        methods = [m.strip() for m in raw.split(";") if m.strip()]
    else:  # "native,pi:factor=2" -> split on ',' that starts a new technique name
        methods, cur = [], ""
        for part in raw.split(","):
            part = part.strip()
            if cur and "=" in part and ":" not in part:
                cur += "," + part  # a further key=value of the current technique
            else:
                if cur:
                    methods.append(cur)
                cur = part
        if cur:
            methods.append(cur)
    lengths = [parse_length(x) for x in args.lengths.split(",") if x.strip()]
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    seeds_long = [int(x) for x in args.seeds_long.split(",")] if args.seeds_long else seeds

    import torch
    import transformers

    import longctx
    from longctx.evaluate import load_tasks

    if args.threads:
        torch.set_num_threads(args.threads)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = load_results(out)
    done = {key_of(r) for r in data["results"]}
    data["meta"] = {
        "model": args.model,
        "date": _dt.date.today().isoformat(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "dtype": "fp32",
        "depth": 0.5,
        "skipped": SKIPPED,
    }

    t0 = time.perf_counter()
    lm = longctx.load_model(args.model)
    print(f"loaded {args.model} in {time.perf_counter() - t0:.1f}s", flush=True)
    task = load_tasks(["passkey"])["passkey"]
    cases = {}
    for L in lengths:
        for s in seeds if L <= 2048 else seeds_long:
            cases[(L, s)] = next(iter(task.cases(lm.tokenizer, length=L, depth=0.5, seed=s)))
    text, n_tok = ppl_text(lm.tokenizer, TEXT, PPL_TOKENS)
    data["meta"]["ppl_text_tokens"] = n_tok + 1
    data["meta"]["ppl_text_chars"] = len(text)

    def record(row: dict) -> None:
        data["results"].append(row)
        done.add(key_of(row))
        save_results(out, data)

    def run_passkey(m: str, L: int, s: int, case) -> None:
        if (m, "passkey", L, s) in done:
            return
        row = {
            "method": m,
            "kind": "passkey",
            "length": L,
            "seed": s,
            "answer": case.answer,
            "target_tokens": case.target_tokens,
            "actual_tokens": case.actual_tokens,
        }
        t = time.perf_counter()
        try:
            with longctx.compose(lm, "positional=" + m) as pipe:
                g = pipe.generate(case.prompt, query=case.query, max_new_tokens=case.max_new_tokens)
            row.update(
                prediction=g.text, score=float(task.score(g.text, case)), prompt_tokens=g.prompt_tokens, error=None
            )
        except Exception as e:
            row.update(prediction="", score=0.0, error=f"{type(e).__name__}: {e}")
        row["seconds"] = round(time.perf_counter() - t, 2)
        record(row)
        print(
            f"{m:24s} passkey L={L} seed={s}: score={row['score']:.0f} "
            f"pred={row['prediction']!r} answer={row['answer']} ({row['seconds']}s)"
            + (f" ERROR {row['error']}" if row["error"] else ""),
            flush=True,
        )

    def run_ppl(m: str) -> None:
        if args.no_ppl or (m, "ppl", PPL_TOKENS, None) in done:
            return
        row = {"method": m, "kind": "ppl", "length": PPL_TOKENS, "seed": None, "tokens": n_tok + 1}
        t = time.perf_counter()
        try:
            with longctx.compose(lm, "positional=" + m) as pipe:
                nll = pipe.score(text)
            row.update(nll=nll, ppl=math.exp(nll), error=None)
        except Exception as e:
            row.update(nll=None, ppl=None, error=f"{type(e).__name__}: {e}")
        row["seconds"] = round(time.perf_counter() - t, 2)
        record(row)
        print(
            f"{m:24s} ppl@{n_tok + 1}: nll={row['nll']} ppl={row['ppl']} ({row['seconds']}s)"
            + (f" ERROR {row['error']}" if row["error"] else ""),
            flush=True,
        )

    # cheapest cells first, all methods per cell, so a run cut short still leaves complete columns
    order = sorted(cases, key=lambda k: (k[0], k[1]))
    short = [k for k in order if k[0] <= PPL_TOKENS]
    long = [k for k in order if k[0] > PPL_TOKENS]
    for k in short:
        for m in methods:
            run_passkey(m, *k, cases[k])
    for m in methods:
        run_ppl(m)
    for k in long:
        for m in methods:
            run_passkey(m, *k, cases[k])

    save_results(out, data)
    print()
    print(table(data, methods, lengths))
    for name, why in SKIPPED.items():
        print(f"skipped {name}: {why}")
    print(f"total {time.perf_counter() - t0:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
