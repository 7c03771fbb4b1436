"""KV reuse for multi-question tasks: one prefill of a shared context vs a full prefill per question.

A context of ``--context`` tokens of prose (the bundled *Pride and Prejudice*) is followed by
``--questions`` different questions; each question is answered with ``--new`` greedy tokens, either with a
fresh prefill of the whole prompt (what a naive harness does) or by continuing from a copy of the cache
of one :meth:`longctx.runtime.Pipeline.prefill` of the context (what ``lc eval`` does for cases sharing a
``context``). The two ways are timed interleaved ``--repeats`` times; the report is the median total time
of each and their ratio, and whether the generated answers are identical.

    python benchmarks/prefix_reuse.py [--model gemma-3-270m] [--context 2048] [--questions 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from longctx import compose, load_model
from longctx.haystack import prose_text

QUESTIONS = (
    "Who is the eldest Bennet daughter?",
    "Which house has been let at last?",
    "How many daughters do the Bennets have?",
    "What does Mrs. Bennet want for her daughters?",
    "Who says that a single man in possession of a good fortune must be in want of a wife?",
    "What is the name of the gentleman who has taken Netherfield?",
    "Where does the story take place?",
    "Who is Mr. Bennet's wife?",
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gemma-3-270m")
    ap.add_argument("--spec", default="", help="pipeline spec words (default: the unchanged model)")
    ap.add_argument("--context", type=int, default=2048, help="context tokens")
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--new", type=int, default=8, help="tokens generated per question")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    if not 1 <= args.questions <= len(QUESTIONS):
        ap.error(f"--questions must be within 1..{len(QUESTIONS)}")

    lm = load_model(args.model)
    ids = lm.tokenizer(prose_text(), add_special_tokens=False)["input_ids"][: args.context]
    context = lm.tokenizer.decode(ids) + "\n"
    prompts = [f"{context}Question: {q}\nAnswer:" for q in QUESTIONS[: args.questions]]
    with compose(lm, args.spec.split() or None) as pipe:
        pipe.generate(prompts[0][-400:], max_new_tokens=2)  # warm-up

        def fresh() -> tuple[float, list[str]]:
            t = time.perf_counter()
            out = [pipe.generate(p, max_new_tokens=args.new).text for p in prompts]
            return time.perf_counter() - t, out

        def reused() -> tuple[float, list[str]]:
            t = time.perf_counter()
            pre = pipe.prefill(context)
            if pre is None:
                raise SystemExit("this pipeline cannot reuse a prefix (reducers or an evicting KV store)")
            out = [pipe.generate(p, max_new_tokens=args.new, prefix=pre).text for p in prompts]
            return time.perf_counter() - t, out

        times: dict[str, list[float]] = {"fresh": [], "reused": []}
        answers: dict[str, list[str]] = {}
        for _ in range(args.repeats):
            for name, fn in (("fresh", fresh), ("reused", reused)):
                s, out = fn()
                times[name].append(s)
                answers[name] = out
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "model": args.model,
        "spec": args.spec or "default",
        "context_tokens": args.context,
        "questions": args.questions,
        "new_tokens": args.new,
        "repeats": args.repeats,
        "fresh_seconds": med["fresh"],
        "reused_seconds": med["reused"],
        "speedup": med["fresh"] / med["reused"],
        "identical_answers": answers["fresh"] == answers["reused"],
    }
    print(
        f"{args.model} · {report['spec']} · {args.context}-token context · {args.questions} questions × "
        f"{args.new} tokens: fresh {med['fresh']:.2f} s, reused {med['reused']:.2f} s, "
        f"speed-up ×{report['speedup']:.2f}, identical answers: {report['identical_answers']}"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
    return 0 if report["identical_answers"] else 1


if __name__ == "__main__":
    sys.exit(main())
