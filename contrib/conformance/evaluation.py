"""Evaluation contract: reproducible cases, lengths within tolerance in the pipeline's tokens, the gold
answer in the context, a scorer that separates gold from wrong, and the taxonomy tags.

Cases are built with the byte tokenizer at the contract's ``lengths`` × ``depths`` × ``seeds``.
"""

from __future__ import annotations

from typing import Any

from longctx.contrib.conformance import fixtures
from longctx.contrib.conformance.checks import check
from longctx.contrib.conformance.subject import Subject

TAG_VALUES = ("low", "high")


def _task(s: Subject) -> Any:
    return s.component(fixtures.tiny("llama"))


def _cases(s: Subject, task: Any, length: int, depth: float, seed: int) -> list[Any]:
    try:
        cases = list(task.cases(fixtures.tokenizer(), length=length, depth=depth, seed=seed))
    except Exception as e:
        s.fail(f"cases(length={length}, depth={depth}, seed={seed}) to build", f"{type(e).__name__}: {e}")
    if not cases:
        s.fail(f"at least one case for length={length}, depth={depth}, seed={seed}", "none")
    return cases


def _grid(s: Subject):
    c = s.contract
    for length in c.lengths:
        for depth in c.depths:
            for seed in c.seeds:
                yield length, depth, seed


@check("evaluation.reproducible")
def reproducible(s: Subject) -> None:
    """The same (length, depth, seed) gives the same cases — prompt, answer, lengths, meta — from the
    same task and from a freshly built one."""
    first, fresh = _task(s), _task(s)
    for length, depth, seed in _grid(s):
        a = [c.to_json() for c in _cases(s, first, length, depth, seed)]
        for who, task in (("the same task", first), ("a fresh task", fresh)):
            b = [c.to_json() for c in _cases(s, task, length, depth, seed)]
            if a != b:
                keys = sorted({k for x, y in zip(a, b) for k in x if x.get(k) != y.get(k)}) or ["number of cases"]
                s.fail(
                    f"identical cases for length={length}, depth={depth}, seed={seed} from {who}",
                    f"{', '.join(keys)} differ",
                )


def _tolerance(s: Subject, task: Any) -> float:
    if s.contract.length_tolerance is not None:
        return float(s.contract.length_tolerance)
    tol = getattr(getattr(task, "config", None), "tolerance", None)
    return float(tol) if isinstance(tol, (int, float)) else 0.05


@check("evaluation.length_within_tolerance")
def length_within_tolerance(s: Subject) -> None:
    """Each case's length — its prompt in the pipeline tokenizer's tokens, BOS included, plus its
    generation budget — is what ``actual_tokens`` says, at most ``target_tokens``, and within the
    tolerance (the contract's ``length_tolerance``, else the config's ``tolerance``, else 5 %) below it."""
    from longctx.evaluate import count_prompt_tokens

    task = _task(s)
    tol = _tolerance(s, task)
    tok = fixtures.tokenizer()
    for length, depth, seed in _grid(s):
        for case in _cases(s, task, length, depth, seed):
            measured = count_prompt_tokens(tok, case.prompt) + case.max_new_tokens
            where = f"length={length}, depth={depth}, seed={seed}"
            if case.actual_tokens != measured:
                s.fail(
                    f"actual_tokens == {measured} (prompt with BOS + max_new_tokens, byte tokenizer; {where})",
                    f"actual_tokens = {case.actual_tokens}",
                )
            if case.target_tokens != length:
                s.fail(f"target_tokens == {length} ({where})", f"{case.target_tokens}")
            if measured > length or length - measured > tol * length:
                s.fail(
                    f"{length - int(tol * length)}..{length} tokens (tolerance {tol:g}; {where})",
                    f"{measured} tokens",
                )


@check("evaluation.gold_in_context")
def gold_in_context(s: Subject) -> None:
    """The gold answer is non-empty and appears in the prompt (the evidence is in the context); each of
    several references must appear. Skipped for contracts with ``gold_in_context = False``."""
    if not s.contract.gold_in_context:
        s.skip("the contract says the answer is computed from the context, not copied from it")
    task = _task(s)
    for length, depth, seed in _grid(s):
        for case in _cases(s, task, length, depth, seed):
            golds = [str(g) for g in getattr(case, "golds", (case.answer,))]
            if not str(case.answer).strip() or any(g not in case.prompt for g in golds):
                s.fail(
                    f"the gold answer {case.answer!r} in the prompt (length={length}, depth={depth}, seed={seed})",
                    "it is not there",
                )


@check("evaluation.scorer_gold_and_wrong")
def scorer_gold_and_wrong(s: Subject) -> None:
    """``score`` gives 1.0 to the gold answer and 0.0 to wrong ones (the contract's ``wrong_answers``:
    by default an empty answer, another number for a numeric answer, and an unrelated phrase). Skipped for
    contracts with ``generative = False``."""
    if not s.contract.generative:
        s.skip("the task scores through its own evaluate(pipeline, case), not a generated answer")
    task = _task(s)
    for length, depth, seed in _grid(s):
        for case in _cases(s, task, length, depth, seed):
            got = float(task.score(case.answer, case))
            if got != 1.0:
                s.fail(f"score 1.0 for the gold answer {case.answer!r}", f"{got}")
            for wrong in s.contract.wrong_answers(case):
                got = float(task.score(wrong, case))
                if got != 0.0:
                    s.fail(f"score 0.0 for the wrong answer {wrong!r} (gold {case.answer!r})", f"{got}")


@check("evaluation.tags")
def tags(s: Subject) -> None:
    """The task carries its taxonomy tags (Goldman et al. 2024): ``tags["diffusion"]`` and
    ``tags["scope"]``, each ``"low"`` or ``"high"``."""
    task = _task(s)
    t = getattr(task, "tags", None)
    if not hasattr(t, "get"):
        s.fail("a tags mapping with diffusion and scope", repr(t))
    for key in ("diffusion", "scope"):
        if t.get(key) not in TAG_VALUES:
            s.fail(f"tags[{key!r}] one of {', '.join(TAG_VALUES)}", repr(t.get(key)))
