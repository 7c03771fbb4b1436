"""Needle threading: retrieve values — and follow threads of values — through a haystack of uuid pairs.

Roberts, Han & Albanie 2024, "Needle Threading: Can LLMs Follow Threads through Near-Million-Scale
Haystacks?", arXiv:2411.05000 (ICLR 2025; ``jonathan-roberts1/needle-threading``: README evaluation
code and the Hugging Face data splits ``Single_Needle``, ``Multi_Needle``, ``Conditional_Needle``,
``Single_Thread``, ``Multi_Thread``).

**Haystack.** A JSON object of ``k`` key–value pairs whose keys and values are uuid strings, written on
one line as ``{"<key>": "<value>", "<key>": "<value>", …}`` (the dataset's ``haystack`` field). Every
uuid is distinct. The prompt is the haystack, a newline, then the question (README:
``prompt = haystack + '\\n' + question``).

**Tasks** (one registered name each):

* ``threading-single-needle`` — the value of one key placed at ``depth`` (pair index
  ``round(depth·(k−1))``). Question (the dataset's, verbatim)::

      Extract the value corresponding to the specified key in the JSON object. Key: "{key}"
       Corresponding value:{space}

* ``threading-multi-needle`` — the values of ``num_needles`` keys, placed at random pairs
  (``placement="random"``) or on consecutive pairs from ``depth`` on (``"clustered"``).
* ``threading-conditional-needle`` — the values of every key that contains ``character``: the
  ``num_needles`` needle keys each get one hex digit replaced by it (the other keys are plain hex, so
  the condition singles out exactly the needles).
* ``threading-single-thread`` — a thread of ``thread_length`` pairs in which each value is the key of
  the next pair: ``(k₁, k₂), (k₂, k₃), …, (k_L, v)``; given ``k₁``, answer ``v``. The first pair sits at
  ``depth`` (pair ``round(depth·(k−L))``, shifted by ``L−1`` for backward threads); the others at random
  pairs after it (``direction="forward"``: each hop moves towards the end of the context) or before it
  (``"backward"``).
* ``threading-multi-thread`` — ``num_threads`` such threads at random pairs at once (each ``forward``,
  ``backward`` or, with ``direction="random"``, either), all start keys given; answer every final value.

Only the single-needle question string is published with the repository's README; the other four are
written here after the paper's task descriptions, in the same style (``Keys: [...]`` lists, and
``Corresponding values:`` / ``Final value(s):`` answer prefixes).

**Length.** The dataset measures context length in characters; here the number of pairs ``k`` is fitted
by binary search (:func:`longctx.evaluate.fit_length`) in the evaluated model's tokens — the prompt with
BOS plus ``max_new_tokens`` within ``tolerance`` below the target. One pair is ~80 bytes (~55 Gemma
tokens), the granularity of the fit.

**Score.** README: ``model_answer = response[:len(answer)]; correct = model_answer == answer`` after
``literal_eval`` of the stripped response. A bare uuid is not a Python literal, so instead of
``literal_eval`` the stripped prediction loses its leading quotes/brackets; then the prefix must equal
the gold value (exact match). Multi-value tasks score every gold value the same way — a value counts
when it occurs as a whole uuid in the prediction — and report the fraction found (``aggregate="all"``:
1.0 only when every value is found); both are sub-metrics (``fraction``, ``all``).

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402:

* single needle — low diffusion (the key is given verbatim), low scope (one pair);
* multiple needles — low diffusion (each key given verbatim), high scope (every one of several pairs
  is needed, and the answer grows with them);
* conditional needles — high diffusion (no string to search for: every key must be inspected for the
  character), high scope (all matching pairs);
* single thread — high diffusion (each hop's key is only known after the previous hop, and the hops
  are scattered over the context), low scope (a handful of pairs);
* multiple threads — high diffusion, high scope (several threads followed at once, all answers needed).
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, fit_length, render_prompt
from longctx.haystack import UuidPairs
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range, one_of

SINGLE_NEEDLE_QUESTION = 'Extract the value corresponding to the specified key in the JSON object. Key: "{key}"'
MULTI_NEEDLE_QUESTION = "Extract the values corresponding to the specified keys in the JSON object. Keys: {keys}"
CONDITIONAL_QUESTION = (
    'Extract the values corresponding to all keys that contain the character "{character}" in the JSON object.'
)
THREAD_RULE = (
    "The value of a key in the JSON object may itself be a key in the JSON object. Starting from {start}, "
    "follow {whose} thread: retrieve the value, use that value as the next key, and repeat until the value "
    "is not a key in the JSON object."
)
SINGLE_THREAD_QUESTION = THREAD_RULE.format(start="the specified key", whose="its") + ' Key: "{key}"'
MULTI_THREAD_QUESTION = THREAD_RULE.format(start="each of the specified keys", whose="its") + " Keys: {keys}"
VALUE_PREFIX = "\n Corresponding value: "
VALUES_PREFIX = "\n Corresponding values: "
FINAL_VALUE_PREFIX = "\n Final value: "
FINAL_VALUES_PREFIX = "\n Final values: "

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LEADING_QUOTES = "\"'`[({ "


def format_haystack(records: Sequence[tuple[str, str]]) -> str:
    """The JSON object on one line, as the dataset's ``haystack`` field."""
    return "{" + ", ".join(f'"{k}": "{v}"' for k, v in records) + "}"


