"""``kv-retrieval``: synthetic key–value retrieval over a JSON object of uuid pairs.

Liu et al. 2023, "Lost in the Middle: How Language Models Use Long Contexts", arXiv:2307.03172
(``scripts/make_kv_retrieval_data.py``, ``src/lost_in_the_middle/prompting.py``,
``scripts/evaluate_kv_responses.py``), and its HELMET variant ``json_kv`` (Yen et al. 2024, "HELMET: How
to Evaluate Long-Context Language Models Effectively and Thoroughly", arXiv:2410.02694,
``data_module/json_kv.py``, ``utils.py``).

**Data.** ``k`` records ``(key, value)``, both uuid strings, all distinct. One record is the gold
record; the model is asked for its value. Lost in the middle moves the gold record to ``gold_index``
and sweeps that index to show the U-shaped accuracy curve; here ``depth`` ∈ [0, 1] chooses it,
``gold_index = round(depth · (k − 1))`` (the records are all random, so choosing the index is the same as
moving the record there). The records serialise as in ``get_kv_retrieval_prompt``, one record a line::

    {"<key 1>": "<value 1>",
     "<key 2>": "<value 2>",
     ...
     "<key k>": "<value k>"}

**Prompt** (``template="lost-in-the-middle"``, ``kv_retrieval.prompt``)::

    Extract the value corresponding to the specified key in the JSON object below.

    JSON data:
    {records}

    Key: "{key}"
    Corresponding value:

and (``template="helmet"``, ``json_kv``: context first, instruction after, ``shots`` = 2 demonstrations)::

    JSON data:
    {records}

    Extract the value corresponding to the specified key in the JSON object below.

    Key: "{demo key 1}"
    Corresponding value: {demo value 1}

    Key: "{demo key 2}"
    Corresponding value: {demo value 2}

    Key: "{key}"
    Corresponding value:

``Corresponding value:`` is the answer prefix (HELMET's ``system_template``): with ``--chat-template`` it
follows the assistant turn's start. HELMET's demonstrations come with its data files; here they are
records of the same JSON object other than the ones asked (a demonstration that contradicted the object
would teach the wrong task).

**Length.** The number of records ``k`` is fitted by binary search (:func:`longctx.evaluate.fit_length`)
so that the whole prompt with BOS, plus the generation budget, comes within ``tolerance`` below the
target in the evaluated model's tokens — lost in the middle fixes ``k`` (75, 140, 300), HELMET picks
``k`` per length for one tokenizer (``test_k1800_dep6`` …). One record is ~80 bytes / ~55 Gemma tokens,
so a prompt can only land within one record of the target.

**Several questions over one context** (``queries=N``): the N gold records sit at the evenly spaced
indices ``round(i/(N−1) · (k − 1))`` — lost in the middle's sweep of gold positions, over *one* object —
and the task yields one case per key, consecutively, all with ``context=`` the prompt up to the ``Key:``
line. The runner prefills that context once and reuses its KV cache for every key (the answers to the
other questions are not in the prompt). Each case's ``depth`` is then its own gold record's position,
so the summary by depth is the U-curve; the task is built once per length (``depth_sensitive`` false).

**Score.** Lost in the middle: 1.0 when the gold value, lower-cased, is a substring of the lower-cased
prediction (``evaluate_kv_responses.py``). HELMET (``template="helmet"``): ``substring_exact_match`` —
SQuAD normalisation (lower case, punctuation and articles removed, whitespace collapsed) of both, then
substring — taking the max over the raw output and its first line after ``corresponding value:``
(``parse_output``). Both are reported as sub-metrics (``accuracy``, ``substring_exact_match``).

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402: low
diffusion (the key is given verbatim, so the needle is found by matching one string) and low scope (one
record of the object answers the question).
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any, ClassVar

import attrs

from longctx.errors import InputError
from longctx.evaluate import Case, count_prompt_tokens, derive_seed, fit_length, render_prompt
from longctx.haystack import UuidPairs
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range, one_of

NAME = "kv-retrieval"
INSTRUCTION = "Extract the value corresponding to the specified key in the JSON object below."
JSON_HEADER = "JSON data:\n"
QUESTION = 'Key: "{key}"'
ANSWER_PREFIX = "\nCorresponding value:"
DEMO = 'Key: "{key}"\nCorresponding value: {value}'
TEMPLATES = ("lost-in-the-middle", "helmet")


def format_records(records: list[tuple[str, str]]) -> str:
    """The records as lost in the middle serialises them: ``{"k": "v",`` then ``\\n "k": "v",`` … ``}``."""
    return "{" + ",\n ".join(f'"{k}": "{v}"' for k, v in records) + "}"


_Records = UuidPairs  # the shared seeded uuid-pair stream of longctx.haystack


def gold_indices(k: int, depth: float, queries: int) -> list[int]:
    """Where the asked records sit among ``k``: ``round(depth·(k−1))`` for one query, else ``queries``
    evenly spaced indices from the first record to the last."""
    if queries == 1:
        return [round(depth * (k - 1))]
    return [round(i * (k - 1) / (queries - 1)) for i in range(queries)]


# -- scoring -------------------------------------------------------------------------------------------


def litm_accuracy(prediction: str, value: str) -> float:
    """Lost in the middle: the value, lower-cased, is a substring of the lower-cased prediction."""
    return 1.0 if value.lower() in prediction.lower() else 0.0


def normalize_answer(s: str) -> str:
    """SQuAD / HELMET normalisation: lower case, drop punctuation, drop a/an/the, collapse whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _parse_output(output: str, prefix: str = "corresponding value:") -> str | None:
    """HELMET's ``parse_output``: the text after ``prefix`` up to the line end (case-insensitive), else
    the first line, stripped (and the prefix stripped again, for models that repeat it)."""
    patterns = [re.compile(f"(?:{re.escape(prefix)})(.*)(?:\\n|$)", re.IGNORECASE), re.compile(r"(?:^)(.*)(?:\n|$)")]
    for pat in patterns:
        m = pat.search(output)
        if m is not None:
            return re.sub(f"^{re.escape(prefix)}", "", m[1].strip(), flags=re.IGNORECASE).strip()
    return None


