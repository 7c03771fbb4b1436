"""Long-output generation: ``longbench-write`` (length following) and ``golden-thread`` (events placed in a
long generated text). Both tasks test the *output* side of a long context: the model's own text is what
grows long, and the evidence it must keep track of is its instruction and what it has written so far.

``longbench-write`` — Bai et al. 2024, "LongWriter: Unleashing 10,000+ Word Generation from Long Context
LLMs", arXiv:2408.07055 (LongBench-Write, ``evaluation/eval_length.py``); the length-constrained setting
of HelloBench (Que et al. 2024, arXiv:2409.16191, "Ensure the essay is no shorter than N words").
An instruction asks for a text of a required number of words ``x``; the generated text has ``y`` words,
counted as ``pred.py`` does (each CJK character, plus each run of ASCII letters between word
boundaries: ``[\\u4e00-\\u9fff]`` and ``\\b[a-zA-Z]+\\b``). The length score is LongWriter's ``S_l``:

``S_l = 100 · max(0, 1 − (y/x − 1)/3)`` if ``y > x``,  ``S_l = 100 · max(0, 1 − (x/y − 1)/2)`` otherwise,

so too long is forgiven more than too short (0 at ``y = 4x`` and at ``y = x/3``). The task's score is
``S_l / 100`` (``y = 0`` scores 0); HelloBench's "no shorter than" criterion is the ``reached`` metric.

``golden-thread`` — Wu, Hee, Hu & Lee 2024, "Spinning the Golden Thread: Benchmarking Long-Form Generation
in Language Models" (published as "LongGenBench: Benchmarking Long-Form Generation in Long Context
LLMs"), arXiv:2409.02076 (``mozhu621/LongGenBench``). The prompt sets a scenario of ``N`` numbered blocks
(a weekly diary, a restaurant's weekly menus, the floors of a skyscraper, the blocks of a new town), each
entry introduced by ``#*# <Unit> k:``, and lists events that must appear in given blocks — the
reference's three instruction kinds: *single* (one block), *range* (every block from ``a`` to ``b``) and
*periodic* (every ``p`` blocks from ``s`` on). The check set is every (block, event) pair. The output —
continued after the first header, which ends the prompt as in the reference — is split at ``#*#``, each
chunk's block number read from its first ``<Unit> k``, and a check passes when the event's phrase
occurs in its block (case and punctuation ignored). The reference asks an LLM judge "Does this
description include …?"; string matching of a phrase the prompt quotes verbatim replaces the judge
(deterministic, offline). Score: the fraction of checks that pass, a missing block failing its checks
(the reference's ``eval.py`` skips checks whose block is missing; that rate is the ``found`` metric).

**Lengths.** ``length`` is the case's whole budget — prompt tokens with BOS plus ``max_new_tokens`` — as in
every task, so ``max_new_tokens = length − prompt tokens`` exactly. The required output is derived from
that budget with the tokenizer's own tokens per English word ``τ`` (measured on the bundled novel) and a
headroom ``h`` that leaves the model room to overshoot: ``x = ⌊max_new_tokens / (h·τ)⌋`` words for
``longbench-write`` (``h = 2``: cut off at twice the requested words, where ``S_l = 2/3``), and
``N = ⌊max_new_tokens / (h·τ·(w + 4))⌋`` blocks of ``w`` words for ``golden-thread``. With Gemma 3's
tokenizer (``τ ≈ 1.3``) a 16k budget asks ``longbench-write`` for about 6,200 words and ``golden-thread``
for about 50 blocks of 150 words — the reference's 16K setting (52 weekly entries of at least 200 words)
is of that order. The gold answers are synthetic texts that satisfy the checks exactly.

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402:
``longbench-write`` — low diffusion (the one requirement is stated plainly in a short prompt) and high
scope (the length is a property of the whole output, which the model must track to stop in time);
``golden-thread`` — high diffusion (the instruction for block ``k`` must be found among many, far back
in a growing context, and periodic ones computed) and high scope (every block carries checks).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, render_prompt
from longctx.haystack import NOISE, prose_text
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range, one_of

# -- word counting and LongWriter's length score --------------------------------------------------------

_CJK = re.compile(r"[\u4e00-\u9fff]")
_ASCII_WORD = re.compile(r"\b[a-zA-Z]+\b")


def count_words(text: str) -> int:
    """Words as LongWriter's ``pred.py`` counts them: CJK characters plus ASCII-letter words."""
    return len(_CJK.findall(text)) + len(_ASCII_WORD.findall(text))


