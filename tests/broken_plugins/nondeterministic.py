"""An augmenter that ignores its seed: it shuffles documents with an unseeded generator."""

import random

import attrs

from longctx.hooks import hookimpl
from longctx.text import Record


@attrs.frozen
class ShuffleConfig:
    seq_len: int = 64


class Shuffle:
    def __init__(self, config, ctx=None):
        self.config = config

    def augment(self, documents, *, seed=0):
        rng = random.Random()  # the bug: not random.Random(seed)
        buf = []
        for doc in documents:
            buf.extend(doc)
            while len(buf) >= self.config.seq_len:
                chunk, buf = buf[: self.config.seq_len], buf[self.config.seq_len :]
                rng.shuffle(chunk)
                yield Record(chunk, [1] * len(chunk))
        if buf:
            yield Record(buf, [1] * len(buf))


@hookimpl
def lc_register_augmenters(register):
    register("shuffle", config=ShuffleConfig, build=Shuffle, summary="Shuffle tokens", paper="none")
