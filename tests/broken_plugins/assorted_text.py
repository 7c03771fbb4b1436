"""Text-side techniques (reduction, augmentation, evaluation) and registrations that each break one more
check: of their family, or a static one the kernel lets through."""

import random
import re
from typing import ClassVar

import attrs

from longctx.evaluate import Case
from longctx.hooks import hookimpl
from longctx.plugins.passkey import Passkey, PasskeyConfig
from longctx.text import Record, Reduction, Span, count_tokens


@attrs.frozen
class BudgetConfig:
    budget: int = 1024


def _sentences(text):
    return [m.span() for m in re.finditer(r"[^.!?\n]+[.!?]?", text) if m.group().strip()]


class _Reducer:
    def __init__(self, config, ctx=None):
        self.config = config

    def keep(self, spans, text, tokenizer):
        """Greedily keep sentence spans within the budget, in order."""
        out, used = [], 0
        budget = getattr(self.config, "budget", 1024)
        for s, e in spans:
            n = count_tokens(tokenizer, text[s:e])
            if used + n + 1 > budget:
                break
            out.append(Span(s, e))
            used += n + 1
        return out

    def reduction(self, text, spans, tokenizer, separator="\n"):
        out = separator.join(text[s.start : s.end] for s in spans)
        return Reduction(out, tuple(spans), count_tokens(tokenizer, text), count_tokens(tokenizer, out), separator)


class Keep(_Reducer):
    """A correct reducer: sentences in order within the budget (for registrations broken elsewhere)."""

    def reduce(self, context, *, query=None, tokenizer):
        return self.reduction(context, self.keep(_sentences(context), context, tokenizer), tokenizer)


class ReversedSpans(_Reducer):
    """Keeps sentences within budget but reports them (and joins them) last first."""

    def reduce(self, context, *, query=None, tokenizer):
        spans = list(reversed(self.keep(_sentences(context), context, tokenizer)))
        return self.reduction(context, spans, tokenizer)


class Lowercase(_Reducer):
    """Keeps sentences within budget, but lower-cases the text: it no longer matches its spans."""

    def reduce(self, context, *, query=None, tokenizer):
        red = self.reduction(context, self.keep(_sentences(context), context, tokenizer), tokenizer)
        return attrs.evolve(red, text=red.text.lower())


class CoinFlip(_Reducer):
    """Keeps a random half of the sentences (unseeded)."""

    def reduce(self, context, *, query=None, tokenizer):
        spans = [sp for sp in _sentences(context) if random.random() < 0.5]
        return self.reduction(context, self.keep(spans, context, tokenizer), tokenizer)


class Fragile(_Reducer):
    """Assumes a non-empty context."""

    def reduce(self, context, *, query=None, tokenizer):
        first = context.split()[0]  # IndexError on "" and on whitespace
        spans = self.keep(_sentences(context), context, tokenizer)
        return attrs.evolve(self.reduction(context, spans, tokenizer), meta={"first": first})


class PositionalOnly:
    """``reduce(text, q, tok)``: not callable as reduce(context, *, query=, tokenizer=)."""

    def __init__(self, config, ctx=None):
        self.config = config

    def reduce(self, text, q, tok):  # pragma: no cover - never called correctly
        return Reduction(text, (), 0, 0)


@attrs.define
class MutableConfig:
    budget: int = 1024


@attrs.frozen
class CommaConfig:
    stopwords: str = "a,the"  # a comma cannot survive name:key=value,key=value


# -- augmentation ----------------------------------------------------------------------------------


@attrs.frozen
class NoParams:
    pass


class Materialiser:
    """Reads every document before yielding anything."""

    def __init__(self, config, ctx=None):
        self.config = config

    def augment(self, documents, *, seed=0):
        docs = list(documents)
        for d in docs:
            yield Record(list(d), [1] * len(d))


class DictRecords:
    """Yields plain dicts instead of longctx.text.Record."""

    def __init__(self, config, ctx=None):
        self.config = config

    def augment(self, documents, *, seed=0):
        for d in documents:
            yield {"input_ids": list(d), "loss_mask": [1] * len(d)}


# -- evaluation ----------------------------------------------------------------------------------------


class UnseededPasskey(Passkey):
    name = "unseeded-passkey"

    def key(self, seed):
        return random.randint(1, 50000)


class SloppyLength(Passkey):
    """Builds prompts for half the asked length but labels them with the full one."""

    name = "sloppy-length"

    def cases(self, tokenizer, *, length, depth, seed):
        for case in super().cases(tokenizer, length=length // 2, depth=depth, seed=seed):
            yield attrs.evolve(case, target_tokens=length)


class HiddenAnswer(Passkey):
    """Its gold answer is not the key hidden in the prompt."""

    name = "hidden-answer"

    def cases(self, tokenizer, *, length, depth, seed):
        for case in super().cases(tokenizer, length=length, depth=depth, seed=seed):
            yield attrs.evolve(case, answer=str(int(case.answer) + 100000))

    def score(self, prediction, case: Case):
        return 1.0 if prediction.strip() == case.answer else 0.0


class Untagged(Passkey):
    name = "untagged"
    tags: ClassVar[dict] = {"diffusion": "medium"}


@hookimpl
def lc_register_context_reducers(register):
    reducers = (
        ("reversed-spans", BudgetConfig, ReversedSpans),
        ("lowercase", BudgetConfig, Lowercase),
        ("coin-flip", BudgetConfig, CoinFlip),
        ("fragile", BudgetConfig, Fragile),
        ("positional-only", BudgetConfig, PositionalOnly),
        ("mutable-config", MutableConfig, Keep),
        ("comma-default", CommaConfig, Keep),
    )
    for name, config, build in reducers:
        register(name, config=config, build=build, summary="broken", paper="none")
    register("no-paper", config=BudgetConfig, build=Keep, summary="broken", paper="")
    register("needs-missing", config=BudgetConfig, build=Keep, summary="broken", paper="none", requires=("kv=missing",))


@hookimpl
def lc_register_augmenters(register):
    for name, build in (("materialiser", Materialiser), ("dict-records", DictRecords)):
        register(name, config=NoParams, build=build, summary="broken", paper="none")


@hookimpl
def lc_register_evaluators(register):
    for cls in (UnseededPasskey, SloppyLength, HiddenAnswer, Untagged):
        register(cls.name, config=PasskeyConfig, build=cls, summary="broken", paper="none")