def format_keys(keys: Sequence[str]) -> str:
    """A list of keys as a JSON array: ``["k1", "k2"]``."""
    return "[" + ", ".join(f'"{k}"' for k in keys) + "]"


_Records = UuidPairs  # the shared seeded uuid-pair stream of longctx.haystack


# -- scoring -------------------------------------------------------------------------------------------


def prefix_match(prediction: str, value: str) -> float:
    """The README's check: the stripped prediction (leading quotes/brackets dropped) starts with ``value``."""
    text = prediction.strip().lstrip(_LEADING_QUOTES)
    return 1.0 if text[: len(value)] == value else 0.0


def values_found(prediction: str, values: Sequence[str]) -> list[bool]:
    """For each gold value, whether it occurs in ``prediction`` as a whole uuid (exact, case-sensitive)."""
    found = set(UUID_RE.findall(prediction))
    return [v in found for v in values]


# -- configs ---------------------------------------------------------------------------------------------


def _budget(default: int) -> Any:
    return attrs.field(
        default=default,
        validator=at_least(1),
        metadata={"help": f"tokens to generate (README: 100 for one value; {default} here)"},
    )


def _tolerance() -> Any:
    return attrs.field(
        default=0.02,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )


def _aggregate() -> Any:
    return attrs.field(
        default="fraction",
        validator=one_of("fraction", "all"),
        metadata={"help": "score: fraction of the values found, or 1 only when all are found"},
    )


def _direction(*choices: str) -> Any:
    return attrs.field(
        default="forward",
        validator=one_of(*choices),
        metadata={"help": f"where each hop goes: {', '.join(choices)} (forward: towards the end of the context)"},
    )


def _valid_character(_inst: Any, attribute: attrs.Attribute, value: str) -> None:
    from longctx.errors import ParameterError

    if len(value) != 1 or value in '0123456789abcdefABCDEF-"\\' or value.isspace():
        raise ParameterError(
            f"{attribute.name} must be one character that is not a hex digit, '-', a quote, a backslash or "
            f"whitespace (it must single out the needle keys), got {value!r}"
        )


@attrs.frozen
class SingleNeedleConfig:
    """Generation budget and length tolerance."""

    max_new_tokens: int = _budget(100)
    tolerance: float = _tolerance()


@attrs.frozen
class MultiNeedleConfig:
    """Number and placement of the needles, scoring, budget, tolerance."""

    num_needles: int = attrs.field(default=3, validator=in_range(2, 1000), metadata={"help": "keys asked"})
    placement: str = attrs.field(
        default="random",
        validator=one_of("random", "clustered"),
        metadata={"help": "random pairs, or consecutive pairs from depth on"},
    )
    aggregate: str = _aggregate()
    max_new_tokens: int = _budget(200)
    tolerance: float = _tolerance()


