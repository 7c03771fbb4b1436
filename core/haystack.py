"""Haystacks, needles and random values for the synthetic evaluation tasks — generated offline.

Every synthetic long-context benchmark hides some evidence ("needles") in filler ("haystack") and fits
the whole prompt to a token budget (:func:`longctx.evaluate.fit_length`). What the tasks share lives
here, so each task module only says what is specific to its benchmark:

* **Haystacks** (RULER's three kinds, Hsieh et al. 2024, arXiv:2404.06654):

  - ``noise`` — RULER's / landmark's repeated sentence ``"The grass is green. The sky is blue. The sun is
    yellow. Here we go. There and back again."`` (:data:`NOISE`, :func:`noise_sentences`);
  - ``needle`` — distractor needles of the same shape as the real one (the task builds them);
  - ``essay`` — natural prose. RULER uses Paul Graham's essays, which are copyrighted; here it is the
    public-domain *Pride and Prejudice* bundled with the package (:func:`prose_sentences`), or any
    local text file (``path``). Always labelled as prose, never as PG essays.

* **Words**: RULER draws keys from the ``wonderwords`` lists (nouns, adjectives, verbs) —
  :func:`word_list` reads the lists the package ships (MIT), no network.
* **Values**: uuids, numbers and words from a seeded :class:`random.Random` (:func:`rng_uuid`,
  :func:`rng_number`), so a case is a pure function of its seed.
* **Insertion**: :func:`insert_at_depths` puts needle sentences between haystack sentences at the
  boundaries nearest to given depths (a fraction of the haystack's characters), the way RULER's
  ``depth_percent`` and gkamradt's back-off to a sentence boundary do.

Sentences come from :func:`longctx.textsplit.sentence_spans` (a regex splitter; nltk's punkt would
download at run time).
"""

from __future__ import annotations

import functools
import gzip
import itertools
import random
import uuid
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from longctx.errors import InputError
from longctx.textsplit import sentence_spans

__all__ = [
    "HAYSTACKS",
    "NOISE",
    "UuidPairs",
    "insert_at_depths",
    "noise_sentences",
    "prose_sentences",
    "prose_text",
    "repeat_to",
    "rng_number",
    "rng_uuid",
    "word_list",
]

#: RULER's noise haystack sentence (``scripts/data/synthetic/niah.py``), also landmark's passkey filler.
NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
#: The haystack kinds the needle tasks accept.
HAYSTACKS = ("noise", "essay", "needle")
#: The bundled public-domain novel (``core/data/README.md``).
DEFAULT_PROSE = "pride_and_prejudice"

_NOISE_SENTENCES = tuple(NOISE[s:e].strip() for s, e in sentence_spans(NOISE))