def length_score(required: float, produced: float) -> float:
    """LongWriter's ``S_l`` in ``[0, 100]`` for ``produced`` words against ``required`` (0 when nothing
    was produced)."""
    x, y = float(required), float(produced)
    if x <= 0:
        raise ValueError(f"the required length must be > 0, got {required}")
    if y <= 0:
        return 0.0
    if y > x:
        return 100.0 * max(0.0, 1.0 - (y / x - 1.0) / 3.0)
    return 100.0 * max(0.0, 1.0 - (x / y - 1.0) / 2.0)


_TPW: dict[str, float] = {}


def tokens_per_word(tokenizer: Any) -> float:
    """``τ``: the tokenizer's tokens per word (:func:`count_words`) on the opening of the bundled novel
    (measured once per tokenizer fingerprint)."""
    from longctx.evaluate import tokenizer_fingerprint

    key = tokenizer_fingerprint(tokenizer)
    if key not in _TPW:
        sample = prose_text()[:20000]
        _TPW[key] = count_prompt_tokens(tokenizer, sample) / max(1, count_words(sample))
    return _TPW[key]


def filler_words(n: int) -> str:
    """``n`` words of the noise paragraph (every word counts once for :func:`count_words`)."""
    words = NOISE.split()
    return " ".join(words[i % len(words)] for i in range(n))


def _budget(
    tokenizer: Any,
    length: int,
    prompt_for: Any,
    units_for: Any,
    *,
    task: str,
    minimum: int,
    unit: str,
) -> tuple[str, int, int]:
    """Solve ``units = units_for(length − tokens(prompt_for(units)))`` (the prompt names the unit count,
    so its length depends on it): ``(prompt, units, prompt tokens)``."""
    units = units_for(length)
    seen: set[int] = set()
    for _ in range(8):
        if units < minimum:
            break
        prompt = prompt_for(units)
        p = count_prompt_tokens(tokenizer, prompt)
        fit = units_for(length - p)
        if fit >= units:  # this prompt leaves room for its own units
            return prompt, units, p
        if fit in seen:
            units = min(fit, units) - 1
        else:
            seen.add(fit)
            units = fit
    bare = count_prompt_tokens(tokenizer, prompt_for(minimum))
    raise InputError(
        f"{task}: a length of {length} tokens is too short; the prompt ({bare} tokens) and the output it asks "
        f"for ({minimum} {unit} at least) need more — ask for a longer length"
    )


# -- longbench-write ------------------------------------------------------------------------------------

#: Writing tasks (ours, in the spirit of LongBench-Write's user requests; not its data).
WRITING_TASKS = (
    "a travel guide to a small coastal town in winter",
    "a short story about a lighthouse keeper who finds a message in a bottle",
    "an essay on why public libraries still matter",
    "a report on the history of the bicycle",
    "a letter from a grandmother to her grandchild who is leaving for university",
    "a blog post about learning to bake bread at home",
    "a speech for the opening of a community garden",
    "a popular-science article explaining how tides work",
    "a product description and user guide for a solar-powered lantern",
    "a chapter of a mystery novel set on a night train",
    "a teaching plan for a week of lessons on fractions",
    "a review of an imaginary jazz concert",
)
#: How the required length is phrased (LongBench-Write's requests phrase it in these ways).
LENGTH_PHRASES = (
    "Write {task}. The text should be about {words} words long.",
    "Please write {task} in approximately {words} words.",
    "Write a {words}-word piece: {task}.",
    "Write {task}, around {words} words.",
    "Write {task}. It should be no less than {words} words.",
)


@attrs.frozen
class LongBenchWriteConfig:
    """How the output budget becomes a required number of words."""

    headroom: float = attrs.field(
        default=2.0,
        validator=at_least(1.0),
        metadata={"help": "generation budget / tokens of the required words (room to overshoot)"},
    )
    tokens_per_word: float | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(in_range(0.1, 100.0)),
        metadata={"help": "tokens per word of the tokenizer (none = measure on the bundled novel)"},
    )
    min_words: int = attrs.field(
        default=20, validator=at_least(1), metadata={"help": "refuse lengths that would ask for fewer words"}
    )