def substring_exact_match(prediction: str, value: str) -> float:
    """HELMET's ``substring_exact_match`` for ``json_kv``: the normalised value is a substring of the
    normalised output, or of its parsed first answer line (the max of the two)."""
    gold = normalize_answer(value)
    outs = [prediction]
    parsed = _parse_output(prediction)
    if parsed is not None:
        outs.append(parsed)
    return 1.0 if any(gold in normalize_answer(o) for o in outs) else 0.0


# -- the task ------------------------------------------------------------------------------------------


@attrs.frozen
class KVRetrievalConfig:
    """Prompt template, questions per context, generation budget and length tolerance."""

    template: str = attrs.field(
        default="lost-in-the-middle",
        validator=one_of(*TEMPLATES),
        metadata={"help": "lost-in-the-middle (instruction, JSON, key) or helmet (JSON, instruction, demos, key)"},
    )
    shots: int = attrs.field(
        default=2, validator=in_range(0, 16), metadata={"help": "demonstrations in the helmet template (HELMET: 2)"}
    )
    queries: int = attrs.field(
        default=1,
        validator=in_range(1, 1000),
        metadata={"help": "keys asked over one context (evenly spaced; the context's KV cache is reused)"},
    )
    max_new_tokens: int = attrs.field(
        default=100, validator=at_least(1), metadata={"help": "tokens to generate (lost in the middle, HELMET: 100)"}
    )
    tolerance: float = attrs.field(
        default=0.02,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a prompt may stay (fraction)"},
    )


