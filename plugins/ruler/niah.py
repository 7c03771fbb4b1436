"""RULER's needle-in-a-haystack family: eight configurations of one generator (``scripts/data/synthetic/
niah.py`` with the arguments of ``scripts/synthetic.yaml``), Hsieh et al. 2024, arXiv:2404.06654.

A needle is the sentence ``"One of the special magic {type_needle_v} for {key} is: {value}."``. Keys
and values are *words* (an adjective and a noun of the ``wonderwords`` lists joined by ``-``, RULER's
6.2M ``adj-noun`` pairs), *numbers* (7 digits) or *uuids* (version-4, from the seeded RNG).
``num_needle_k`` keys get ``num_needle_v`` values each (one needle per value); ``num_needle_q`` of the
keys are asked for (``num_needle_k`` is raised to at least ``num_needle_q``) and every value of an asked
key is a reference. The haystack is ``noise`` (the repeated paragraph, one per line), ``essay`` (prose,
needles between sentences) or ``needle`` (one distractor needle per line, with fresh keys and values).

Prompt (``constants.py``), with the answer prefix the model continues::

    Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it.
    I will quiz you about the {type_needle_v} afterwards.
    {context}
    What are all the special magic {type_needle_v} for {query} mentioned in the provided text? The
    special magic {type_needle_v} for {query} mentioned in the provided text are

``{query}`` lists the asked keys as ``"a, b, and c"``. With a single answer (``num_needle_q ·
num_needle_v == 1``) RULER rewrites the template (and prefix): Some→A, "are all"→is, are→is, and the
needle type loses its plural ``s``. Score: ``string_match_all`` (fraction of references in the answer).

**Depth.** RULER draws each needle's depth from 40 evenly spaced percents (:data:`DEPTHS`; essay) or a
random line (noise/needle). Here, with ``placement="depth"`` (default), the *first answer needle* goes
to the boundary (sentence or line) nearest the asked ``depth`` — a fraction of the haystack's characters
— and the other needles are drawn as RULER draws them (distinct :data:`DEPTHS` other than the asked
one for the essay, uniform positions for noise/needle). ``placement="ruler"`` draws every needle as
RULER does and ignores ``depth`` (the task is then depth-insensitive).

Departures, all of negligible probability in RULER: keys of distractor needles never repeat a real key
and values never repeat a reference (so the gold needle is unambiguous), and multi-word wonderwords
entries are left out of the word pairs. Keys and values depend on the seed only (the same at every
length and depth: paired comparisons).
"""

from __future__ import annotations

import random
import typing
from collections.abc import Iterator
from typing import Any

import attrs

from longctx.errors import ParameterError
from longctx.evaluate import Case, derive_seed, render_prompt
from longctx.haystack import DEFAULT_PROSE, rng_number, rng_uuid, word_list
from longctx.params import at_least, in_range, one_of
from longctx.plugins.ruler.common import (
    DEPTHS,
    Filler,
    RulerTask,
    check_depth,
    count_plain_tokens,
    essay_sentences,
    fit_case,
    insert_at,
    nearest_boundary,
    noise_lines,
    query_tail,
)

__all__ = [
    "ANSWER_PREFIX",
    "NEEDLE",
    "TEMPLATE",
    "VARIANTS",
    "RulerNiah",
    "RulerNiahConfig",
    "join_query",
    "singular_template",
]

NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
TEMPLATE = (
    "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
    "What are all the special magic {type_needle_v} for {query} mentioned in the provided text?"
)
ANSWER_PREFIX = " The special magic {type_needle_v} for {query} mentioned in the provided text are"

NEEDLE_TYPES = ("words", "numbers", "uuids")
HAYSTACKS = ("noise", "essay", "needle")


def singular_template(text: str) -> str:
    """RULER's rewrite of the template and answer prefix when a single value is asked for."""
    return text.replace("Some", "A").replace("are all", "is").replace("are", "is").replace("answers", "answer")


def join_query(keys: list[str]) -> str:
    """RULER's query: ``"a"``, or ``"a, b, and c"`` (``", ".join(all but last) + ", and " + last``)."""
    return keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + ", and " + keys[-1]


