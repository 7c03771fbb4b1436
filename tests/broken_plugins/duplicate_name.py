"""A plugin registering a reducer under a name another plugin (first-party ``bm25``) already uses."""

from longctx.hooks import hookimpl
from longctx.plugins.bm25 import BM25Config, BM25Reducer


@hookimpl
def lc_register_context_reducers(register):
    register("bm25", config=BM25Config, build=BM25Reducer, summary="BM25 again", paper="none")
