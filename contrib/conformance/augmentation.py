"""Data-augmentation contract: deterministic by seed, streaming, the record schema, and — where the
technique claims it — token preservation.

Documents are token-id lists with ids in the contract's ``document_vocab`` (16–255 by default), so a
technique's marker tokens can be chosen outside it.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

from longctx.contrib.conformance import fixtures
from longctx.contrib.conformance.checks import check
from longctx.contrib.conformance.subject import Subject

MAX_RECORDS = 50


def _augmenter(s: Subject) -> Any:
    return s.component(fixtures.tiny("llama"))


def _docs(s: Subject, seed: int = 50) -> list[list[int]]:
    return fixtures.documents(12, seed=seed, vocab=tuple(s.contract.document_vocab))


def _records(s: Subject, aug: Any, docs: list[list[int]], seed: int) -> list[Any]:
    try:
        return list(itertools.islice(aug.augment(iter(docs), seed=seed), MAX_RECORDS))
    except Exception as e:
        s.fail(f"augment() to run on {len(docs)} documents", f"{type(e).__name__}: {e}")


def _key(r: Any) -> tuple[Any, ...]:
    meta = json.dumps(dict(getattr(r, "meta", {}) or {}), sort_keys=True, default=repr)
    return [int(t) for t in r.input_ids], [int(m) for m in r.loss_mask], meta


def _first_difference(a: list[Any], b: list[Any]) -> str:
    if len(a) != len(b):
        return f"{len(a)} records, then {len(b)}"
    for i, (x, y) in enumerate(zip(a, b)):
        kx, ky = _key(x), _key(y)
        for part, px, py in zip(("input_ids", "loss_mask", "meta"), kx, ky):
            if px != py:
                if part == "meta":
                    return f"record {i}: meta differs"
                j = next((j for j, (u, v) in enumerate(zip(px, py)) if u != v), min(len(px), len(py)))
                return f"record {i}: {part}[{j}] is {px[j : j + 1]} then {py[j : j + 1]} (lengths {len(px)}, {len(py)})"
    return "no difference"


@check("augmentation.deterministic")
def deterministic(s: Subject) -> None:
    """The same documents and seed give the same records (ids, loss mask and meta) — twice from one
    augmenter and from a freshly built one."""
    docs = _docs(s)
    first = _augmenter(s)
    a = _records(s, first, docs, 7)
    for who, aug in (("the same augmenter", first), ("a fresh augmenter", _augmenter(s))):
        b = _records(s, aug, docs, 7)
        if [_key(r) for r in a] != [_key(r) for r in b]:
            s.fail(f"identical records for seed 7 from {who}", _first_difference(a, b))


@check("augmentation.streams")
def streams(s: Subject) -> None:
    """``augment`` consumes its input lazily: calling it pulls no document, and the first record pulls
    at most ``documents_per_record`` documents from an endless stream (which raises past that)."""
    limit = int(s.contract.documents_per_record)
    stream = fixtures.DocumentStream(
        limit, length=s.contract.stream_document_length, vocab=tuple(s.contract.document_vocab)
    )
    aug = _augmenter(s)
    try:
        it = aug.augment(stream, seed=0)
    except fixtures.StreamOverrun:
        s.fail(
            f"augment() to pull nothing before a record is asked for (≤ {limit} for the first)",
            "it read the whole stream",
        )
    if stream.pulled:
        s.fail("augment() to pull no document before the first record is asked for", f"it pulled {stream.pulled}")
    try:
        next(iter(it))
    except fixtures.StreamOverrun:
        s.fail(
            f"the first record to pull at most {limit} documents of {stream.length} tokens",
            f"it pulled more than {limit} (the input is materialised?)",
        )
    except StopIteration:
        s.fail("a record from an endless document stream", "no record")


@check("augmentation.record_schema")
def record_schema(s: Subject) -> None:
    """Every output is a :class:`longctx.text.Record`: integer ``input_ids``, a 0/1 ``loss_mask`` of the
    same length, JSON-serialisable ``meta``; and documents give at least one record."""
    from longctx.text import Record

    records = _records(s, _augmenter(s), _docs(s), 3)
    if not records:
        s.fail("at least one record from 12 documents", "none")
    for i, r in enumerate(records):
        if not isinstance(r, Record):
            s.fail("longctx.text.Record instances", f"record {i} is a {type(r).__name__}")
        bad = [t for t in r.input_ids if isinstance(t, bool) or not hasattr(t, "__index__")]
        if bad:
            s.fail("integer input_ids", f"record {i} has {bad[:3]!r}")
        if len(r.loss_mask) != len(r.input_ids) or any(int(m) not in (0, 1) for m in r.loss_mask):
            s.fail("a 0/1 loss_mask as long as input_ids", f"record {i}: {list(r.loss_mask)[:10]}…")
        try:
            json.dumps(dict(r.meta))
        except (TypeError, ValueError) as e:
            s.fail("JSON-serialisable meta", f"record {i}: {e}")


@check("augmentation.preserves_tokens")
def preserves_tokens(s: Subject) -> None:
    """Where the contract claims it (``preserves_tokens``), every document token reappears in the
    records: the multiset of record tokens, less the technique's marker tokens (``marker_tokens``),
    equals the multiset of document tokens."""
    if not s.contract.preserves_tokens:
        s.skip("the contract does not claim token preservation (preserves_tokens = False)")
    docs = _docs(s, seed=51)
    aug = _augmenter(s)
    markers = set(s.contract.marker_tokens(aug))
    records = _records(s, aug, docs, 5)
    got = Counter(int(t) for r in records for t in r.input_ids if int(t) not in markers)
    want = Counter(t for d in docs for t in d)
    if got != want:
        missing, extra = want - got, got - want
        s.fail(
            f"the {sum(want.values())} document tokens back (markers {sorted(markers)[:8]}… excluded)",
            f"{sum(missing.values())} missing (e.g. {sorted(missing)[:5]}), {sum(extra.values())} extra "
            f"(e.g. {sorted(extra)[:5]})",
        )
