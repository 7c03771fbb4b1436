"""RULER's variable tracking (``vt``; ``scripts/data/synthetic/variable_tracking.py``), Hsieh et al. 2024,
arXiv:2404.06654 — multi-hop tracing over a haystack.

A chain is ``VAR X0 = v`` followed by ``VAR X{j+1} = VAR X{j} `` for ``num_hops`` hops (RULER keeps the
trailing space); ``v`` is a 5-digit number (``np.random.randint(10000, 99999)``, so 10000–99998) and the
names are 5 random capital letters, distinct across the ``num_chains`` chains (whose values differ too).
Every chain's lines go, in order, to random positions of the haystack: between the lines of the noise
paragraph (``noise``) or, as sentences ending in ``"."``, at distinct RULER depths between the sentences
of the prose (``essay``; the chains are interleaved at random). The question asks for every variable
that holds the first chain's value; the references are that chain's ``num_hops + 1`` names.

Prompt (``constants.py``), preceded by one worked example (``add_fewshot``)::

    Memorize and track the chain(s) of variable assignment hidden in the following text.

    {context}
    Question: Find all variables that are assigned the value {query} in the text above. Answer:
    According to the chain(s) of variable assignment in the text above, {num_v} variables are assigned
    the value {query}, they are:{space}

The example is RULER's: the same template with its answer (names joined by spaces after one more space)
and a newline, built once with 3-letter names, value ``12345``, ``min(10, num_hops)`` hops and as much
haystack as fits 500 tokens, then given fresh names and a fresh value for every case; a blank line
separates it from the task. Score: ``string_match_all``. The chains sit at random positions, so depth
means nothing here (``depth_sensitive = False``).

Goldman et al. 2024 (arXiv:2407.00402): high diffusion (the hops are scattered over the whole context and
each must be found from the previous one) but low scope (five short lines are all that is needed).
"""

from __future__ import annotations

import heapq
import random
import string
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import attrs

from longctx.errors import InputError, ParameterError
from longctx.evaluate import Case, derive_seed, fit_length, render_prompt
from longctx.haystack import DEFAULT_PROSE
from longctx.params import at_least, in_range, one_of
from longctx.plugins.ruler.common import (
    DEPTHS,
    Filler,
    RulerTask,
    check_depth,
    essay_sentences,
    fit_case,
    insert_at,
    nearest_boundary,
    noise_lines,
    query_tail,
)

__all__ = ["ANSWER_PREFIX", "EXAMPLE_TOKENS", "TEMPLATE", "VariableTracking", "VariableTrackingConfig", "chains"]

TEMPLATE = (
    "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\n"
    "Question: Find all variables that are assigned the value {query} in the text above."
)
ANSWER_PREFIX = (
    " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are "
    "assigned the value {query}, they are: "
)
#: The token budget RULER fits its one-shot example to.
EXAMPLE_TOKENS = 500
#: The example's value before it is replaced (RULER's placeholder).
EXAMPLE_VALUE = "12345"


@attrs.frozen
class VariableTrackingConfig:
    """RULER's ``vt`` entry of ``synthetic.yaml`` and the generator's options."""

    num_chains: int = attrs.field(default=1, validator=in_range(1, 20), metadata={"help": "variable chains"})
    num_hops: int = attrs.field(default=4, validator=in_range(1, 30), metadata={"help": "hops per chain"})
    type_haystack: str = attrs.field(
        default="noise", validator=one_of("noise", "essay"), metadata={"help": "haystack: noise or essay (prose)"}
    )
    add_fewshot: bool = attrs.field(default=True, metadata={"help": "prepend RULER's one-shot example"})
    essay: str = attrs.field(
        default=DEFAULT_PROSE,
        metadata={"help": "essay haystack text: pride_and_prejudice (bundled) or a path to a UTF-8 file"},
    )
    max_new_tokens: int = attrs.field(default=30, validator=at_least(1), metadata={"help": "tokens to generate"})
    tolerance: float = attrs.field(
        default=0.02,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )

    def __attrs_post_init__(self) -> None:
        if self.type_haystack == "essay" and self.num_chains * (self.num_hops + 1) > len(DEPTHS):
            raise ParameterError(
                f"an essay haystack holds at most {len(DEPTHS)} chain lines (RULER's depths); "
                f"{self.num_chains} chains x {self.num_hops + 1} lines is too many"
            )


def _names(rng: random.Random, count: int, letters: int, avoid: set[str] | None = None) -> list[str]:
    out: list[str] = []
    seen = set(avoid or ())
    while len(out) < count:
        name = "".join(rng.choices(string.ascii_uppercase, k=letters))
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def chains(names: list[list[str]], values: list[str]) -> list[list[str]]:
    """The lines of each chain: ``VAR X0 = v`` then ``VAR X{j+1} = VAR X{j} `` (trailing space, as RULER)."""
    out = []
    for vs, v in zip(names, values):
        lines = [f"VAR {vs[0]} = {v}"]
        lines += [f"VAR {vs[j + 1]} = VAR {vs[j]} " for j in range(len(vs) - 1)]
        out.append(lines)
    return out


