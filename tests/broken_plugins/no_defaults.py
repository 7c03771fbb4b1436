"""A reducer whose config has a field without a default (``config()`` cannot construct)."""

import attrs

from longctx.hooks import hookimpl
from longctx.text import Reduction, Span


@attrs.frozen
class NoDefaultsConfig:
    budget: int  # no default: the kernel refuses the registration


class KeepAll:
    def __init__(self, config, ctx=None):
        self.config = config

    def reduce(self, context, *, query=None, tokenizer):
        n = len(tokenizer(context, add_special_tokens=False)["input_ids"])
        return Reduction(context, (Span(0, len(context)),) if context else (), n, n)


@hookimpl
def lc_register_context_reducers(register):
    register("no-defaults", config=NoDefaultsConfig, build=KeepAll, summary="Keeps everything", paper="none")