@attrs.frozen
class RulerNiahConfig:
    """One RULER NIAH configuration (``synthetic.yaml``); each variant changes the defaults."""

    type_haystack: str = attrs.field(
        default="essay",
        validator=one_of(*HAYSTACKS),
        metadata={"help": "haystack: noise (repeated paragraph), essay (prose), needle (distractor needles)"},
    )
    type_needle_k: str = attrs.field(
        default="words", validator=one_of(*NEEDLE_TYPES), metadata={"help": "key type: words, numbers or uuids"}
    )
    type_needle_v: str = attrs.field(
        default="numbers", validator=one_of(*NEEDLE_TYPES), metadata={"help": "value type: words, numbers or uuids"}
    )
    num_needle_k: int = attrs.field(default=1, validator=in_range(1, 40), metadata={"help": "keys hidden"})
    num_needle_v: int = attrs.field(default=1, validator=in_range(1, 40), metadata={"help": "values per key"})
    num_needle_q: int = attrs.field(default=1, validator=in_range(1, 40), metadata={"help": "keys asked for"})
    placement: str = attrs.field(
        default="depth",
        validator=one_of("depth", "ruler"),
        metadata={"help": "depth: first answer needle at the asked depth; ruler: every needle drawn as RULER"},
    )
    essay: str = attrs.field(
        default=DEFAULT_PROSE,
        metadata={"help": "essay haystack text: pride_and_prejudice (bundled) or a path to a UTF-8 file"},
    )
    max_new_tokens: int = attrs.field(default=128, validator=at_least(1), metadata={"help": "tokens to generate"})
    tolerance: float = attrs.field(
        default=0.02,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )

    def __attrs_post_init__(self) -> None:
        k = max(self.num_needle_k, self.num_needle_q)
        if self.type_haystack == "essay" and k * self.num_needle_v > len(DEPTHS):
            raise ParameterError(
                f"an essay haystack holds at most {len(DEPTHS)} needles (RULER's depths); "
                f"{k} keys x {self.num_needle_v} values is too many"
            )


#: RULER's ``synthetic.yaml`` NIAH entries, under our task names.
VARIANTS: dict[str, dict[str, Any]] = {
    "ruler-niah-single-1": {"type_haystack": "noise", "type_needle_k": "words", "type_needle_v": "numbers"},
    "ruler-niah-single-2": {"type_haystack": "essay", "type_needle_k": "words", "type_needle_v": "numbers"},
    "ruler-niah-single-3": {"type_haystack": "essay", "type_needle_k": "words", "type_needle_v": "uuids"},
    "ruler-niah-multikey-1": {
        "type_haystack": "essay",
        "type_needle_k": "words",
        "type_needle_v": "numbers",
        "num_needle_k": 4,
    },
    "ruler-niah-multikey-2": {"type_haystack": "needle", "type_needle_k": "words", "type_needle_v": "numbers"},
    "ruler-niah-multikey-3": {"type_haystack": "needle", "type_needle_k": "uuids", "type_needle_v": "uuids"},
    "ruler-niah-multivalue": {
        "type_haystack": "essay",
        "type_needle_k": "words",
        "type_needle_v": "numbers",
        "num_needle_v": 4,
    },
    "ruler-niah-multiquery": {
        "type_haystack": "essay",
        "type_needle_k": "words",
        "type_needle_v": "numbers",
        "num_needle_q": 4,
    },
}


def _variant_config(name: str, defaults: dict[str, Any]) -> type:
    """``RulerNiahConfig`` with the defaults of one variant (a frozen attrs class of its own)."""
    hints = typing.get_type_hints(RulerNiahConfig)
    fields = {
        f.name: attrs.field(
            default=defaults.get(f.name, f.default),
            validator=f.validator,
            metadata=dict(f.metadata),
            type=hints[f.name],
        )
        for f in attrs.fields(RulerNiahConfig)
    }
    title = "".join(p.capitalize() for p in name.split("-"))
    cls = attrs.make_class(f"{title}Config", fields, bases=(RulerNiahConfig,), frozen=True, slots=True)
    cls.__module__ = __name__
    cls.__doc__ = f"``{name}``: RULER's ``{name[6:].replace('-', '_')}`` defaults ({RulerNiahConfig.__doc__})"
    return cls


def _pairs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    return word_list(("adjective",)), word_list(("noun",))


