"""``untie-knots``: Untie the Knots (UtK) — chunk, shuffle and re-link documents for long-context training.

Tian et al. 2024, "Untie the Knots: An Efficient Data Augmentation Strategy for Long-Context Pre-Training
in Language Models", arXiv:2409.04774; reference code ``rgtjf/Untie-the-Knots``
(``gpt_dataset_utk.py``: ``denoise_text_multi_hop``, ``shuffle_preserve_partial_order_multi_hop``,
``process_sorted_samples`` and the loss mask in ``GPTDatasetUtK.__getitem__``).

Method, for one packed sequence of ``L`` (= ``seq_len``) document tokens with documents ``d_1 … d_m``:

1. **Chunk.** With probability ``p`` (= ``chunk_prob``; per sequence as in the reference's
   ``chunk_probs_cfg`` — ``([1−p, p], [[1,0,0], [0,0,1]])`` — or per document) every document is cut into
   ``k`` (= ``n_chunks``) chunks ``c_{i,1} … c_{i,k}``, at ``⌊|d_i|/k⌋·j`` (``split="equal"``) or at ``k−1``
   distinct random points (``split="random"``, the reference's ``use_length_sampler``); a document
   shorter than ``k`` tokens stays whole. A cut is marked by knot tokens: chunk ``j`` ends with
   ``K_{2j−1}`` and chunk ``j+1`` starts with ``K_{2j}`` (the reference's ``chunk_tokens`` pattern
   ``seg_1_1, seg_1_2, …``; a single configured knot id is used for every ``K``).
2. **Shuffle.** All chunks (uncut documents too) are permuted uniformly, except that the last chunk of
   the last document stays last; with ``preserve_partial_order`` each document's chunks keep their
   relative order.
3. **Backtrace** (the reference's ``add_sort_task``; on by default). Every chunk of a document that was
   cut gets a header ``<D> id </D>``, ``id`` a fresh random ID (``id_length`` tokens drawn from
   ``id_tokens``; the reference draws 6 random alphanumerics and tokenizes them). After the
   *last-placed* chunk of such a document comes its untying target ``<S> id_1 <s> id_2 … <s> id_k </S>``
   — the IDs in the document's original chunk order.
4. **Loss mask** (label-aligned: ``loss_mask[t] = 1`` iff ``input_ids[t]`` is a training target, i.e.
   ``labels = where(loss_mask, input_ids, −100)``; the reference's token/label-shifted mask moved by one):
   not trained are knot tokens as label and as input (the token after a knot), the whole ``<D> id </D>``
   header as label and as input (so also the first token after it), ``<S>`` as label, ``</S>`` as input,
   and — when documents end with ``eod_token`` — the token after an EOD (Megatron's ``eod_mask_loss``,
   under which the reference applies its knot masking); ``loss_mask[0] = 0``. The ID list
   ``id_1 <s> … </S>`` is trained: that is the retrieval skill UtK teaches.

Deviations, each to keep every document token and to stream:

- **Packing** is rng-free and lazy: documents (each followed by ``eod_token`` when set, as in the
  reference's EOD-delimited stream) fill exactly ``L`` tokens; a document that overflows continues as the
  first piece of the next record (Megatron's sample index does the same). Only the documents a record
  needs are pulled from the iterator; the last, shorter record is yielded too. Empty documents are
  skipped.
- **No truncation by default**: the reference cuts the untied sequence back to ``L`` tokens, losing the
  tail of the last document (and its ``<S>…</S>`` target); here a record is ``L`` tokens plus its marker
  tokens — ``2(k−1) + k·(id_length+2) + k·id_length + k + 1`` per untied document, which dominates when
  documents are short (UtK is meant for long ones). ``truncate=true`` restores the reference's cut
  (``meta["truncated"]`` says how many tokens).
- **Masks by position**, not by token value: the reference's ``tokens == knot`` would also mask a
  document token that happens to share a knot's id.
- **Randomness**: record ``r`` of seed ``s`` uses ``Generator(PCG64(SeedSequence([s, r])))`` — the
  reference's ``MT19937(s·100000 + r)`` collides once ``r ≥ 100000`` — so :func:`untie` rebuilds any record
  from its pieces (``meta["pieces"]``) without replaying the stream.

Token ids. Knots, ``<D> </D> <S> <s> </S>`` and the ID alphabet are config ints. Left empty, they are
taken from the pipeline's tokenizer when there is one: Gemma-style ``<unused0>, <unused1>, …`` for the
``2(k−1)`` knots and then the 5 backtracing markers (the reference notes' choice for Gemma), and the
single-token letters and digits for IDs.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs
import numpy as np

from longctx.errors import ParameterError
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range, one_of, positive
from longctx.text import Record

# token kinds of an untied sequence (for the loss mask and for tests)
TEXT, EOD, KNOT, D_OPEN, D_ID, D_CLOSE, S_OPEN, S_ID, S_SEP, S_CLOSE = range(10)
#: kinds never trained as labels: knots, the ``<D> id </D>`` header, ``<S>``
_NO_LABEL = frozenset({KNOT, D_OPEN, D_ID, D_CLOSE, S_OPEN})
#: kinds after which the next token is not trained: knots, the header, ``</S>``, EOD
_NO_NEXT = frozenset({KNOT, D_OPEN, D_ID, D_CLOSE, S_CLOSE, EOD})


def _ids(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if any((not isinstance(v, (int, np.integer))) or isinstance(v, bool) or v < 0 for v in value):
        raise ParameterError(f"{attribute.name} must be non-negative token ids, got {value!r}")


def _opt_id(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ParameterError(f"{attribute.name} must be a non-negative token id or none, got {value!r}")


@attrs.frozen
class UntieTheKnotsConfig:
    """UtK's knobs, named after the reference code's config (``GPTDatasetUtKConfig``)."""

    seq_len: int = attrs.field(
        default=8192, validator=positive, metadata={"help": "document tokens packed per record (L)"}
    )
    chunk_prob: float = attrs.field(
        default=0.3,
        validator=in_range(0.0, 1.0),
        metadata={"help": "probability p of untying (paper: 0.3, 0.8)"},
    )
    per: str = attrs.field(
        default="sequence",
        validator=one_of("sequence", "document"),
        metadata={"help": "draw the untie decision once per record (reference) or per document"},
    )
    n_chunks: int = attrs.field(default=3, validator=at_least(2), metadata={"help": "chunks k per untied document"})
    split: str = attrs.field(
        default="equal",
        validator=one_of("equal", "random"),
        metadata={"help": "cut at equal parts or at random"},
    )
    preserve_partial_order: bool = attrs.field(
        default=False, metadata={"help": "keep each document's chunks in their order"}
    )
    backtrace: bool = attrs.field(
        default=True, metadata={"help": "<D> id </D> headers and the <S> id <s> … </S> untying target"}
    )
    truncate: bool = attrs.field(default=False, metadata={"help": "cut records to seq_len like the reference"})
    knot_tokens: tuple[int, ...] = attrs.field(
        default=(), validator=_ids, metadata={"help": "knot ids: one, or 2(n_chunks−1); empty = <unusedN>"}
    )
    sort_tokens: tuple[int, ...] = attrs.field(
        default=(), validator=_ids, metadata={"help": "<D> </D> <S> <s> </S> ids; empty = <unusedN>"}
    )
    id_tokens: tuple[int, ...] = attrs.field(
        default=(), validator=_ids, metadata={"help": "alphabet of chunk-ID tokens; empty = letters, digits"}
    )
    id_length: int = attrs.field(default=6, validator=positive, metadata={"help": "tokens per chunk ID"})
    eod_token: int | None = attrs.field(
        default=None, validator=_opt_id, metadata={"help": "token appended to every document (none = no EOD)"}
    )

    def __attrs_post_init__(self) -> None:
        if len(self.knot_tokens) not in (0, 1, 2 * (self.n_chunks - 1)):
            raise ParameterError(
                f"knot_tokens needs 1 or 2·(n_chunks−1) = {2 * (self.n_chunks - 1)} ids, got {len(self.knot_tokens)}"
            )
        if len(self.sort_tokens) not in (0, 5):
            raise ParameterError(f"sort_tokens needs 5 ids (<D> </D> <S> <s> </S>), got {len(self.sort_tokens)}")

    @property
    def resolved(self) -> bool:
        """Whether every token id the config needs is set."""
        return bool(self.knot_tokens) and (not self.backtrace or (bool(self.sort_tokens) and bool(self.id_tokens)))


@attrs.frozen
class Piece:
    """A run of one document's tokens packed into a record: ``(document ⊕ [EOD])[start : start + len]``."""

    doc: int
    start: int
    tokens: np.ndarray = attrs.field(eq=False)
    #: whether the piece ends its document (its last token is then the EOD, when ``eod_token`` is set)
    ends_doc: bool = True


