"""LongEmbed's synthetic retrieval tasks for embedding models: ``longembed-passkey`` and ``longembed-needle``.

Zhu, Wang, Yang, Song, Wu, Wei & Li 2024, "LongEmbed: Extending Embedding Models for Long Context
Retrieval", arXiv:2404.12096 (``dwzhu-pku/LongEmbed``; the tasks ``LEMBPasskeyRetrieval`` and
``LEMBNeedleRetrieval`` of MTEB). The passkey task is the *personalized* passkey retrieval of Wang et al.
2024 ("Improving Text Embeddings with Large Language Models", arXiv:2401.00368).

**Documents and queries.** For each context length LongEmbed builds a pool of candidate documents of
that length and queries that each have exactly one relevant document in the pool (50 queries and 100
candidates per length). Here a seed fixes the pool — ``candidates`` documents, each of ``length`` tokens
of the *same* filler with its own evidence line at ``depth`` (the sentence boundary nearest that
fraction of the filler) — and one case is built per query, for the first ``queries`` documents:

* ``longembed-passkey``: filler = the noise paragraph ("The grass is green. The sky is blue. …") cut to
  a number of words; evidence = ``"{name}'s pass key is {key}. Remember it. {key} is the pass key for
  {name}."``; query = ``"what is the pass key for {name}?"``; every document has its own person and key.
* ``longembed-needle``: filler = the bundled public-domain novel (LongEmbed uses Paul Graham's essays,
  which we do not ship) from a seed-dependent word on; evidence = a needle sentence (a fact about a
  person, from templates) and query = its question; every document has its own needle.

Each document is fitted to ``length`` tokens of the case tokenizer (special tokens included) by the
number of filler words (:func:`longctx.evaluate.fit_length`). A case's prompt is its relevant document,
its answer the key (passkey) or the needle sentence (needle), and ``meta`` holds what rebuilds the pool.

**Scoring.** ``evaluate(pipeline, case)`` embeds the query and every candidate with the composed encoder
as sentence-transformers' all-MiniLM-L6-v2 does — mean of the last hidden states over the attention
mask, then L2 normalisation — ranks the candidates by cosine similarity and predicts the answer of the
top one (ties — documents whose kept tokens are identical — broken by a seeded permutation, so they
are worth ``1/k`` in expectation). The score is top-1 accuracy (LongEmbed reports nDCG@1, the same
number with one relevant document); ``metrics`` adds the reciprocal rank, nDCG@10 and whether the
relevant document was cut.
A document longer than the pipeline's usable positions (``Pipeline.max_context``, and the rows of its
absolute position table) is truncated to its first tokens, as sentence-transformers truncates to
``max_seq_length``: with no positional extension that is the *truncation* baseline, while
``positional=ape-interpolation`` / ``positional=long-clip`` stretch the table so the whole document
fits. Candidate embeddings are computed once per pipeline and reused by every query of the pool.

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402: low
diffusion (the evidence is one short, lexically marked line: the person's name) and low scope (that line
alone decides the match) — for both tasks.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
import time
import weakref
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any

import attrs
import torch

from longctx.errors import InputError, ParameterError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, fit_length, split_at_depth
from longctx.haystack import DEFAULT_PROSE, NOISE, prose_text
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range

#: Person names (ours): first × last gives the pool's unique protagonists.
FIRST_NAMES = (
    "Ada", "Bruno", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kavya", "Lars",
    "Mira", "Nikolai", "Olga", "Pablo", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wendell", "Xenia",
    "Yusuf", "Zora", "Anton", "Beatrix", "Cyrus", "Delia", "Emil", "Fiona", "Gustav", "Hana", "Ivo", "Julia",
)  # fmt: skip
LAST_NAMES = (
    "Abbott", "Brandt", "Castillo", "Dufresne", "Eriksen", "Fontaine", "Gallagher", "Haddad", "Ivanova",
    "Jansen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quigley", "Rossi",
    "Santos", "Takahashi", "Underwood", "Varga", "Whitfield", "Yilmaz", "Zeller", "Albrecht", "Bianchi",
    "Carvalho", "Delacroix", "Esposito", "Fischer", "Grimaldi", "Horvath", "Iglesias", "Jovanovic", "Keller",
)  # fmt: skip

PASSKEY_LINE = "{name}'s pass key is {key}. Remember it. {key} is the pass key for {name}."
PASSKEY_QUERY = "what is the pass key for {name}?"

#: Needle templates (ours): (needle, question) with slots filled from :data:`NEEDLE_SLOTS`.
# fmt: off
NEEDLE_TEMPLATES = (
    ("{name} keeps the spare key to the {place} under a {object}.",
     "Where does {name} keep the spare key to the {place}?"),
    ("The best thing {name} ever ate in {city} was {dish}.", "What was the best thing {name} ever ate in {city}?"),
    ("{name}'s favourite painting shows {scene}.", "What does {name}'s favourite painting show?"),
    ("{name} learned to play the {instrument} in {city}.", "Where did {name} learn to play the {instrument}?"),
    ("The secret ingredient in {name}'s soup is {ingredient}.", "What is the secret ingredient in {name}'s soup?"),
)
# fmt: on
NEEDLE_SLOTS: dict[str, tuple[str, ...]] = {
    "place": ("boathouse", "garden shed", "bakery", "lighthouse", "observatory", "workshop", "chapel"),
    "object": ("blue flowerpot", "loose brick", "stone owl", "doormat", "rusty bucket", "wooden crate"),
    "city": ("Lisbon", "Kyoto", "Oaxaca", "Tallinn", "Marrakesh", "Valparaiso", "Hobart", "Bergen", "Tbilisi"),
    "dish": ("a bowl of clam soup", "grilled octopus", "a plum dumpling", "smoked eel on rye", "saffron rice"),
    "scene": (
        "a fox crossing a frozen river",
        "three boats at dawn",
        "a violinist in the rain",
        "a windmill under a red moon",
        "children flying kites on a dune",
    ),
    "instrument": ("cello", "accordion", "oboe", "banjo", "harp", "trombone"),
    "ingredient": ("smoked paprika", "a spoon of honey", "toasted fennel seeds", "dried orange peel", "miso"),
}  # fmt: skip

_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*$")


def _sentences(words: Sequence[str]) -> list[str]:
    out, cur = [], []
    for w in words:
        cur.append(w)
        if _SENTENCE_END.search(w):
            out.append(" ".join(cur))
            cur = []
    if cur:
        out.append(" ".join(cur))
    return out


@functools.lru_cache(maxsize=4)
def _prose_words(source: str) -> tuple[str, ...]:
    return tuple(prose_text(source).split())


_NOISE_WORDS = tuple(NOISE.split())


@attrs.frozen
class LongEmbedConfig:
    """The pool of candidate documents, the queries and the length fit."""

    candidates: int = attrs.field(
        default=100, validator=in_range(2, 1000), metadata={"help": "candidate documents per pool (LongEmbed: 100)"}
    )
    queries: int = attrs.field(
        default=50, validator=at_least(1), metadata={"help": "queries (cases) per pool, <= candidates (LongEmbed: 50)"}
    )
    tolerance: float = attrs.field(
        default=0.02,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a document may stay (fraction)"},
    )
    batch: int = attrs.field(default=8, validator=at_least(1), metadata={"help": "documents per encoder forward"})
    max_tokens: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(at_least(2)),
        metadata={"help": "truncate inputs to this many tokens too (none = the encoder's usable positions)"},
    )

    def __attrs_post_init__(self) -> None:
        if self.queries > self.candidates:
            raise ParameterError(f"queries ({self.queries}) must be <= candidates ({self.candidates})")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' mean pooling: the mean of ``hidden`` (``b × n × d``) over the positions where
    ``mask`` (``b × n``) is 1, then L2-normalised (all-MiniLM-L6-v2's Pooling + Normalize)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    summed = (hidden * m).sum(dim=1)
    mean = summed / m.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, p=2, dim=-1)


def usable_positions(pipeline: Any) -> int | None:
    """How many tokens the composed encoder can take: ``Pipeline.max_context``, bounded by the rows of its
    absolute position tables after their padding offset (RoBERTa's tables start at ``padding_idx + 1``)."""
    from longctx.ape import position_tables

    limits = [pipeline.max_context] if getattr(pipeline, "max_context", None) else []
    for _name, owner in position_tables(pipeline.model):
        emb = owner.position_embeddings
        limits.append(emb.num_embeddings - (0 if emb.padding_idx is None else int(emb.padding_idx) + 1))
    return min(limits) if limits else None


#: per pipeline: document hash -> (embedding, tokens seen, truncated)
_CACHE: weakref.WeakKeyDictionary[Any, dict[str, tuple[torch.Tensor, int, bool]]] = weakref.WeakKeyDictionary()


def embed(
    pipeline: Any, texts: Sequence[str], *, batch: int = 8, max_tokens: int | None = None
) -> tuple[torch.Tensor, list[int], list[bool]]:
    """Embeddings (``len(texts) × d``, unit norm) of ``texts`` with the composed encoder, each truncated to
    :func:`usable_positions` (and to ``max_tokens``); also the tokens each kept and whether it was cut."""
    tok = pipeline.tokenizer
    if tok is None:
        raise InputError("longembed needs a pipeline with a tokenizer (compose(..., tokenizer=...))")
    limits = [x for x in (usable_positions(pipeline), max_tokens) if x is not None]
    limit = min(limits) if limits else None
    full = [tok(t, add_special_tokens=True, verbose=False)["input_ids"] for t in texts]
    if limit is not None:
        ids = [tok(t, add_special_tokens=True, truncation=True, max_length=limit)["input_ids"] for t in texts]
    else:
        ids = full
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    device = getattr(pipeline.model, "device", torch.device("cpu"))
    out = []
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths share a batch: less padding
    for s in range(0, len(order), batch):
        group = order[s : s + batch]
        width = max(len(ids[i]) for i in group)
        x = torch.full((len(group), width), pad, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for row, i in enumerate(group):
            x[row, : len(ids[i])] = torch.tensor(ids[i])
            mask[row, : len(ids[i])] = 1
        with torch.inference_mode():
            res = pipeline.forward(x.to(device), attention_mask=mask.to(device), use_cache=False)
        hidden = getattr(res, "last_hidden_state", None)
        if hidden is None:
            raise InputError(
                f"longembed needs an encoder returning last_hidden_state (a BERT-style model); "
                f"{type(pipeline.model).__name__} does not"
            )
        out.extend(zip(group, mean_pool(hidden.float(), mask.to(hidden.device)).cpu()))
    out.sort(key=lambda p: p[0])
    return (
        torch.stack([e for _i, e in out]),
        [len(i) for i in ids],
        [len(a) > len(b) for a, b in zip(full, ids)],
    )


def rank_candidates(similarities: Sequence[float], seed: int) -> list[int]:
    """Candidate indices from the most to the least similar. Similarities equal to 5 decimals are tied and
    their order is a permutation drawn from ``seed``: documents whose kept tokens are identical (truncated
    before their evidence) then cost the query its expected ``1/k``, not a win for whichever comes first."""
    n = len(similarities)
    tie = random.Random(seed).sample(range(n), n)
    return sorted(range(n), key=lambda i: (-round(float(similarities[i]), 5), tie[i]))


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


class _LongEmbedTask:
    """What both LongEmbed tasks share: the pool, the fit, and embedding retrieval."""

    name = ""
    tags = MappingProxyType({"diffusion": "low", "scope": "low"})

    def __init__(self, config: LongEmbedConfig | None = None, ctx: Any = None) -> None:
        self.config = config or LongEmbedConfig()

    # -- what a subclass says -------------------------------------------------------------------------

    def pool(self, seed: int) -> list[dict[str, str]]:
        """``candidates`` entries ``{"name", "evidence", "query", "answer"}`` for ``seed``."""
        raise NotImplementedError

    def filler_words(self, seed: int, n: int) -> list[str]:
        """The first ``n`` filler words of the pool of ``seed``."""
        raise NotImplementedError

    # -- documents ------------------------------------------------------------------------------------

    def _names(self, rng: random.Random) -> list[str]:
        every = [f"{f} {s}" for f in FIRST_NAMES for s in LAST_NAMES]
        return rng.sample(every, self.config.candidates)

    def document(self, seed: int, n: int, depth: float, evidence: str) -> tuple[str, float]:
        """``n`` filler words with ``evidence`` at the sentence boundary nearest ``depth``; and that boundary."""
        prefix, suffix, actual = split_at_depth(_sentences(self.filler_words(seed, n)), depth)
        return " ".join(x for x in (prefix, evidence, suffix) if x), actual

    def _fit(
        self, tokenizer: Any, length: int, seed: int, depth: float, evidence: str, guess: int | None
    ) -> tuple[int, int]:
        """The number of filler words that makes the document with ``evidence`` ``length`` tokens, and its
        tokens.

        ``guess`` (predicted from another document of the pool) is taken when it lands within the
        tolerance — one tokenization; otherwise the words are searched (bracketed around the guess first).
        """

        def build(n: int) -> str:
            return self.document(seed, n, depth, evidence)[0]

        slack = self.config.tolerance * length
        if guess is not None and guess >= 0:
            t = count_prompt_tokens(tokenizer, build(guess))
            if length - slack <= t <= length:
                return guess, t
            try:
                got = fit_length(
                    build, tokenizer, length, lo=max(0, guess - 32), hi=guess + 32, tolerance=self.config.tolerance
                )
                if length - got.tokens <= slack:
                    return got.n, got.tokens
            except InputError:
                pass
        got = fit_length(build, tokenizer, length, tolerance=self.config.tolerance)
        return got.n, got.tokens

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case per query: its relevant document (``length`` tokens) is the prompt; the pool's other
        documents, rebuilt from ``meta``, are the candidates."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        entries = self.pool(seed)
        # the documents differ only in their evidence line: predict each one's filler words from the first
        # one's fit and the lines' token counts, so most documents cost a single tokenization
        line_tokens = [count_prompt_tokens(tokenizer, e["evidence"]) for e in entries]
        words: list[int] = []
        tokens: list[int] = []
        per_word = 1.0
        for i, e in enumerate(entries):
            guess = None
            if words:
                guess = words[0] + round((line_tokens[0] - line_tokens[i]) / per_word)
            try:
                n, t = self._fit(tokenizer, length, seed, depth, e["evidence"], guess)
            except InputError:
                raise InputError(
                    f"{self.name}: a length of {length} tokens is too short for the evidence line "
                    f"{e['evidence']!r} alone; ask for a longer length"
                ) from None
            if not words and n:
                per_word = max((t - line_tokens[0]) / n, 1e-3)
            words.append(n)
            tokens.append(t)
        pool_meta = {
            "words": words,
            "evidence": [e["evidence"] for e in entries],
            "answers": [e["answer"] for e in entries],
        }
        for q in range(self.config.queries):
            e = entries[q]
            doc, actual = self.document(seed, words[q], depth, e["evidence"])
            yield Case(
                task=self.name,
                prompt=doc,
                answer=e["answer"],
                target_tokens=length,
                actual_tokens=tokens[q],
                depth=depth,
                seed=seed,
                max_new_tokens=0,
                query=e["query"],
                meta={
                    "target": q,
                    "name": e["name"],
                    "evidence": e["evidence"],
                    "evidence_depth": actual,
                    "filler_words": words[q],
                    "candidates": len(entries),
                    "pool": pool_meta,
                },
            )

    # -- retrieval ------------------------------------------------------------------------------------

    def _candidates(self, pipeline: Any, case: Case) -> tuple[torch.Tensor, list[int], list[bool]]:
        pool = case.meta["pool"]
        docs = [self.document(case.seed, n, case.depth, ev)[0] for n, ev in zip(pool["words"], pool["evidence"])]
        cache = _CACHE.setdefault(pipeline, {})
        keys = [f"{_key(d)}|{self.config.max_tokens}" for d in docs]
        missing = [i for i, k in enumerate(keys) if k not in cache]
        if missing:
            emb, seen, cut = embed(
                pipeline, [docs[i] for i in missing], batch=self.config.batch, max_tokens=self.config.max_tokens
            )
            for i, v, k, c in zip(missing, emb, seen, cut):
                cache[keys[i]] = (v, k, c)
        got = [cache[k] for k in keys]
        return torch.stack([g[0] for g in got]), [g[1] for g in got], [g[2] for g in got]

    def evaluate(self, pipeline: Any, case: Case) -> dict[str, Any]:
        """Rank the pool's documents for the case's query; 1.0 when its own document comes first."""
        t0 = time.perf_counter()
        docs, seen, cut = self._candidates(pipeline, case)
        q, _, _ = embed(pipeline, [case.query or ""], batch=1, max_tokens=self.config.max_tokens)
        sims = docs @ q[0]
        target = int(case.meta["target"])
        order = rank_candidates(sims.tolist(), derive_seed(self.name, case.id))
        rank = order.index(target) + 1
        tied = sum(1 for v in sims.tolist() if round(v, 5) == round(float(sims[order[0]]), 5))
        answers = case.meta["pool"]["answers"]
        prediction = answers[order[0]]
        return {
            "score": self.score(prediction, case),
            "prediction": prediction,
            "seconds": time.perf_counter() - t0,
            "prompt_tokens": seen[target],
            "new_tokens": 0,
            "metrics": {
                "top1": float(rank == 1),
                "reciprocal_rank": 1.0 / rank,
                "ndcg_at_10": (1.0 / torch.log2(torch.tensor(rank + 1.0)).item()) if rank <= 10 else 0.0,
                "truncated": float(cut[target]),
                "doc_tokens": float(seen[target]),
                "tied_at_top": float(tied),
            },
            "rank": rank,
        }

    def score(self, prediction: str, case: Case) -> float:
        """1.0 when ``prediction`` (the top document's answer) is the case's answer, else 0.0."""
        return 1.0 if prediction.strip() == case.answer else 0.0


@attrs.frozen
class LongEmbedPasskeyConfig(LongEmbedConfig):
    """The pool, the queries and the length fit (the key is five digits, one per document)."""


class LongEmbedPasskey(_LongEmbedTask):
    """Personalized passkey retrieval: find the document holding the named person's pass key."""

    name = "longembed-passkey"

    def __init__(self, config: LongEmbedPasskeyConfig | None = None, ctx: Any = None) -> None:
        self.config = config or LongEmbedPasskeyConfig()

    def pool(self, seed: int) -> list[dict[str, str]]:
        rng = random.Random(derive_seed(self.name, seed))
        names = self._names(rng)
        keys = rng.sample(range(10000, 100000), len(names))
        return [
            {
                "name": name,
                "evidence": PASSKEY_LINE.format(name=name, key=key),
                "query": PASSKEY_QUERY.format(name=name),
                "answer": str(key),
            }
            for name, key in zip(names, keys)
        ]

    def filler_words(self, seed: int, n: int) -> list[str]:
        return [_NOISE_WORDS[i % len(_NOISE_WORDS)] for i in range(n)]


@attrs.frozen
class LongEmbedNeedleConfig(LongEmbedConfig):
    """The pool, the queries, the length fit and the prose the needles are hidden in."""

    path: str = attrs.field(
        default=DEFAULT_PROSE,
        metadata={"help": f"filler text: a UTF-8 file, or {DEFAULT_PROSE!r} (the bundled novel)"},
    )


class LongEmbedNeedle(_LongEmbedTask):
    """Needle retrieval: find the document holding the fact the question asks about."""

    name = "longembed-needle"

    def __init__(self, config: LongEmbedNeedleConfig | None = None, ctx: Any = None) -> None:
        self.config = config or LongEmbedNeedleConfig()

    def pool(self, seed: int) -> list[dict[str, str]]:
        rng = random.Random(derive_seed(self.name, seed))
        out = []
        for name in self._names(rng):
            needle, question = rng.choice(NEEDLE_TEMPLATES)
            slots = {k: rng.choice(v) for k, v in NEEDLE_SLOTS.items()}
            text = needle.format(name=name, **slots)
            out.append({"name": name, "evidence": text, "query": question.format(name=name, **slots), "answer": text})
        return out

    def filler_words(self, seed: int, n: int) -> list[str]:
        words = _prose_words(self.config.path)
        if not words:
            raise InputError(f"{self.name}: the text {self.config.path!r} has no words")
        start = random.Random(derive_seed(self.name, seed, "offset")).randrange(len(words))
        return [words[(start + i) % len(words)] for i in range(n)]


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance-kit contracts of both tasks (imported only when asked)."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.plugins.longembed.contract import LongEmbedNeedleContract, LongEmbedPasskeyContract

        return (LongEmbedPasskeyContract, LongEmbedNeedleContract)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    register(
        "longembed-passkey",
        config=LongEmbedPasskeyConfig,
        build=LongEmbedPasskey,
        summary="Embedding retrieval: the document with a person's pass key among same-filler candidates (top-1)",
        paper="Zhu et al. 2024 (LongEmbed), arXiv:2404.12096; Wang et al. 2024, arXiv:2401.00368",
    )
    register(
        "longembed-needle",
        config=LongEmbedNeedleConfig,
        build=LongEmbedNeedle,
        summary="Embedding retrieval: the document with the needle fact a question asks about (top-1)",
        paper="Zhu et al. 2024 (LongEmbed), arXiv:2404.12096",
    )