@attrs.frozen
class ConditionalNeedleConfig:
    """Number and placement of the needles, the marking character, scoring, budget, tolerance."""

    num_needles: int = attrs.field(
        default=3, validator=in_range(1, 1000), metadata={"help": "keys that contain the character"}
    )
    character: str = attrs.field(
        default="*", validator=_valid_character, metadata={"help": "the character put into each needle key"}
    )
    placement: str = attrs.field(
        default="random",
        validator=one_of("random", "clustered"),
        metadata={"help": "random pairs, or consecutive pairs from depth on"},
    )
    aggregate: str = _aggregate()
    max_new_tokens: int = _budget(200)
    tolerance: float = _tolerance()


@attrs.frozen
class SingleThreadConfig:
    """Thread length and direction, budget, tolerance."""

    thread_length: int = attrs.field(
        default=3, validator=in_range(1, 1000), metadata={"help": "pairs in the thread (hops to follow)"}
    )
    direction: str = _direction("forward", "backward")
    max_new_tokens: int = _budget(100)
    tolerance: float = _tolerance()


@attrs.frozen
class MultiThreadConfig:
    """Number, length and direction of the threads, scoring, budget, tolerance."""

    num_threads: int = attrs.field(default=2, validator=in_range(2, 1000), metadata={"help": "threads at once"})
    thread_length: int = attrs.field(
        default=3, validator=in_range(1, 1000), metadata={"help": "pairs in each thread (hops to follow)"}
    )
    direction: str = _direction("forward", "backward", "random")
    aggregate: str = _aggregate()
    max_new_tokens: int = _budget(200)
    tolerance: float = _tolerance()


# -- the tasks -------------------------------------------------------------------------------------------


@attrs.frozen
class Layout:
    """One haystack with its needles: the (modified) records, the question body, the answer prefix, the
    gold values and what to record in the case's meta."""

    records: list[tuple[str, str]]
    question: str
    answer_prefix: str
    values: list[str]
    meta: dict[str, Any]


class _ThreadingTask:
    """What the five tasks share: the record stream, length fitting, the case and the scorer."""

    name: ClassVar[str]
    tags: ClassVar[MappingProxyType]
    multi: ClassVar[bool] = False

    def __init__(self, config: Any = None, ctx: Any = None) -> None:
        self.config = config if config is not None else self.config_class()

    config_class: ClassVar[type]

    def needed_pairs(self) -> int:
        """The fewest pairs a haystack can have."""
        return 1

    def layout(self, records: list[tuple[str, str]], depth: float, rng: random.Random) -> Layout:
        raise NotImplementedError

    def _layout(self, stream: _Records, k: int, depth: float, seed: int) -> Layout:
        return self.layout(stream.take(k), depth, random.Random(derive_seed(self.name, seed, "layout", k)))

    def _prompt(self, tokenizer: Any, lay: Layout) -> str:
        return render_prompt(tokenizer, format_haystack(lay.records) + "\n" + lay.question, lay.answer_prefix)

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens (prompt with BOS + ``max_new_tokens``)."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        stream = _Records(random.Random(derive_seed(self.name, seed)))
        budget = self.config.max_new_tokens
        lo = self.needed_pairs()
        try:
            k, prompt, tokens = fit_length(
                lambda n: self._prompt(tokenizer, self._layout(stream, n, depth, seed)),
                tokenizer,
                length,
                lo=lo,
                reserve=budget,
                tolerance=self.config.tolerance,
            )
        except InputError:
            bare = count_prompt_tokens(tokenizer, self._prompt(tokenizer, self._layout(stream, lo, depth, seed)))
            raise InputError(
                f"{self.name}: a length of {length} tokens is too short; the prompt with {lo} key-value pairs "
                f"plus {budget} generated tokens already needs {bare + budget}"
            ) from None
        lay = self._layout(stream, k, depth, seed)
        answer = lay.values[0] if not self.multi else format_keys(lay.values)
        yield Case(
            task=self.name,
            prompt=prompt,
            answer=answer,
            target_tokens=length,
            actual_tokens=tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=budget,
            query=lay.question + lay.answer_prefix,
            meta={"num_pairs": k, "values": lay.values, **lay.meta},
            references=tuple(lay.values),
        )

    def score(self, prediction: str, case: Case) -> float:
        """Exact match of the value(s): see the module docstring."""
        if not self.multi:
            return prefix_match(prediction, case.answer)
        return self.metrics(prediction, case)[self.config.aggregate]

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """``fraction`` of the gold values found and ``all`` (1.0 when every one is found)."""
        if not self.multi:
            return {"fraction": prefix_match(prediction, case.answer)}
        found = values_found(prediction, case.golds)
        return {"fraction": sum(found) / len(found), "all": float(all(found))}