class LongBenchWrite:
    """Write a text of a required number of words; scored by LongWriter's length score ``S_l``."""

    name = "longbench-write"
    tags = MappingProxyType({"diffusion": "low", "scope": "high"})
    #: nothing is hidden in the prompt: built once per length
    depth_sensitive = False

    def __init__(self, config: LongBenchWriteConfig | None = None, ctx: Any = None) -> None:
        self.config = config or LongBenchWriteConfig()

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One instruction whose required words fill ``length`` (prompt + ``max_new_tokens``)."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        rng = random.Random(derive_seed(self.name, seed))
        task = rng.choice(WRITING_TASKS)
        phrase = rng.choice(LENGTH_PHRASES)
        tau = self.config.tokens_per_word or tokens_per_word(tokenizer)
        h = self.config.headroom

        def prompt_for(words: int) -> str:
            return render_prompt(tokenizer, phrase.format(task=task, words=words), "\n\n")

        prompt, words, p = _budget(
            tokenizer,
            length,
            prompt_for,
            lambda budget: int(max(0, budget) / (h * tau)),
            task=self.name,
            minimum=self.config.min_words,
            unit="words",
        )
        instruction = phrase.format(task=task, words=words)
        yield Case(
            task=self.name,
            prompt=prompt,
            answer=filler_words(words),
            target_tokens=length,
            actual_tokens=length,
            depth=depth,
            seed=seed,
            max_new_tokens=length - p,
            query=instruction,
            meta={
                "required_words": words,
                "tokens_per_word": round(tau, 4),
                "headroom": h,
                "writing_task": task,
                "instruction": instruction,
                "prompt_tokens": p,
            },
        )

    def score(self, prediction: str, case: Case) -> float:
        """``S_l / 100`` of the prediction's word count against the required words."""
        return length_score(case.meta["required_words"], count_words(prediction)) / 100.0

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """Words produced, required, their ratio, and HelloBench's "no shorter than" (``reached``)."""
        y, x = count_words(prediction), int(case.meta["required_words"])
        return {"words": float(y), "required_words": float(x), "length_ratio": y / x, "reached": float(y >= x)}


# -- golden-thread --------------------------------------------------------------------------------------


@attrs.frozen
class Scenario:
    """A Golden-Thread scenario: what the blocks are and the events its instructions draw from."""

    unit: str
    setting: str  # "{name}" and "{n}" are filled in
    single: tuple[str, ...]
    ranged: tuple[str, ...]
    periodic: tuple[str, ...]


# fmt: off
SCENARIOS: dict[str, Scenario] = {
    "diary": Scenario(
        unit="Week",
        setting="{name} keeps a diary with one entry per week. Write {name}'s diary for {n} weeks, one entry "
        "per week, about work, family, the weather and whatever else happened that week.",
        single=(
            "my sister's wedding", "a broken wrist", "the new puppy", "a surprise promotion",
            "the flooded basement", "my father's birthday", "a lost passport", "the school reunion",
            "a power cut", "the first snowfall",
        ),
        ranged=("the sailing course", "the trip to Lisbon", "the kitchen renovation", "the night shifts"),
        periodic=("the pottery class", "the book club", "the chess tournament", "the choir rehearsal"),
    ),
    "menu": Scenario(
        unit="Week",
        setting="{name} runs a small restaurant and plans a new menu every week. Write the menu and a short "
        "description of each dish for {n} weeks, one entry per week.",
        single=(
            "saffron risotto", "a lemon tart", "roast duck with cherries", "a pumpkin soup",
            "grilled sardines", "a chocolate souffle", "mushroom dumplings", "a fig salad",
            "lamb tagine", "a rhubarb crumble",
        ),
        ranged=("the truffle festival", "the vegetarian fortnight", "the seafood weeks", "the harvest menu"),
        periodic=("the chef's tasting plate", "the jazz brunch", "the cheese trolley", "the street food night"),
    ),
    "skyscraper": Scenario(
        unit="Floor",
        setting="{name} is designing a skyscraper of {n} floors. Describe the design of every floor, one "
        "entry per floor, from the ground floor up.",
        single=(
            "a rooftop garden", "a swimming pool", "a public library", "a cinema", "an art gallery",
            "a climbing wall", "a radio studio", "an observation deck", "a chapel", "a bakery",
        ),
        ranged=("the data centre", "the hotel suites", "the hospital wing", "the music school"),
        periodic=("a sky lobby", "a fire refuge area", "a water tank", "a mechanical room"),
    ),
    "urban": Scenario(
        unit="Block",
        setting="{name} is planning a new town of {n} city blocks along one avenue. Describe the plan of every "
        "block, one entry per block, in order along the avenue.",
        single=(
            "a fire station", "a covered market", "a concert hall", "a primary school", "a tram depot",
            "a botanical garden", "a town hall", "a skate park", "a museum of clocks", "a stadium",
        ),
        ranged=("the university campus", "the industrial park", "the riverside promenade", "the old quarter"),
        periodic=("a bicycle station", "a public fountain", "a bus stop", "a recycling point"),
    ),
}
# fmt: on
#: Names for the scenarios' protagonists (ours).
NAMES = ("Sophia", "Liam", "Olivia", "Noah", "Emma", "Mateo", "Amara", "Kenji", "Ingrid", "Tomas")
SEPARATOR = "#*#"
FINISHED = "*** finished ***"


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def parse_blocks(text: str, unit: str) -> dict[int, str]:
    """``block number -> its text``: ``text`` split at ``#*#``, each chunk numbered by its first
    ``<unit> k`` (the reference's ``parse_weeks``); the first chunk with a number keeps it."""
    pattern = re.compile(rf"\b{re.escape(unit)}\s+(\d+)", re.IGNORECASE)
    out: dict[int, str] = {}
    for chunk in text.split(SEPARATOR):
        m = pattern.search(chunk)
        if m:
            out.setdefault(int(m.group(1)), chunk)
    return out