def _check_resolved(cfg: UntieTheKnotsConfig) -> None:
    if not cfg.resolved:
        raise ParameterError(
            "untie-knots: knot_tokens"
            + (", sort_tokens and id_tokens" if cfg.backtrace else "")
            + " must be set (ids of special tokens the documents never contain), or build it with a "
            "tokenizer that has <unused0>, <unused1>, … tokens"
        )


def record_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of record ``index`` for ``seed`` (independent of every other record)."""
    if seed < 0 or index < 0:
        raise ParameterError(f"untie-knots: seed and record index must be >= 0, got {seed}, {index}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index])))


def pack(documents: Iterable[Sequence[int]], seq_len: int, eod_token: int | None = None) -> Iterator[list[Piece]]:
    """Lazily pack documents into runs of exactly ``seq_len`` tokens (the last run may be shorter).

    A document that does not fit continues in the next run. The next document is pulled only when the
    current run needs it, so consuming ``k`` runs reads no more documents than those ``k`` runs hold.
    """
    run: list[Piece] = []
    fill = 0
    for d, doc in enumerate(documents):
        toks = np.asarray(doc, dtype=np.int64).reshape(-1)
        if toks.size == 0:
            continue
        if eod_token is not None:
            toks = np.append(toks, np.int64(eod_token))
        start = 0
        while start < toks.size:
            take = min(toks.size - start, seq_len - fill)
            run.append(Piece(d, start, toks[start : start + take], ends_doc=start + take == toks.size))
            fill += take
            start += take
            if fill == seq_len:
                yield run
                run, fill = [], 0
    if run:
        yield run


def _cuts(n: int, k: int, split: str, rng: np.random.Generator) -> list[int]:
    """Cut points of a piece of ``n`` tokens into ``k`` chunks (reference ``calculate_split_positions``)."""
    if k <= 1 or n < k:
        return []
    if split == "random":
        return sorted(int(c) for c in rng.choice(np.arange(1, n), k - 1, replace=False))
    return [n // k * j for j in range(1, k)]


def _shuffle(parts_num: list[int], rng: np.random.Generator, preserve_partial_order: bool) -> list[list[int]]:
    """Placement of every chunk (reference ``shuffle_preserve_partial_order_multi_hop``).

    Returns ``position[i][j]``, the slot of chunk ``j`` of piece ``i``; all chunks but the last one of the
    last piece are permuted uniformly over the first slots, that one takes the last slot.
    """
    head = list(parts_num)
    head[-1] -= 1
    perm = rng.permutation(sum(head))
    position: list[list[int]] = []
    start = 0
    for num in head:
        slots = perm[start : start + num]
        if preserve_partial_order:
            slots = np.sort(slots)
        position.append([int(s) for s in slots])
        start += num
    position[-1].append(sum(head))
    return position


def untie(pieces: Sequence[Piece], config: UntieTheKnotsConfig, *, seed: int = 0, index: int = 0) -> Record:
    """Build record ``index`` from its packed ``pieces`` (pure: same inputs, same record).

    ``meta``: ``index``, ``seed``; ``doc_ids`` (stream index of each packed document) and ``pieces``
    (``[doc, start, end, ends_doc]``, token ranges of ``document ⊕ [EOD]``); ``untied``; ``order``
    (``[doc, chunk]`` per placed chunk); ``chunks`` (per placed chunk: ``doc``, ``chunk``, ``n_chunks``,
    ``source`` token range of ``document ⊕ [EOD]``, ``span`` of its tokens in ``input_ids``, and ``id``
    when it has a header); ``content_tokens``; ``truncated``; ``kinds`` (per position: :data:`TEXT`,
    :data:`EOD`, :data:`KNOT`, :data:`D_OPEN`, …).
    """
    cfg = config
    _check_resolved(cfg)
    if not pieces:
        raise ValueError("untie needs at least one piece")
    rng = record_rng(seed, index)
    k = cfg.n_chunks
    knots = cfg.knot_tokens * (2 * (k - 1)) if len(cfg.knot_tokens) == 1 else cfg.knot_tokens

    # 1. chunk every piece (source ranges local to the piece)
    untie_all = rng.random() < cfg.chunk_prob if cfg.per == "sequence" else False
    bounds: list[list[tuple[int, int]]] = []
    for p in pieces:
        k_i = k if (untie_all if cfg.per == "sequence" else rng.random() < cfg.chunk_prob) else 1
        edges = [0, *_cuts(len(p.tokens), k_i, cfg.split, rng), len(p.tokens)]
        bounds.append(list(itertools.pairwise(edges)))

    # 2. shuffle, the last chunk of the last piece stays last
    position = _shuffle([len(b) for b in bounds], rng, cfg.preserve_partial_order)
    n_slots = sum(len(b) for b in bounds)
    order: list[tuple[int, int]] = [(0, 0)] * n_slots
    for i, slots in enumerate(position):
        for j, slot in enumerate(slots):
            order[slot] = (i, j)

    # 3. one random ID per slot (only chunks of cut documents show theirs)
    id_of = (
        rng.choice(np.asarray(cfg.id_tokens, dtype=np.int64), size=(n_slots, cfg.id_length)) if cfg.backtrace else None
    )
    D_open, D_close, S_open, S_sep, S_close = cfg.sort_tokens or (0, 0, 0, 0, 0)

    ids: list[int] = []
    kinds: list[int] = []

    def put(tokens: Sequence[int] | np.ndarray, kind: int) -> None:
        tokens = np.asarray(tokens, dtype=np.int64).tolist()
        ids.extend(tokens)
        kinds.extend([kind] * len(tokens))

    chunks_meta: list[dict[str, Any]] = []
    for slot, (i, j) in enumerate(order):
        p = pieces[i]
        n_i = len(bounds[i])
        s, e = bounds[i][j]
        cut = n_i > 1
        entry: dict[str, Any] = {
            "doc": p.doc,
            "chunk": j,
            "n_chunks": n_i,
            "source": [p.start + s, p.start + e],
        }
        if cfg.backtrace and cut:
            assert id_of is not None
            put([D_open], D_OPEN)
            put(id_of[slot], D_ID)
            put([D_close], D_CLOSE)
            entry["id"] = [int(t) for t in id_of[slot]]
        if j > 0:
            put([knots[2 * j - 1]], KNOT)
        body_start = len(ids)
        body = p.tokens[s:e]
        if cfg.eod_token is not None and p.ends_doc and j == n_i - 1 and body.size:
            put(body[:-1], TEXT)
            put(body[-1:], EOD)
        else:
            put(body, TEXT)
        entry["span"] = [body_start, len(ids)]
        if j < n_i - 1:
            put([knots[2 * j]], KNOT)
        if cfg.backtrace and cut and slot == max(position[i]):
            assert id_of is not None
            put([S_open], S_OPEN)
            for jj, slot_jj in enumerate(position[i]):
                if jj:
                    put([S_sep], S_SEP)
                put(id_of[slot_jj], S_ID)
            put([S_close], S_CLOSE)
        chunks_meta.append(entry)

    # 4. label-aligned loss mask
    mask = [0 if (t == 0 or kind in _NO_LABEL or kinds[t - 1] in _NO_NEXT) else 1 for t, kind in enumerate(kinds)]

    truncated = 0
    if cfg.truncate and len(ids) > cfg.seq_len:
        truncated = len(ids) - cfg.seq_len
        ids, mask, kinds = ids[: cfg.seq_len], mask[: cfg.seq_len], kinds[: cfg.seq_len]
        for entry in chunks_meta:
            a, b = entry["span"]
            entry["span"] = [min(a, cfg.seq_len), min(b, cfg.seq_len)]
    meta = {
        "index": index,
        "seed": seed,
        "doc_ids": [p.doc for p in pieces],
        # packing provenance: [doc, start, end, ends_doc] per piece, enough to rebuild the record
        "pieces": [[p.doc, p.start, p.start + int(p.tokens.size), p.ends_doc] for p in pieces],
        "untied": any(len(b) > 1 for b in bounds),
        "order": [[pieces[i].doc, j] for i, j in order],
        "chunks": chunks_meta,
        "content_tokens": sum(int(p.tokens.size) for p in pieces),
        "truncated": truncated,
        "kinds": kinds,  # per position: TEXT, EOD, KNOT, D_OPEN, … (module constants)
    }
    return Record(input_ids=ids, loss_mask=mask, meta=meta)


class UntieTheKnots:
    """Streams UtK records from token-id documents."""

    def __init__(self, config: UntieTheKnotsConfig, ctx: Any = None) -> None:
        tokenizer = getattr(ctx, "tokenizer", None)
        if not config.resolved and tokenizer is not None:
            config = resolve_token_ids(config, tokenizer)
        _check_resolved(config)
        self.config = config

    def augment(self, documents: Iterable[Sequence[int]], *, seed: int = 0) -> Iterator[Record]:
        """Yield one record per ``seq_len`` packed document tokens, lazily."""
        record_rng(seed, 0)  # validate the seed before consuming anything
        for index, pieces in enumerate(pack(documents, self.config.seq_len, self.config.eod_token)):
            yield untie(pieces, self.config, seed=seed, index=index)


def resolve_token_ids(config: UntieTheKnotsConfig, tokenizer: Any) -> UntieTheKnotsConfig:
    """Fill unset ids from ``tokenizer``: ``<unusedN>`` for knots then backtracing markers, single-token
    letters and digits for the ID alphabet."""
    changes: dict[str, Any] = {}
    n_knots = 2 * (config.n_chunks - 1)
    unk = getattr(tokenizer, "unk_token_id", None)

    def unused(first: int, count: int) -> tuple[int, ...]:
        names = [f"<unused{u}>" for u in range(first, first + count)]
        got = tokenizer.convert_tokens_to_ids(names)
        missing = [n for n, i in zip(names, got) if i is None or i == unk]
        if missing:
            raise ParameterError(
                f"untie-knots: the tokenizer has no {missing[0]} token; set knot_tokens, sort_tokens "
                "(and id_tokens) to ids of tokens it never produces"
            )
        return tuple(int(i) for i in got)

    if not config.knot_tokens:
        changes["knot_tokens"] = unused(0, n_knots)
    if config.backtrace and not config.sort_tokens:
        changes["sort_tokens"] = unused(n_knots, 5)
    if config.backtrace and not config.id_tokens:
        alphabet = []
        for ch in string.ascii_letters + string.digits:
            enc = tokenizer(ch, add_special_tokens=False)["input_ids"]
            if len(enc) == 1:
                alphabet.append(int(enc[0]))
        changes["id_tokens"] = tuple(dict.fromkeys(alphabet))
    return attrs.evolve(config, **changes)


@hookimpl
def lc_register_augmenters(register):
    register(
        "untie-knots",
        config=UntieTheKnotsConfig,
        build=UntieTheKnots,
        summary="Untie the Knots: shuffle document chunks between knot tokens; learn to backtrace chunk IDs",
        paper="Tian et al. 2024, arXiv:2409.04774 (code: rgtjf/Untie-the-Knots)",
    )
