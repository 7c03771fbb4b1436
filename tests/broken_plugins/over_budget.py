"""A reducer that confuses words with tokens: it keeps the first ``budget`` *words*."""

import re

import attrs

from longctx.hooks import hookimpl
from longctx.text import Reduction, Span


@attrs.frozen
class HeadWordsConfig:
    budget: int = 1024


class HeadWords:
    def __init__(self, config, ctx=None):
        self.config = config

    def reduce(self, context, *, query=None, tokenizer):
        words = list(re.finditer(r"\S+", context))
        end = words[min(self.config.budget, len(words)) - 1].end() if words else 0
        text = context[:end]
        spans = (Span(0, end),) if end else ()
        # reports its budget as the token count: the lie the kit must catch
        return Reduction(text, spans, tokens_in=len(words), tokens_out=min(self.config.budget, len(words)))


@hookimpl
def lc_register_context_reducers(register):
    register("head-words", config=HeadWordsConfig, build=HeadWords, summary="Keep the first words", paper="none")