def _depth_of(i: int, k: int) -> float:
    return i / (k - 1) if k > 1 else 0.0


def _spots(k: int, n: int, depth: float, placement: str, rng: random.Random) -> list[int]:
    """``n`` distinct pair indices among ``k``: random (sorted), or consecutive from ``depth`` on."""
    if placement == "clustered":
        first = round(depth * (k - n))
        return list(range(first, first + n))
    return sorted(rng.sample(range(k), n))


def _thread_spots(k: int, length: int, depth: float, direction: str, rng: random.Random) -> list[int]:
    """The pair indices of one thread of ``length`` hops starting at ``depth``, in thread order."""
    if direction == "forward":
        first = round(depth * (k - length))
        return [first, *sorted(rng.sample(range(first + 1, k), length - 1))]
    first = (length - 1) + round(depth * (k - length))
    return [first, *sorted(rng.sample(range(first), length - 1), reverse=True)]


def thread_records(records: list[tuple[str, str]], spots: Sequence[int]) -> tuple[str, str]:
    """Chain the pairs at ``spots`` (in thread order) in place: each value becomes the next pair's key.
    Returns the start key and the final value."""
    for a, b in itertools.pairwise(spots):
        records[b] = (records[a][1], records[b][1])
    return records[spots[0]][0], records[spots[-1]][1]


class SingleNeedle(_ThreadingTask):
    """``threading-single-needle``: one key at ``depth``."""

    name = "threading-single-needle"
    tags = MappingProxyType({"diffusion": "low", "scope": "low"})
    config_class = SingleNeedleConfig

    def layout(self, records: list[tuple[str, str]], depth: float, rng: random.Random) -> Layout:
        i = round(depth * (len(records) - 1))
        key, value = records[i]
        meta = {"key": key, "needle_index": i, "needle_depth": _depth_of(i, len(records))}
        return Layout(records, SINGLE_NEEDLE_QUESTION.format(key=key), VALUE_PREFIX, [value], meta)


class MultiNeedle(_ThreadingTask):
    """``threading-multi-needle``: ``num_needles`` keys at random or clustered pairs."""

    name = "threading-multi-needle"
    tags = MappingProxyType({"diffusion": "low", "scope": "high"})
    config_class = MultiNeedleConfig
    multi = True

    def __init__(self, config: Any = None, ctx: Any = None) -> None:
        super().__init__(config, ctx)
        self.depth_sensitive = self.config.placement == "clustered"

    def needed_pairs(self) -> int:
        return self.config.num_needles

    def layout(self, records: list[tuple[str, str]], depth: float, rng: random.Random) -> Layout:
        k = len(records)
        spots = _spots(k, self.config.num_needles, depth, self.config.placement, rng)
        asked = spots[:]
        rng.shuffle(asked)  # the question lists the keys in a random order, not in context order
        keys = [records[i][0] for i in asked]
        meta = {
            "keys": keys,
            "needle_indices": asked,
            "needle_depths": [_depth_of(i, k) for i in asked],
            "placement": self.config.placement,
        }
        question = MULTI_NEEDLE_QUESTION.format(keys=format_keys(keys))
        return Layout(records, question, VALUES_PREFIX, [records[i][1] for i in asked], meta)


class ConditionalNeedle(_ThreadingTask):
    """``threading-conditional-needle``: the values of the keys marked with ``character``."""

    name = "threading-conditional-needle"
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})
    config_class = ConditionalNeedleConfig
    multi = True

    def __init__(self, config: Any = None, ctx: Any = None) -> None:
        super().__init__(config, ctx)
        self.depth_sensitive = self.config.placement == "clustered"

    def needed_pairs(self) -> int:
        return self.config.num_needles

    def layout(self, records: list[tuple[str, str]], depth: float, rng: random.Random) -> Layout:
        k = len(records)
        c = self.config.character
        spots = _spots(k, self.config.num_needles, depth, self.config.placement, rng)
        for i in spots:
            key, value = records[i]
            at = rng.choice([j for j, ch in enumerate(key) if ch != "-"])
            records[i] = (key[:at] + c + key[at + 1 :], value)
        meta = {
            "character": c,
            "keys": [records[i][0] for i in spots],
            "needle_indices": spots,
            "needle_depths": [_depth_of(i, k) for i in spots],
            "placement": self.config.placement,
        }
        question = CONDITIONAL_QUESTION.format(character=c)
        return Layout(records, question, VALUES_PREFIX, [records[i][1] for i in spots], meta)