def draw(rng: random.Random, kind: str) -> str:
    """One key or value of RULER's type ``kind`` (words: ``adj-noun``; numbers: 7 digits; uuids: v4)."""
    if kind == "numbers":
        return rng_number(rng, 7)
    if kind == "uuids":
        return rng_uuid(rng)
    adjs, nouns = _pairs()
    return f"{rng.choice(adjs)}-{rng.choice(nouns)}"


class _DistractorLines:
    """RULER's ``needle`` haystack: distractor needles (fresh keys and values) drawn lazily, one per line."""

    def __init__(self, rng: random.Random, cfg: Any, avoid_keys: set[str], avoid_values: set[str]) -> None:
        self.rng, self.cfg = rng, cfg
        self.avoid_keys, self.avoid_values = avoid_keys, avoid_values
        self.lines: list[str] = []
        self.ends: list[int] = []  # offset after line i in "\n".join(lines)

    def _fresh(self, kind: str, avoid: set[str]) -> str:
        while True:
            x = draw(self.rng, kind)
            if x not in avoid:
                return x

    def prefix(self, n: int) -> tuple[str, list[int]]:
        while len(self.lines) < n:
            key = self._fresh(self.cfg.type_needle_k, self.avoid_keys)
            value = self._fresh(self.cfg.type_needle_v, self.avoid_values)
            line = NEEDLE.format(type_needle_v=self.cfg.type_needle_v, key=key, value=value)
            self.ends.append((self.ends[-1] + 1 if self.ends else 0) + len(line))
            self.lines.append(line)
        return "\n".join(self.lines[:n]), [0, *self.ends[:n]] if n else [0]