class KVRetrieval:
    """The key–value retrieval task (an :class:`longctx.hooks.evaluation.EvalTask`)."""

    name = NAME
    tags = MappingProxyType({"diffusion": "low", "scope": "low"})

    def __init__(self, config: KVRetrievalConfig | None = None, ctx: Any = None) -> None:
        self.config = config or KVRetrievalConfig()
        # several keys over one context sweep the depths themselves: build once per length
        self.depth_sensitive = self.config.queries == 1

    @property
    def _shots(self) -> int:
        return self.config.shots if self.config.template == "helmet" else 0

    def min_records(self) -> int:
        """The fewest records a prompt can have: every asked key and demonstration distinct, and at least
        two (lost in the middle refuses fewer)."""
        return max(2, self.config.queries + self._shots)

    def layout(
        self, records: list[tuple[str, str]], depth: float, rng_seed: int
    ) -> tuple[str, list[int], list[tuple[str, str]]]:
        """The shared context (everything before the ``Key:`` line, ending in a blank line), the gold
        indices and the demonstrations."""
        gold = gold_indices(len(records), depth, self.config.queries)
        body = JSON_HEADER + format_records(records)
        demos: list[tuple[str, str]] = []
        if self.config.template == "lost-in-the-middle":
            context = INSTRUCTION + "\n\n" + body + "\n\n"
        else:
            others = [i for i in range(len(records)) if i not in set(gold)]
            picks = random.Random(rng_seed).sample(others, self._shots)
            demos = [records[i] for i in picks]
            demo_text = "".join(DEMO.format(key=k, value=v) + "\n\n" for k, v in demos)
            context = body + "\n\n" + INSTRUCTION + "\n\n" + demo_text
        return context, gold, demos

    def _prompts(self, tokenizer: Any, records: list[tuple[str, str]], depth: float, seed: int) -> dict[str, Any]:
        context, gold, demos = self.layout(records, depth, derive_seed(self.name, seed, "demos", len(records)))
        prompts = [render_prompt(tokenizer, context + QUESTION.format(key=records[i][0]), ANSWER_PREFIX) for i in gold]
        return {"context": context, "gold": gold, "demos": demos, "prompts": prompts}

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """The case(s) of ``length`` tokens (prompt with BOS + ``max_new_tokens``): one per asked key."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"{self.name}: depth must be between 0 and 1, got {depth}")
        stream = _Records(random.Random(derive_seed(self.name, seed)))
        budget = self.config.max_new_tokens
        lo = self.min_records()
        try:
            fit = fit_length(
                lambda k: self._prompts(tokenizer, stream.take(k), depth, seed)["prompts"][0],
                tokenizer,
                length,
                lo=lo,
                reserve=budget,
                tolerance=self.config.tolerance,
            )
        except InputError:
            bare = count_prompt_tokens(tokenizer, self._prompts(tokenizer, stream.take(lo), depth, seed)["prompts"][0])
            raise InputError(
                f"{self.name}: a length of {length} tokens is too short; the prompt with {lo} key-value pairs "
                f"plus {budget} generated tokens already needs {bare + budget}"
            ) from None
        k = fit.n
        # other keys may tokenize longer than the first: shrink until every prompt fits
        while True:
            built = self._prompts(tokenizer, stream.take(k), depth, seed)
            counts = [count_prompt_tokens(tokenizer, p) + budget for p in built["prompts"]]
            if max(counts) <= length or k <= lo:
                break
            k -= 1
        if max(counts) > length:
            raise InputError(
                f"{self.name}: a length of {length} tokens is too short for {self.config.queries} keys "
                f"({max(counts)} tokens needed)"
            )
        records = stream.take(k)
        context = built["context"]
        for j, (i, prompt, tokens) in enumerate(zip(built["gold"], built["prompts"], counts, strict=True)):
            key, value = records[i]
            shared = _shared_context(prompt, context) if self.config.queries > 1 else None
            yield Case(
                task=self.name,
                prompt=prompt,
                answer=value,
                target_tokens=length,
                actual_tokens=tokens,
                depth=depth if self.config.queries == 1 else i / (k - 1),
                seed=seed,
                max_new_tokens=budget,
                query=QUESTION.format(key=key) + ANSWER_PREFIX,
                meta={
                    "key": key,
                    "num_pairs": k,
                    "gold_index": i,
                    "gold_depth": i / (k - 1),
                    "question": j,
                    "queries": self.config.queries,
                    "template": self.config.template,
                    "demo_keys": [d[0] for d in built["demos"]],
                },
                references=(value,),
                context=shared,
            )

    def score(self, prediction: str, case: Case) -> float:
        """The template's reference score: lost in the middle's lower-cased substring match, or HELMET's
        normalised substring exact match."""
        if case.meta.get("template") == "helmet":
            return substring_exact_match(prediction, case.answer)
        return litm_accuracy(prediction, case.answer)

    def metrics(self, prediction: str, case: Case) -> dict[str, float]:
        """Both references' scores: ``accuracy`` (lost in the middle) and ``substring_exact_match`` (HELMET)."""
        return {
            "accuracy": litm_accuracy(prediction, case.answer),
            "substring_exact_match": substring_exact_match(prediction, case.answer),
        }


def _shared_context(prompt: str, context: str) -> str | None:
    """The prompt's prefix up to the end of ``context`` (the chat template, when there is one, comes
    before it), or ``None`` when the rendering changed the context so it is not found."""
    at = prompt.find(context)
    return prompt[: at + len(context)] if at >= 0 else None


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance contract of ``kv-retrieval`` — lengths of 2k and 4k bytes,
    because one uuid record is ~80 bytes (a 512-byte prompt holds the instruction and two records, and
    can only land within one record of the target)."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.contrib.conformance import EvaluationContract

        class KVRetrievalContract(EvaluationContract):
            technique = NAME
            lengths: ClassVar[tuple[int, ...]] = (2048, 4096)
            length_tolerance: ClassVar[float | None] = 0.05

        return (KVRetrievalContract,)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    register(
        NAME,
        config=KVRetrievalConfig,
        build=KVRetrieval,
        summary="Key-value retrieval: the value of one uuid key in a JSON object of uuid pairs (lost in the middle)",
        paper="Liu et al. 2023, arXiv:2307.03172; Yen et al. 2024 (HELMET json_kv), arXiv:2410.02694",
    )