class _Layout:
    """Where the chain lines go, independent of the haystack's size: per line, a depth (fraction of the
    haystack's characters) — RULER's sorted random line positions per chain (noise), or distinct RULER
    depths over a random interleaving of the chains (essay)."""

    def __init__(self, rng: random.Random, sizes: list[int], essay: bool) -> None:
        if essay:
            # RULER's shuffle_sublists_heap: a random interleaving that keeps each chain's order
            heap = [(rng.random(), c, 0) for c in range(len(sizes))]
            heapq.heapify(heap)
            order: list[tuple[int, int]] = []
            while heap:
                _, c, j = heapq.heappop(heap)
                order.append((c, j))
                if j + 1 < sizes[c]:
                    heapq.heappush(heap, (rng.random(), c, j + 1))
            depths = sorted(d / 100 for d in rng.sample(DEPTHS, len(order)))
            self.items = [(c, j, d) for (c, j), d in zip(order, depths)]
        else:
            self.items = []
            for c, size in enumerate(sizes):
                self.items += [(c, j, d) for j, d in enumerate(sorted(rng.random() for _ in range(size)))]


class VariableTracking(RulerTask):
    """RULER's ``vt`` task (an :class:`longctx.hooks.evaluation.EvalTask`); see the module docstring."""

    name = "ruler-vt"
    tags = MappingProxyType({"diffusion": "high", "scope": "low"})
    depth_sensitive = False

    def __init__(self, config: VariableTrackingConfig | None = None, ctx: Any = None) -> None:
        self.config = config or VariableTrackingConfig()

    def _filler(self) -> tuple[Filler, str]:
        if self.config.type_haystack == "essay":
            return essay_sentences(self.config.essay), " "
        return noise_lines(), "\n"

    def _context(self, n: int, lines: list[list[str]], layout: _Layout) -> str:
        filler, sep = self._filler()
        hay, bounds = filler.prefix(n)
        essay = self.config.type_haystack == "essay"
        items = []
        for c, j, d in layout.items:
            text = lines[c][j].strip() + "." if essay else lines[c][j]
            items.append((nearest_boundary(bounds, d * len(hay)), text))
        return insert_at(hay, items, sep)[0]

    def _text(self, n: int, lines: list[list[str]], layout: _Layout, value: str, num_v: int) -> tuple[str, str]:
        body = TEMPLATE.format(context=self._context(n, lines, layout), query=value)
        return body, ANSWER_PREFIX.format(num_v=num_v, query=value)

    def example(self, tokenizer: Any, rng: random.Random) -> str:
        """RULER's one-shot example with fresh names and value from ``rng``: its layout (and the haystack
        that fits :data:`EXAMPLE_TOKENS`) is fixed per configuration and tokenizer, as RULER builds it
        once per run."""
        cfg = self.config
        hops = min(10, cfg.num_hops)
        fixed = random.Random(derive_seed(self.name, "example", cfg.type_haystack, cfg.num_chains, hops))
        names = _names(fixed, cfg.num_chains * (hops + 1), 3)
        groups = [names[i : i + hops + 1] for i in range(0, len(names), hops + 1)]
        layout = _Layout(fixed, [hops + 1] * cfg.num_chains, cfg.type_haystack == "essay")

        def text(n: int, groups: list[list[str]], value: str) -> str:
            values = [value] * cfg.num_chains
            body, prefix = self._text(n, chains(groups, values), layout, value, hops + 1)
            return body + prefix + " " + " ".join(groups[0]) + "\n"

        try:
            n = fit_length(lambda n: text(n, groups, EXAMPLE_VALUE), tokenizer, EXAMPLE_TOKENS).n
        except InputError:  # RULER then keeps its smallest haystack too
            n = 0
        fresh = _names(rng, len(names), 3)
        fresh_groups = [fresh[i : i + hops + 1] for i in range(0, len(fresh), hops + 1)]
        return text(n, fresh_groups, str(rng.randint(10000, 99998)))

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One case of ``length`` tokens; ``depth`` is recorded but does not move the chains."""
        check_depth(self.name, depth)
        cfg = self.config
        rng = random.Random(derive_seed(self.name, seed))
        names = _names(rng, cfg.num_chains * (cfg.num_hops + 1), 5)
        groups = [names[i : i + cfg.num_hops + 1] for i in range(0, len(names), cfg.num_hops + 1)]
        values: list[str] = []
        while len(values) < cfg.num_chains:
            v = str(rng.randint(10000, 99998))
            if v not in values:
                values.append(v)
        lines = chains(groups, values)
        layout = _Layout(rng, [len(x) for x in lines], cfg.type_haystack == "essay")
        example = self.example(tokenizer, rng) + "\n" if cfg.add_fewshot else ""

        def make(n: int) -> tuple[str, int]:
            body, prefix = self._text(n, lines, layout, values[0], cfg.num_hops + 1)
            return render_prompt(tokenizer, example + body, prefix), n

        fit, n = fit_case(self.name, make, tokenizer, length, reserve=cfg.max_new_tokens, tolerance=cfg.tolerance)
        question = TEMPLATE.rpartition("\n")[2].format(query=values[0])
        yield Case(
            task=self.name,
            prompt=fit.text,
            answer=" ".join(groups[0]),
            references=tuple(groups[0]),
            target_tokens=length,
            actual_tokens=fit.tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=cfg.max_new_tokens,
            query=query_tail(fit.text, question),
            meta={
                "type_haystack": cfg.type_haystack,
                "num_chains": cfg.num_chains,
                "num_hops": cfg.num_hops,
                "chains": groups,
                "values": values,
                "value": values[0],
                "haystack_units": n,
                "fewshot": cfg.add_fewshot,
                "example_chars": len(example),
            },
        )
