"""``make demo``: a composed long-context pipeline on Gemma 3 270M, side by side with the plain model.

One passkey prompt (Mohtashami & Jaggi 2023) of ``--length`` tokens is answered by

* the plain model (the default, unchanged pipeline), and
* a composed pipeline — by default BM25 retrieval of the query-relevant chunks
  (``reduce=bm25:budget=512``) feeding StreamingLLM attention with a sink+window KV cache
  (``attention=streaming-llm:sinks=4,window=1024``),

and for each the answer, whether it is correct, the prompt tokens the model saw, the time and the KV
bytes held at the end are printed. Run ``python -m longctx.demo --help`` for options.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

DEFAULT_PIPELINE = "reduce=bm25:budget=512 attention=streaming-llm:sinks=4,window=1024"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m longctx.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--length", type=int, default=4096, help="passkey prompt length in tokens")
    ap.add_argument("--depth", type=float, default=0.4, help="where the key sits, 0..1")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pipeline", default=DEFAULT_PIPELINE, help="spec words of the composed pipeline")
    args = ap.parse_args(argv)

    from longctx import compose, load_model
    from longctx.errors import LongctxError
    from longctx.evaluate import load_tasks

    console = Console()
    try:
        lm = load_model(args.model)
        task = load_tasks(["passkey"])["passkey"]
        case = next(iter(task.cases(lm.tokenizer, length=args.length, depth=args.depth, seed=args.seed)))
        console.print(
            f"[bold]passkey[/] prompt: {case.actual_tokens} tokens, key at depth {args.depth:.0%}, "
            f"gold answer {case.answer}"
        )
        rows = []
        for label, spec in (("plain model", None), ("composed", args.pipeline)):
            with compose(lm, spec) as pipe:
                with console.status(f"{label}: generating…"):
                    g = pipe.generate(case.prompt, query=case.query, max_new_tokens=case.max_new_tokens)
                rows.append((label, str(pipe.spec), g, task.score(g.text, case)))
    except LongctxError as e:
        console.print(f"[bold red]error:[/] {e}")
        return 2
    for label, spec, _g, _score in rows:
        console.print(f"  [bold]{label}[/]: {spec}", highlight=False)
    t = Table(title=f"Gemma 3 270M, passkey at {case.actual_tokens} tokens")
    for col in ("pipeline", "answer", "ok", "tokens", "prefill s", "total s", "KV MB"):
        t.add_column(col, no_wrap=True)
    for label, _spec, g, score in rows:
        t.add_row(
            label,
            repr(g.text.strip()[:10]),
            "yes" if score == 1.0 else "no",
            str(g.prompt_tokens),
            f"{g.prefill_seconds:.1f}",
            f"{g.seconds:.1f}",
            f"{g.kv_bytes / 1e6:.1f}",
        )
    console.print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