@attrs.frozen
class GoldenThreadConfig:
    """The scenario, the instructions and how the budget becomes a number of blocks."""

    scenario: str = attrs.field(
        default="any",
        validator=one_of("any", *SCENARIOS),
        metadata={"help": "diary, menu, skyscraper, urban, or any (drawn from the seed)"},
    )
    block_words: int = attrs.field(
        default=150, validator=at_least(1), metadata={"help": "words asked for in each block's entry"}
    )
    singles: int = attrs.field(
        default=5, validator=at_least(0), metadata={"help": "single-block events (the reference: 5)"}
    )
    headroom: float = attrs.field(
        default=1.25,
        validator=at_least(1.0),
        metadata={"help": "generation budget / tokens of the asked-for text (room to overshoot)"},
    )
    tokens_per_word: float | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(in_range(0.1, 100.0)),
        metadata={"help": "tokens per word of the tokenizer (none = measure on the bundled novel)"},
    )
    min_blocks: int = attrs.field(
        default=4, validator=at_least(4), metadata={"help": "refuse lengths that leave fewer blocks"}
    )


class GoldenThread:
    """Place single, range and periodic events in the numbered blocks of a long generated text."""

    name = "golden-thread"
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})
    depth_sensitive = False

    def __init__(self, config: GoldenThreadConfig | None = None, ctx: Any = None) -> None:
        self.config = config or GoldenThreadConfig()

    def plan(self, seed: int, n: int) -> dict[str, Any]:
        """The scenario, protagonist and check set for ``n`` blocks, from the seed alone."""
        rng = random.Random(derive_seed(self.name, seed, "plan"))
        key = self.config.scenario if self.config.scenario != "any" else rng.choice(sorted(SCENARIOS))
        sc = SCENARIOS[key]
        name = rng.choice(NAMES)
        k = min(self.config.singles, n, len(sc.single))
        single = [[b, e] for b, e in zip(sorted(rng.sample(range(1, n + 1), k)), rng.sample(sc.single, k))]
        span = max(2, n // 10)
        a = rng.randint(1, n - span + 1)
        ranged = {"event": rng.choice(sc.ranged), "first": a, "last": a + span - 1}
        period = rng.randint(2, max(2, n // 4))
        start = rng.randint(1, max(1, min(period, n - period)))
        periodic = {"event": rng.choice(sc.periodic), "start": start, "every": period}
        checks = [(b, e, "single") for b, e in single]
        checks += [(b, ranged["event"], "range") for b in range(a, a + span)]
        checks += [(b, periodic["event"], "periodic") for b in range(start, n + 1, period)]
        checks.sort(key=lambda c: (c[0], c[2], c[1]))
        return {
            "scenario": key,
            "unit": sc.unit,
            "name": name,
            "single": single,
            "range": ranged,
            "periodic": periodic,
            "checks": [list(c) for c in checks],
        }

    def body(self, plan: dict[str, Any], n: int) -> str:
        """The instruction text (the reference's layout: setting, numbered requirements, format, start)."""
        sc = SCENARIOS[plan["scenario"]]
        u = plan["unit"]
        lines = [sc.setting.format(name=plan["name"], n=n), "Requirements:"]
        i = 1
        for b, e in plan["single"]:
            lines.append(f'{i}) In {u} {b}, mention "{e}".')
            i += 1
        r, p = plan["range"], plan["periodic"]
        lines.append(f'{i}) In every {u.lower()} from {u} {r["first"]} to {u} {r["last"]}, mention "{r["event"]}".')
        lines.append(
            f'{i + 1}) Every {p["every"]} {u.lower()}s, starting from {u} {p["start"]}, mention "{p["event"]}".'
        )
        lines.append(
            f"{i + 2}) Start each entry with '{SEPARATOR} {u} k:' (k = 1 … {n}). Write {n} entries, one for each "
            f"{u.lower()}, each about {self.config.block_words} words. When all {n} entries are written, write "
            f"'{FINISHED}'."
        )
        lines.append("*** started ***")
        return "\n".join(lines)

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One scenario whose blocks fill ``length`` (prompt + ``max_new_tokens``)."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        tau = self.config.tokens_per_word or tokens_per_word(tokenizer)
        per_block = self.config.headroom * tau * (self.config.block_words + 4)  # + the header's words

        def prompt_for(n: int) -> str:
            plan = self.plan(seed, n)
            return render_prompt(tokenizer, self.body(plan, n), f"\n{SEPARATOR} {plan['unit']} 1:")

        prompt, n, p = _budget(
            tokenizer,
            length,
            prompt_for,
            lambda budget: int(max(0, budget) / per_block),
            task=self.name,
            minimum=self.config.min_blocks,
            unit=f"blocks of {self.config.block_words} words",
        )
        plan = self.plan(seed, n)
        yield Case(
            task=self.name,
            prompt=prompt,
            answer=self.gold(plan, n),
            target_tokens=length,
            actual_tokens=length,
            depth=depth,
            seed=seed,
            max_new_tokens=length - p,
            query=f"{SEPARATOR} {plan['unit']} 1:",  # the last line: reducers keep it, the output continues it
            meta={**plan, "blocks": n, "block_words": self.config.block_words, "tokens_per_word": round(tau, 4)},
        )

    @staticmethod
    def gold(plan: dict[str, Any], n: int) -> str:
        """A continuation that passes every check: each block names exactly its events."""
        by_block: dict[int, list[str]] = {}
        for b, e, _kind in plan["checks"]:
            by_block.setdefault(int(b), []).append(e)
        parts = []
        for b in range(1, n + 1):
            events = by_block.get(b, [])
            text = " ".join(f"This {plan['unit'].lower()} had {e}." for e in events) or "A quiet one."
            parts.append(text if b == 1 else f"{SEPARATOR} {plan['unit']} {b}: {text}")
        return " " + "\n".join(parts) + f"\n{FINISHED}"

    def _results(self, prediction: str, case: Case) -> list[tuple[str, bool, bool]]:
        """``(kind, block present, event found)`` per check."""
        unit = case.meta["unit"]
        blocks = parse_blocks(f"{SEPARATOR} {unit} 1:" + prediction, unit)
        out = []
        for b, e, kind in case.meta["checks"]:
            text = blocks.get(int(b))
            out.append((kind, text is not None, text is not None and _norm(e) in _norm(text)))
        return out

    def score(self, prediction: str, case: Case) -> float:
        """The fraction of (block, event) checks whose event phrase appears in its block."""
        res = self._results(prediction, case)
        return sum(ok for _k, _p, ok in res) / len(res) if res else 0.0

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """Accuracy per instruction kind, over the checks whose block exists (``found``), the share of
        blocks written (``completion``) and LongWriter's length score of the whole output."""
        res = self._results(prediction, case)
        out: dict[str, float] = {}
        for kind in ("single", "range", "periodic"):
            mine = [ok for k, _p, ok in res if k == kind]
            if mine:
                out[kind] = sum(mine) / len(mine)
        present = [ok for _k, p, ok in res if p]
        out["found"] = sum(present) / len(present) if present else 0.0
        n = int(case.meta["blocks"])
        blocks = parse_blocks(f"{SEPARATOR} {case.meta['unit']} 1:" + prediction, case.meta["unit"])
        out["completion"] = sum(1 for b in range(1, n + 1) if b in blocks) / n
        out["length_score"] = length_score(n * int(case.meta["block_words"]), count_words(prediction)) / 100.0
        return out


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance-kit contracts of both tasks (imported only when asked)."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.plugins.long_generation.contract import GoldenThreadContract, LongBenchWriteContract

        return (LongBenchWriteContract, GoldenThreadContract)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    register(
        "longbench-write",
        config=LongBenchWriteConfig,
        build=LongBenchWrite,
        summary="Write a text of a required number of words; LongWriter's length score S_l",
        paper="Bai et al. 2024 (LongWriter), arXiv:2408.07055; Que et al. 2024 (HelloBench), arXiv:2409.16191",
    )
    register(
        "golden-thread",
        config=GoldenThreadConfig,
        build=GoldenThread,
        summary="Place single, range and periodic events in the numbered blocks of a long generated text",
        paper="Wu et al. 2024 (Spinning the Golden Thread / LongGenBench), arXiv:2409.02076",
    )