class RulerNiah(RulerTask):
    """A RULER NIAH task (an :class:`longctx.hooks.evaluation.EvalTask`); see the module docstring.

    Goldman et al. 2024 (arXiv:2407.00402): low diffusion (each needle is one short sentence, easy to
    tell from the haystack) and low scope (one to four needles are all the task needs).
    """

    name = "ruler-niah"
    config_class: type = RulerNiahConfig

    def __init__(self, config: Any = None, ctx: Any = None) -> None:
        self.config = config if config is not None else self.config_class()
        self.depth_sensitive = self.config.placement == "depth"

    # -- the pieces of a case --------------------------------------------------------------------------

    def template(self) -> tuple[str, str, str]:
        """``(template, answer_prefix, type_needle_v as the template names it)`` after RULER's rewrite
        for a single answer."""
        cfg = self.config
        if cfg.num_needle_q * cfg.num_needle_v == 1:
            return singular_template(TEMPLATE), singular_template(ANSWER_PREFIX), cfg.type_needle_v[:-1]
        return TEMPLATE, ANSWER_PREFIX, cfg.type_needle_v

    def _draw_needles(self, rng: random.Random) -> dict[str, Any]:
        cfg = self.config
        num_k = max(cfg.num_needle_k, cfg.num_needle_q)
        keys: list[str] = []
        values: list[list[str]] = []
        seen_values: set[str] = set()
        while len(keys) < num_k:
            k = draw(rng, cfg.type_needle_k)
            if k not in keys:
                keys.append(k)
        for _ in keys:
            vs: list[str] = []
            while len(vs) < cfg.num_needle_v:
                v = draw(rng, cfg.type_needle_v)
                if v not in seen_values:
                    seen_values.add(v)
                    vs.append(v)
            values.append(vs)
        needles = [
            (ki, v, NEEDLE.format(type_needle_v=cfg.type_needle_v, key=keys[ki], value=v))
            for ki in range(num_k)
            for v in values[ki]
        ]
        asked = rng.sample(range(num_k), cfg.num_needle_q)
        return {"keys": keys, "values": values, "asked": asked, "needles": needles}

    def _depths(self, rng: random.Random, n_needles: int, real: int, depth: float) -> list[float]:
        """Each needle's depth, a fraction of the haystack's characters: ``depth`` for the needle
        ``real`` (unless ``placement="ruler"``), RULER's draws for the others (distinct :data:`DEPTHS`
        for the essay, uniform for the lines of the noise and needle haystacks)."""
        essay = self.config.type_haystack == "essay"
        if self.config.placement == "ruler":
            if essay:
                return [d / 100 for d in rng.sample(DEPTHS, n_needles)]
            return [rng.random() for _ in range(n_needles)]
        if essay:
            nearest = min(DEPTHS, key=lambda d: (abs(d / 100 - depth), d))
            others = iter(rng.sample([d for d in DEPTHS if d != nearest], n_needles - 1))
            return [depth if i == real else next(others) / 100 for i in range(n_needles)]
        return [depth if i == real else rng.random() for i in range(n_needles)]

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens (prompt with BOS + ``max_new_tokens``)."""
        check_depth(self.name, depth)
        cfg = self.config
        rng = random.Random(derive_seed(self.name, seed))
        drawn = self._draw_needles(rng)
        keys, values, asked, needles = drawn["keys"], drawn["values"], drawn["asked"], drawn["needles"]
        rng.shuffle(needles)  # RULER shuffles the needles before giving them their sorted depths
        answers = [v for ki in asked for v in values[ki]]
        real = next(i for i, (_, v, _) in enumerate(needles) if v == answers[0])
        depths = self._depths(rng, len(needles), real, depth)
        template, prefix_t, tv = self.template()
        query = join_query([keys[ki] for ki in asked])
        question = template.rpartition("\n")[2].format(type_needle_v=tv, query=query)
        prefix = prefix_t.format(type_needle_v=tv, query=query)

        filler: Filler | _DistractorLines
        if cfg.type_haystack == "needle":
            stream = random.Random(derive_seed(self.name, seed, "distractors"))
            filler, sep = _DistractorLines(stream, cfg, set(keys), {v for vs in values for v in vs}), "\n"
        elif cfg.type_haystack == "noise":
            filler, sep = noise_lines(), "\n"
        else:
            filler, sep = essay_sentences(cfg.essay), " "

        def make(n: int) -> tuple[str, dict[str, Any]]:
            hay, bounds = filler.prefix(n)
            places = []
            for (_, _, text), d in zip(needles, depths):
                places.append((nearest_boundary(bounds, d * len(hay)), text))
            context, _ = insert_at(hay, places, sep)
            body = template.format(type_needle_v=tv, context=context, query=query)
            prompt = render_prompt(tokenizer, body, prefix)
            actual = [at / len(hay) if hay else d for (at, _), d in zip(places, depths)]
            return prompt, {"units": n, "depths": actual}

        fit, info = fit_case(self.name, make, tokenizer, length, reserve=cfg.max_new_tokens, tolerance=cfg.tolerance)
        prompt = fit.text
        first = prompt.find(answers[0])
        meta = {
            "type_haystack": cfg.type_haystack,
            "type_needle_k": cfg.type_needle_k,
            "type_needle_v": cfg.type_needle_v,
            "num_needle_k": len(keys),
            "num_needle_v": cfg.num_needle_v,
            "num_needle_q": cfg.num_needle_q,
            "keys": keys,
            "queried_keys": [keys[ki] for ki in asked],
            "haystack_units": info["units"],
            "needles": [
                {"text": text, "start": prompt.find(text), "depth": d, "answer": ki in asked}
                for (ki, _, text), d in zip(needles, info["depths"])
            ],
            "depth_placed": info["depths"][real],
            "placement": cfg.placement,
            "token_position_answer": count_plain_tokens(tokenizer, prompt[:first]),
        }
        yield Case(
            task=self.name,
            prompt=prompt,
            answer=", ".join(answers),
            references=tuple(answers),
            target_tokens=length,
            actual_tokens=fit.tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=cfg.max_new_tokens,
            query=query_tail(prompt, question),
            meta=meta,
        )


def _variant_task(name: str, config: type) -> type[RulerNiah]:
    title = "".join(p.capitalize() for p in name.split("-"))
    cls = type(title, (RulerNiah,), {"name": name, "config_class": config, "__module__": __name__})
    cls.__doc__ = f"``{name}``: {RulerNiah.__doc__}"
    return cls


#: name → (config class, task class) of every variant.
TASKS: dict[str, tuple[type, type[RulerNiah]]] = {}
for _name, _defaults in VARIANTS.items():
    _cfg = _variant_config(_name, _defaults)
    _task = _variant_task(_name, _cfg)
    globals()[_cfg.__name__] = _cfg
    globals()[_task.__name__] = _task
    TASKS[_name] = (_cfg, _task)
del _name, _defaults, _cfg, _task
