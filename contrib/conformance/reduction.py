"""Context-reduction contract: within the token budget, exact provenance, sorted spans, the query kept,
deterministic, and odd inputs (empty, one character, non-ASCII) handled.

Tokens are counted with the byte tokenizer (one token per UTF-8 byte), so multi-byte characters make any
confusion of characters with bytes or tokens visible. The budget is the contract's ``budget`` (default 96
tokens), set through the config field named by ``budget_param`` (default ``"budget"``).
"""

from __future__ import annotations

from typing import Any

from longctx.contrib.conformance import fixtures
from longctx.contrib.conformance.checks import check
from longctx.contrib.conformance.subject import Subject


def _budget(s: Subject, *, required: bool = False) -> tuple[str | None, int | None]:
    tech = s.require_technique()
    name = s.contract.budget_param
    fields = {p.name for p in tech.params}
    if name is None or name not in fields:
        if required:
            s.skip(
                f"the contract names no budget parameter of the config (budget_param={name!r}; fields: "
                f"{', '.join(sorted(fields)) or 'none'})"
            )
        return None, None
    return name, int(s.contract.budget)


def _params(s: Subject) -> dict[str, Any]:
    name, budget = _budget(s)
    return {**s.params, **({name: budget} if name else {})}


def _reducer(s: Subject) -> Any:
    return s.component(fixtures.tiny("llama"), _params(s))


def _inputs() -> dict[str, str]:
    return {
        "long text": fixtures.sample_text(60, seed=40, foreign=False),
        "long non-ASCII text": fixtures.sample_text(60, seed=41),
    }


def _reduce(s: Subject, reducer: Any, label: str, text: str, query: str | None = fixtures.QUERY) -> Any:
    try:
        return reducer.reduce(text, query=query, tokenizer=fixtures.tokenizer())
    except Exception as e:
        s.fail(f"reduce() to handle the {label} ({len(text)} characters)", f"{type(e).__name__}: {e}")


def _provenance_error(red: Any, source: str) -> str | None:
    for i, sp in enumerate(red.spans):
        if not 0 <= sp.start <= sp.end <= len(source):
            return f"span {i} [{sp.start}, {sp.end}) is outside the source (length {len(source)})"
    joined = red.separator.join(red.pieces(source))
    if joined != red.text:
        at = next((i for i, (a, b) in enumerate(zip(joined, red.text)) if a != b), min(len(joined), len(red.text)))
        return (
            f"the pieces joined by {red.separator!r} differ from text at character {at}: "
            f"{joined[at : at + 30]!r} vs {red.text[at : at + 30]!r} (lengths {len(joined)} vs {len(red.text)})"
        )
    return None


def _order_error(red: Any) -> str | None:
    prev = None
    for i, sp in enumerate(red.spans):
        if prev is not None and sp.start < prev.end:
            return f"span {i} [{sp.start}, {sp.end}) starts before span {i - 1} [{prev.start}, {prev.end}) ends"
        prev = sp
    return None


@check("reduction.within_budget")
def within_budget(s: Subject) -> None:
    """The reduced text of a context over the budget has at most ``budget`` tokens (counted with the
    pipeline's tokenizer), and ``tokens_out`` is that count."""
    from longctx.text import count_tokens

    name, budget = _budget(s, required=True)
    reducer = _reducer(s)
    tok = fixtures.tokenizer()
    for label, text in {**_inputs(), **fixtures.edge_texts()}.items():
        for query in (fixtures.QUERY, None):
            red = _reduce(s, reducer, label, text, query)
            n = count_tokens(tok, red.text)
            if n > budget:
                s.fail(
                    f"at most {budget} tokens ({name}={budget}) for the {label} ({count_tokens(tok, text)} tokens)",
                    f"{n} tokens" + ("" if query else " (no query)"),
                )
            if red.tokens_out != n:
                s.fail(
                    f"tokens_out == {n} (the token count of the reduced text, {label})",
                    f"tokens_out = {red.tokens_out}",
                )


@check("reduction.provenance_exact")
def provenance_exact(s: Subject) -> None:
    """Every kept span maps back to the source exactly: ``separator.join(reduction.pieces(source)) ==
    reduction.text``, with every span inside the source."""
    reducer = _reducer(s)
    for label, text in {**_inputs(), **fixtures.edge_texts()}.items():
        red = _reduce(s, reducer, label, text)
        err = _provenance_error(red, text)
        if err:
            s.fail(f"separator.join(pieces(source)) == text for the {label}", err)


@check("reduction.spans_sorted")
def spans_sorted(s: Subject) -> None:
    """The kept spans are sorted and do not overlap (each starts at or after the previous one's end)."""
    reducer = _reducer(s)
    for label, text in {**_inputs(), **fixtures.edge_texts()}.items():
        err = _order_error(_reduce(s, reducer, label, text))
        if err:
            s.fail(f"sorted, non-overlapping spans for the {label}", err)


@check("reduction.query_kept")
def query_kept(s: Subject) -> None:
    """Run through ``Pipeline.reduce`` (prompt = context + query line, and with ``query=`` given), the
    text fed to the model ends with the query."""
    lm = fixtures.tiny("llama")
    context = fixtures.sample_text(60, seed=42)
    prompt = context + "\n" + fixtures.QUERY
    with s.composed(lm, _params(s)) as pipe:
        for how, (text, _red) in (
            ("the prompt's last line", pipe.reduce(prompt)),
            ("query= given", pipe.reduce(prompt, query=fixtures.QUERY)),
        ):
            if not text.rstrip().endswith(fixtures.QUERY):
                s.fail(f"the reduced prompt to end with the query ({how})", f"it ends with {text[-40:]!r}")


@check("reduction.deterministic")
def deterministic(s: Subject) -> None:
    """Reducing the same input twice — with the same reducer and with a freshly built one — gives the
    same text and spans."""
    first, second = _reducer(s), _reducer(s)
    for label, text in _inputs().items():
        a = _reduce(s, first, label, text)
        for who, other in (("the same reducer", first), ("a fresh reducer", second)):
            b = _reduce(s, other, label, text)
            if (a.text, tuple(a.spans)) != (b.text, tuple(b.spans)):
                s.fail(
                    f"the same reduction of the {label} from {who}",
                    f"spans {[(x.start, x.end) for x in a.spans][:6]} then {[(x.start, x.end) for x in b.spans][:6]}",
                )


@check("reduction.edge_inputs")
def edge_inputs(s: Subject) -> None:
    """Empty, one-character, whitespace-only and non-ASCII inputs are reduced without error, with exact
    provenance and sorted spans (and within the budget: see ``reduction.within_budget``)."""
    reducer = _reducer(s)
    for label, text in fixtures.edge_texts().items():
        for query in (fixtures.QUERY, None, ""):
            red = _reduce(s, reducer, label + ("" if query else f" (query={query!r})"), text, query)
            err = _provenance_error(red, text) or _order_error(red)
            if err:
                s.fail(f"a valid reduction of the {label} input {text[:30]!r}", err)
