"""``perplexity``: sliding-window perplexity of a local text, per position bucket (YaRN's protocol).

Peng, Quesnelle, Fan & Shippole 2023, "YaRN: Efficient Context Window Extension of Large Language
Models", arXiv:2309.00071 (``eval/perplexity.py``, "sliding window perplexity, validated against the
calculations reported in arXiv:2306.15595" — Chen et al. 2023, Position Interpolation).

**The case.** A case is a contiguous passage of a local UTF-8 text (``path=``; by default the bundled,
public-domain *Pride and Prejudice*, :func:`longctx.haystack.prose_text`) of ``length`` tokens with BOS —
YaRN's ``--truncate`` mode, "the first ``max_length`` tokens". Seed ``s`` takes the ``s``-th consecutive
passage (seed 0 the opening of the text), so several seeds are several documents: each starts at a word
and runs for as many characters as fit (:func:`longctx.evaluate.fit_length` over the number of
characters), so it may end mid-word, as YaRN's token truncation does.

**The windows.** The passage's tokens ``x_1 … x_n`` (no special tokens) are read in windows that begin
every ``stride`` tokens; each window holds at most ``W − 1`` text tokens after a prepended BOS (``W`` =
``window``, default: the case's length, i.e. one pass). Window ``j`` covers ``x[b_j : e_j]`` with
``b_j = j·S`` and ``e_j = min(b_j + W − 1, n)``, and scores only its last ``e_j − e_{j−1}`` tokens — those
no earlier window scored — each predicted from everything before it in the window:

``NLL(x_t) = −log p(x_t | BOS, x_{b_j} … x_{t−1})``.

So every token is scored exactly once, the first one from BOS alone, and each token after the first
window sees at least ``W − 1 − S`` tokens of context. ``S`` must be ``≤ W − 1``.

**What is reported.** ``nll`` — the token-weighted mean of all ``n`` NLLs; ``ppl = exp(nll)``;
``ppl_windows = exp(mean of the per-window mean NLLs)`` — YaRN's own aggregate, which weights windows
rather than tokens (the two agree with a single window); and ``nll_b0 … nll_b{B−1}``, the mean NLL of the
tokens in ``B`` equal slices of the passage (by position ``t``), so that "perplexity against position"
can be plotted per bucket (:func:`longctx.plugins.perplexity.figures.nll_by_position`). The
token-weighted mean of the bucket means is ``nll``.

**The score.** Perplexity is unbounded, and every other task's score is in ``[0, 1]`` with higher
better, so ``score = 1 / ppl = exp(−nll)`` — the geometric-mean probability the model gives each token
(1.0 for a model that predicts the text perfectly). Means of scores over seeds are therefore means of
``1/ppl``; for the perplexity of a cell use ``exp`` of the mean ``nll`` metric.

**Memory.** The composed pipeline's model runs each window once through :meth:`Pipeline.forward` (with
a fresh cache from its KV store, so KV techniques take part) asking only for the last position's
logits and for the final hidden states; the output head is then applied to the scored positions in
chunks of ``chunk`` rows, so an 8k-token window of Gemma 3 (262k-token vocabulary) never materialises
the 8.6 GB of full fp32 logits. The head is checked against the model's own last logits each window.

Goldman et al. 2024, "Is It Really Long Context if All You Need Is Retrieval?", arXiv:2407.00402: high
diffusion (the information that predicts a token is spread through the preceding text, not marked) and
high scope (every token of the passage is predicted, so the whole context can matter).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import attrs
import torch

from longctx.errors import InputError, LongctxError
from longctx.evaluate import Case, fit_length
from longctx.haystack import DEFAULT_PROSE, prose_text
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range, optional

_WORD = re.compile(r"\S+")
#: (tokenizer fingerprint, path, length, tolerance) -> words in the first passage (where seed 1 starts)
_FIRST_WORDS: dict[tuple[str, str, int, float], int] = {}


@attrs.frozen
class PerplexityConfig:
    """The text, the sliding window and the position buckets."""

    path: str = attrs.field(
        default=DEFAULT_PROSE,
        metadata={"help": f"a UTF-8 text file, or {DEFAULT_PROSE!r} (the bundled novel)"},
    )
    window: int | None = attrs.field(
        default=None,
        validator=optional(at_least(2)),
        metadata={"help": "tokens per forward pass, BOS included (none = the case's length: one pass)"},
    )
    stride: int = attrs.field(
        default=256, validator=at_least(1), metadata={"help": "tokens between window starts (YaRN: 256)"}
    )
    buckets: int = attrs.field(
        default=8, validator=at_least(1), metadata={"help": "position buckets for the per-position NLL"}
    )
    tolerance: float = attrs.field(
        default=0.01,
        validator=in_range(0.0, 1.0),
        metadata={"help": "how far below the target length a passage may stay (fraction)"},
    )
    chunk: int = attrs.field(
        default=256, validator=at_least(1), metadata={"help": "positions per output-head chunk (memory)"}
    )


def window_plan(n: int, window: int, stride: int, *, bos: bool = True) -> list[tuple[int, int, int]]:
    """YaRN's windows over ``n`` text tokens: ``(begin, end, scored)`` per window — the window reads text
    tokens ``[begin, end)`` (after a BOS when ``bos``) and scores its last ``scored`` of them.

    Every token is scored exactly once: the ``scored`` counts sum to ``n``. The stride only matters when
    the text is longer than one window.
    """
    span = window - 1 if bos else window
    if span < 1:
        raise InputError(f"perplexity: window={window} leaves no room for a text token")
    if stride > span and n > span:
        raise InputError(
            f"perplexity: stride={stride} is larger than the {span} text tokens a window of {window} holds; "
            "tokens between windows would never be scored — use stride <= window - 1"
        )
    plan: list[tuple[int, int, int]] = []
    prev_end = 0
    for begin in range(0, n, stride):
        end = min(begin + span, n)
        plan.append((begin, end, end - prev_end))
        prev_end = end
        if end == n:
            break
    return plan


def bucket_edges(n: int, buckets: int) -> list[int]:
    """Boundaries of ``buckets`` near-equal slices of positions ``0 … n−1`` (``buckets + 1`` numbers)."""
    return [round(b * n / buckets) for b in range(buckets + 1)]


def _head(model: Any) -> tuple[Any, float | None]:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise InputError(
            f"perplexity needs a causal language model with an output head; {type(model).__name__} has none"
        )
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return head, getattr(cfg, "final_logit_softcapping", None)


def _logits(head: Any, cap: float | None, hidden: torch.Tensor) -> torch.Tensor:
    logits = head(hidden).float()
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def window_nll(pipeline: Any, input_ids: torch.Tensor, scored: int, *, chunk: int = 256) -> torch.Tensor:
    """NLL (nats, float64) of the last ``scored`` tokens of ``input_ids`` (``(1, T)``), each predicted from
    the tokens before it, with one forward pass of the composed pipeline and the head applied in chunks."""
    model = pipeline.model
    head, cap = _head(model)
    out = pipeline.forward(input_ids, output_hidden_states=True, logits_to_keep=1)
    if getattr(out, "logits", None) is None or not getattr(out, "hidden_states", None):
        raise InputError(f"perplexity needs a causal language model; {type(model).__name__} returns no logits")
    hidden = out.hidden_states[-1][0]  # (T, d): the final (normed) hidden states
    last = _logits(head, cap, hidden[-1:])[0]
    if not torch.allclose(last, out.logits[0, -1].float(), rtol=1e-3, atol=1e-3):
        raise LongctxError(
            f"perplexity: applying the output head of {type(model).__name__} to its last hidden states does not "
            "reproduce its logits, so the chunked cross-entropy would be wrong for this model"
        )
    t = input_ids.shape[1]
    targets = input_ids[0, t - scored :]
    # the logits at position p predict token p + 1: positions t−scored−1 … t−2
    src = hidden[t - scored - 1 : t - 1]
    nll = torch.empty(scored, dtype=torch.float64)
    for i in range(0, scored, chunk):
        logits = _logits(head, cap, src[i : i + chunk])
        nll[i : i + chunk] = (
            torch.nn.functional.cross_entropy(logits, targets[i : i + chunk].to(logits.device), reduction="none")
            .double()
            .cpu()
        )
        del logits
    return nll


def token_nlls(pipeline: Any, text: str, *, window: int, stride: int, chunk: int = 256) -> list[torch.Tensor]:
    """The NLLs of the tokens of ``text`` under YaRN's sliding windows (:func:`window_plan`), one tensor
    per window; concatenated, one NLL per token in order.

    BOS (when the tokenizer has one) starts every window and is never scored; without a BOS the text's
    first token has nothing to be predicted from and is not scored either."""
    tok = pipeline.tokenizer
    ids = tok(text, add_special_tokens=False, return_tensors="pt", verbose=False)["input_ids"][0]
    bos = getattr(tok, "bos_token_id", None)
    n = int(ids.shape[0])
    if n < (1 if bos is not None else 2):
        raise InputError("perplexity: the passage has too few tokens to score")
    device = getattr(pipeline.model, "device", torch.device("cpu"))
    out = []
    for begin, end, scored in window_plan(n, window, stride, bos=bos is not None):
        piece = ids[begin:end]
        if bos is not None:
            piece = torch.cat([torch.tensor([bos], dtype=ids.dtype), piece])
        elif begin == 0:
            scored -= 1
        with torch.inference_mode():
            out.append(window_nll(pipeline, piece[None].to(device), scored, chunk=chunk))
    return out


class Perplexity:
    """Sliding-window perplexity of a passage, with per-position-bucket NLL (an evaluate()-task)."""

    name = "perplexity"
    tags = MappingProxyType({"diffusion": "high", "scope": "high"})
    #: the passage does not depend on depth: built once per length
    depth_sensitive = False

    def __init__(self, config: PerplexityConfig | None = None, ctx: Any = None) -> None:
        self.config = config or PerplexityConfig()

    def _words(self) -> tuple[str, list[tuple[int, int]]]:
        text = prose_text(self.config.path)
        spans = [m.span() for m in _WORD.finditer(text)]
        if not spans:
            raise InputError(f"perplexity: the text {self.config.path!r} has no words")
        return text, spans

    def cases(self, tokenizer: Any, *, length: int, depth: float, seed: int) -> Iterator[Case]:
        """One passage of ``length`` tokens (BOS included): the ``seed``-th consecutive one of the text."""
        if not 0.0 <= depth <= 1.0:
            raise InputError(f"perplexity: depth must be between 0 and 1, got {depth}")
        if seed < 0:
            raise InputError(f"perplexity: seed must be >= 0, got {seed}")
        text, spans = self._words()

        def fit(word: int):
            begin = spans[word][0]
            room = len(text) - begin
            # with ample text left (more characters than 8 × the target tokens: enough, as a token holds at
            # least one character), let fit_length's probe-and-secant search run unbounded — it never
            # tokenizes far more than the target; near the end of the text, bound it there
            hi = None if room > 8 * length + 64 else room
            try:
                return fit_length(
                    lambda n: text[begin : begin + n],
                    tokenizer,
                    length,
                    lo=1,
                    hi=hi,
                    tolerance=self.config.tolerance,
                )
            except InputError:
                raise InputError(
                    f"perplexity: a length of {length} tokens is too short for one character of the text plus BOS"
                ) from None

        word = 0
        if seed:  # passage s starts s passages into the text (counted in the first passage's words), wrapping
            from longctx.evaluate import tokenizer_fingerprint

            key = (tokenizer_fingerprint(tokenizer), self.config.path, length, self.config.tolerance)
            if key not in _FIRST_WORDS:
                _FIRST_WORDS[key] = max(1, len(_WORD.findall(fit(0).text)))
            per = _FIRST_WORDS[key]
            word = (seed * per) % max(1, len(spans) - per)
        got = fit(word)
        if length - got.tokens > self.config.tolerance * length:
            raise InputError(
                f"perplexity: the text {self.config.path!r} has only {got.tokens} tokens from word {word} on, "
                f"fewer than the length {length}; use a longer text (path=) or a shorter length"
            )
        window = self.config.window or length
        yield Case(
            task=self.name,
            prompt=got.text,
            answer="1",
            target_tokens=length,
            actual_tokens=got.tokens,
            depth=depth,
            seed=seed,
            max_new_tokens=0,
            meta={
                "path": self.config.path,
                "first_word": word,
                "char_start": spans[word][0],
                "chars": got.n,
                "window": window,
                "stride": self.config.stride,
                "buckets": self.config.buckets,
            },
        )

    def evaluate(self, pipeline: Any, case: Case) -> dict[str, Any]:
        """Score the passage with the pipeline's model: ``score = 1/ppl``, NLL per bucket in ``metrics``."""
        window = int(case.meta.get("window") or case.target_tokens)
        t0 = time.perf_counter()
        windows = token_nlls(pipeline, case.prompt, window=window, stride=self.config.stride, chunk=self.config.chunk)
        seconds = time.perf_counter() - t0
        nll = torch.cat(windows)
        n = int(nll.shape[0])
        mean = float(nll.mean())
        ppl = math.exp(mean)
        window_means = [float(w.mean()) for w in windows if w.numel()]
        metrics: dict[str, float] = {
            "nll": mean,
            "ppl": ppl,
            "ppl_windows": math.exp(sum(window_means) / len(window_means)),
            "tokens": float(n),
            "windows": float(len(windows)),
        }
        edges = bucket_edges(n, self.config.buckets)
        for b in range(self.config.buckets):
            lo, hi = edges[b], edges[b + 1]
            if hi > lo:
                metrics[f"nll_b{b}"] = float(nll[lo:hi].mean())
        return {
            "score": 1.0 / ppl,
            "prediction": f"{ppl:.6g}",
            "seconds": seconds,
            "prompt_tokens": n + (1 if getattr(pipeline.tokenizer, "bos_token_id", None) is not None else 0),
            "new_tokens": 0,
            "metrics": metrics,
            "bucket_edges": edges,
        }

    def score(self, prediction: str, case: Case) -> float:
        """``1 / ppl`` for a prediction that is a perplexity (what :meth:`evaluate` predicts), e.g. ``"12.5"``."""
        try:
            ppl = float(prediction)
        except (TypeError, ValueError):
            raise InputError(
                f"perplexity scores a perplexity (a number >= 1), not {prediction!r}; it is evaluated by "
                "evaluate(pipeline, case), not by generating text"
            ) from None
        if not ppl >= 1.0:
            raise InputError(f"a perplexity is at least 1, got {prediction!r}")
        return 1.0 / ppl


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance-kit contract of ``perplexity`` (imported only when asked)."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.plugins.perplexity.contract import PerplexityContract

        return (PerplexityContract,)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_evaluators(register):
    register(
        "perplexity",
        config=PerplexityConfig,
        build=Perplexity,
        summary="Sliding-window perplexity of a local text (YaRN's protocol), with NLL per position bucket",
        paper="Peng et al. 2023 (YaRN), arXiv:2309.00071; Chen et al. 2023 (PI), arXiv:2306.15595",
    )