class SingleThread(_ThreadingTask):
    """``threading-single-thread``: follow one thread from the key at ``depth``."""

    name = "threading-single-thread"
    tags = MappingProxyType({"diffusion": "high", "scope": "low"})
    config_class = SingleThreadConfig

    def needed_pairs(self) -> int:
        return self.config.thread_length

    def layout(self, records: list[tuple[str, str]], depth: float, rng: random.Random) -> Layout:
        k = len(records)
        spots = _thread_spots(k, self.config.thread_length, depth, self.config.direction, rng)
        start, final = thread_records(records, spots)
        meta = {
            "key": start,
            "thread_indices": spots,
            "thread_depths": [_depth_of(i, k) for i in spots],
            "direction": self.config.direction,
            "thread_length": self.config.thread_length,
        }
        return Layout(records, SINGLE_THREAD_QUESTION.format(key=start), FINAL_VALUE_PREFIX, [final], meta)


class MultiThread(_ThreadingTask):
    """``threading-multi-thread``: follow ``num_threads`` threads at once."""

    name = "threading-multi-thread"
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})
    config_class = MultiThreadConfig
    multi = True
    #: threads start at random pairs: depth means nothing
    depth_sensitive = False

    def needed_pairs(self) -> int:
        return self.config.num_threads * self.config.thread_length

    def layout(self, records: list[tuple[str, str]], depth: float, rng: random.Random) -> Layout:
        k = len(records)
        n, length = self.config.num_threads, self.config.thread_length
        spots = rng.sample(range(k), n * length)
        threads, starts, finals, directions = [], [], [], []
        for t in range(n):
            direction = self.config.direction
            if direction == "random":
                direction = rng.choice(["forward", "backward"])
            group = sorted(spots[t * length : (t + 1) * length], reverse=direction == "backward")
            start, final = thread_records(records, group)
            threads.append(group)
            starts.append(start)
            finals.append(final)
            directions.append(direction)
        meta = {
            "keys": starts,
            "thread_indices": threads,
            "thread_depths": [[_depth_of(i, k) for i in g] for g in threads],
            "directions": directions,
            "thread_length": length,
        }
        question = MULTI_THREAD_QUESTION.format(keys=format_keys(starts))
        return Layout(records, question, FINAL_VALUES_PREFIX, finals, meta)


TASKS: tuple[type[_ThreadingTask], ...] = (SingleNeedle, MultiNeedle, ConditionalNeedle, SingleThread, MultiThread)

_SUMMARIES = {
    SingleNeedle: "Needle threading: the value of one uuid key at a depth of a JSON haystack of uuid pairs",
    MultiNeedle: "Needle threading: the values of several uuid keys of a JSON haystack",
    ConditionalNeedle: "Needle threading: the values of every key containing a marker character",
    SingleThread: "Needle threading: follow a thread of values that are the next keys to its final value",
    MultiThread: "Needle threading: follow several threads of uuid keys at once",
}


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance contracts — lengths of 2k and 4k bytes (one uuid pair is ~80
    bytes, so 512 bytes holds only the question and a few pairs, within one pair of the target)."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.contrib.conformance import EvaluationContract

        def contract(task: type[_ThreadingTask]) -> type:
            attrs_ = {
                "technique": task.name,
                "lengths": (2048, 4096),
                "length_tolerance": 0.05,
                "__module__": __name__,
            }
            return type(f"{task.__name__}Contract", (EvaluationContract,), attrs_)

        return tuple(contract(t) for t in TASKS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    for task in TASKS:
        register(
            task.name,
            config=task.config_class,
            build=task,
            summary=_SUMMARIES[task],
            paper="Roberts, Han & Albanie 2024 (Needle Threading), arXiv:2411.05000",
        )