def noise_sentences(n: int) -> list[str]:
    """The first ``n`` sentences of the repeated noise paragraph."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return list(itertools.islice(itertools.cycle(_NOISE_SENTENCES), n))


@functools.lru_cache(maxsize=8)
def prose_text(source: str = DEFAULT_PROSE) -> str:
    """The text of a prose haystack: ``"pride_and_prejudice"`` (bundled) or a path to a UTF-8 text file."""
    if source == DEFAULT_PROSE:
        data = resources.files("longctx").joinpath("data", "pride_and_prejudice.txt.gz").read_bytes()
        return gzip.decompress(data).decode("utf-8")
    path = Path(source).expanduser()
    if not path.is_file():
        raise InputError(f"haystack text {source!r} is neither {DEFAULT_PROSE!r} nor a readable file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"haystack text {source!r} is not UTF-8: {e}") from None


@functools.lru_cache(maxsize=8)
def _prose(source: str) -> tuple[str, ...]:
    text = prose_text(source)
    out = []
    for s, e in sentence_spans(text):
        sent = " ".join(text[s:e].split())
        if sent:
            out.append(sent)
    if not out:
        raise InputError(f"haystack text {source!r} has no sentences")
    return tuple(out)


def prose_sentences(n: int, *, source: str = DEFAULT_PROSE, start: int = 0) -> list[str]:
    """``n`` consecutive sentences of a prose text from sentence ``start`` on, wrapping around at its end
    (whitespace inside a sentence collapsed to single spaces)."""
    sents = _prose(source)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    start %= len(sents)
    return [sents[(start + i) % len(sents)] for i in range(n)]


def repeat_to(items: Sequence[str], n: int) -> list[str]:
    """The first ``n`` items of ``items`` repeated (``items`` must be non-empty when ``n > 0``)."""
    if n and not items:
        raise ValueError("cannot repeat an empty sequence")
    return [items[i % len(items)] for i in range(n)]


@functools.lru_cache(maxsize=4)
def word_list(kinds: tuple[str, ...] = ("noun", "adjective", "verb")) -> tuple[str, ...]:
    """RULER's word pool: the ``wonderwords`` lists of the given kinds, merged, deduplicated, sorted
    (multi-word entries dropped). Read from the files the package ships — no network."""
    files = {"noun": "nounlist.txt", "adjective": "adjectivelist.txt", "verb": "verblist.txt"}
    words: set[str] = set()
    for k in kinds:
        if k not in files:
            raise ValueError(f"unknown word kind {k!r}; choose from {', '.join(files)}")
        text = resources.files("wonderwords").joinpath("assets", files[k]).read_text(encoding="utf-8")
        words.update(w.strip() for w in text.splitlines() if w.strip() and " " not in w.strip())
    return tuple(sorted(words))


def rng_uuid(rng: random.Random) -> str:
    """A version-4 uuid drawn from ``rng`` (deterministic, unlike :func:`uuid.uuid4`)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def rng_number(rng: random.Random, digits: int = 7) -> str:
    """A number of exactly ``digits`` digits drawn from ``rng``, as a string (RULER: 7 digits)."""
    if digits < 1:
        raise ValueError(f"digits must be >= 1, got {digits}")
    return str(rng.randint(10 ** (digits - 1), 10**digits - 1))


def insert_at_depths(
    haystack: Sequence[str], needles: Sequence[str], depths: Sequence[float]
) -> tuple[list[str], list[float]]:
    """Insert each needle sentence into the haystack sentences at the boundary nearest its depth.

    ``depths`` are fractions of the haystack's characters (0: before the first sentence, 1: after the
    last), one per needle. Needles whose depths round to the same boundary keep their given order.
    Returns the new sentence list and the actual depth of each needle (the boundary's fraction of the
    haystack, as in :func:`longctx.evaluate.split_at_depth`).
    """
    if len(needles) != len(depths):
        raise ValueError(f"{len(needles)} needles but {len(depths)} depths")
    for d in depths:
        if not 0.0 <= d <= 1.0:
            raise InputError(f"depth must be between 0 and 1, got {d}")
    ends = [0, *itertools.accumulate(len(s) + 1 for s in haystack)]
    total = ends[-1] or 1
    boundary = [min(range(len(ends)), key=lambda b, d=d: (abs(ends[b] / total - d), b)) for d in depths]
    order = sorted(range(len(needles)), key=lambda i: (boundary[i], i))
    out: list[str] = []
    prev = 0
    for i in order:
        out.extend(haystack[prev : boundary[i]])
        out.append(needles[i])
        prev = boundary[i]
    out.extend(haystack[prev:])
    return out, [ends[b] / total for b in boundary]


class UuidPairs:
    """An endless, seeded stream of distinct uuid key–value pairs (the haystack of kv-retrieval and Needle
    Threading). ``take(k)`` is prefix-stable in ``k`` — the first ``k`` pairs never change when more are
    drawn — so a prompt built from it grows monotonically with ``k``, as length fitting needs."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.records: list[tuple[str, str]] = []
        self.seen: set[str] = set()

    def fresh(self) -> str:
        """A uuid not drawn before from this stream."""
        while True:
            u = rng_uuid(self.rng)
            if u not in self.seen:
                self.seen.add(u)
                return u

    def take(self, k: int) -> list[tuple[str, str]]:
        """The first ``k`` pairs (a new list)."""
        while len(self.records) < k:
            self.records.append((self.fresh(), self.fresh()))
        return list(self.records[:k])
