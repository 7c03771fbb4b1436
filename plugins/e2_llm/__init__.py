"""``e2-llm``: E²-LLM — train once on short sequences with RoPE augmented by a per-sample scale and offset.

Liu, Bai, Zhang, Zhang, Zhang, Zhang, Wang, Que, Chen, Su, Ge, Fu, Chen & Zheng 2024, "E²-LLM: Efficient
and Extreme Length Extension of Large Language Models", arXiv:2401.06951 (Findings of ACL 2024), §3.

Method. Position interpolation (PI) with scale ``g`` rotates a token at position ``m`` as if it were at
``m/g``, so a model trained on ``R`` positions reads ``g·R`` tokens. E²-LLM fine-tunes **once**, on
sequences of the short training length ``R`` (4096 in the paper), and makes the model robust to many
``g`` at once with two augmentations drawn independently for every training sample:

* **scale** ``g``: drawn from a predefined distribution (here uniform over the integers
  ``min_scale … max_scale``), so the model sees many position densities ``1/g``;
* **position offset** ``t``: with positions ``m/g`` alone, a short sample only covers relative distances
  below ``R/g``. The positions of the tokens from ``k = ⌊split·R⌋`` on are shifted by ``t``, drawn
  uniformly from ``[0, (g − 1)·R]``, so relative distances up to ``g·R − 1`` (``< R`` after scaling) — the
  range an inference at length ``g·R`` needs — appear in training:

      m'_i = i                 for i < k
      m'_i = i + t             for i ≥ k            rotary position: m'_i / g

  (RoPE depends on position differences only, so the offset is applied to part of the sequence: a shift
  of every position would change nothing.)

At inference the model is run with plain PI and ``g = L/R`` for an evaluation length ``L``: one
fine-tuned model serves several windows by changing that one number.

What this plugin offers:

(a) :func:`e2_llm_positions`, :func:`sample_scale_offset` and :func:`e2_llm_batch` — pure, seeded
    functions giving a trainer the position ids (``m'``), the scales ``g`` and the rotary positions
    ``m'/g`` of a batch (per-row ``g`` is fine: float ``position_ids`` carry it);
(b) the augmenter ``e2-llm`` (family *augmentation*): packs token-id documents into records of ``R``
    tokens and emits each with its ``scale``, ``offset``, ``position_ids`` and ``scaled_position_ids`` in
    ``meta``;
(c) the positional component ``e2-llm`` (family *positional*): PI with ``factor = g`` for inference.

Feed ``scaled_position_ids`` (float) as ``position_ids`` with an explicit ``attention_mask`` (without one,
transformers reads non-consecutive positions as packed documents); that is the same forward as a model
carrying PI with factor ``g`` given the integer ``position_ids`` (tested).

Source note: the paper's text was not available to this implementation offline; the distributions of
``g`` and ``t`` and the two-part offset above are our reading of §3 ("augmentation on the scale
parameter" and "on the position index"), made explicit and configurable (``min_scale``, ``max_scale``,
``max_offset``, ``split``) rather than fixed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs
import numpy as np
import torch

from longctx.errors import ParameterError
from longctx.hooks import hookimpl
from longctx.params import at_least, in_range, one_of, optional, positive
from longctx.rope import LAYER_CHOICES, ScaledRope, default_inv_freq, fp32_rotation_field, rope_params
from longctx.text import Record

ROPE_TYPE = "longctx_e2_llm"
PAPER = "Liu et al. 2024, E²-LLM: Efficient and Extreme Length Extension of LLMs, arXiv:2401.06951"

__all__ = [
    "E2LLMAugmenter",
    "E2LLMConfig",
    "E2LLMInference",
    "E2LLMInferenceConfig",
    "e2_llm_batch",
    "e2_llm_positions",
    "sample_scale_offset",
]


def _opt_id(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ParameterError(f"{attribute.name} must be a non-negative token id or none, got {value!r}")


# -- (a) the pure functions ------------------------------------------------------------------------------


def e2_llm_positions(n: int, *, scale: float, offset: int, split: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(m', m'/g)`` for ``n`` tokens: ``m'_i = i`` before ``k = ⌊split·n⌋``, ``i + t`` from ``k`` on.

    Integer position ids (int64) and the rotary positions the model should see under scale ``g``
    (float64; cast to float32 on the way into the model).
    """
    if n < 0 or offset < 0 or scale < 1 or not 0.0 <= split <= 1.0:
        raise ParameterError(
            f"e2-llm: need n ≥ 0, offset t ≥ 0, scale g ≥ 1, 0 ≤ split ≤ 1; got n={n}, t={offset}, g={scale}, "
            f"split={split}"
        )
    k = int(split * n)
    ids = np.arange(n, dtype=np.int64)
    ids[k:] += int(offset)
    return ids, ids / float(scale)


def sample_scale_offset(
    rng: np.random.Generator,
    *,
    seq_len: int,
    min_scale: int = 1,
    max_scale: int = 20,
    max_offset: int | None = None,
) -> tuple[int, int]:
    """One draw of ``(g, t)``: ``g`` uniform over ``min_scale … max_scale``, then ``t`` uniform over
    ``0 … T`` with ``T = (g − 1)·R`` (``R = seq_len``) or ``min(T, max_offset)``."""
    if not 1 <= min_scale <= max_scale:
        raise ParameterError(f"e2-llm: need 1 ≤ min_scale ≤ max_scale, got {min_scale}, {max_scale}")
    g = int(rng.integers(min_scale, max_scale + 1))
    top = (g - 1) * int(seq_len)
    if max_offset is not None:
        top = min(top, int(max_offset))
    t = int(rng.integers(0, top + 1))
    return g, t


def _rng(*key: int) -> np.random.Generator:
    if any(k < 0 for k in key):
        raise ParameterError(f"e2-llm: seeds and indices must be >= 0, got {key}")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key))))


def e2_llm_batch(
    batch_size: int,
    seq_len: int,
    *,
    seed: int = 0,
    step: int = 0,
    min_scale: int = 1,
    max_scale: int = 20,
    max_offset: int | None = None,
    split: float = 0.5,
) -> dict[str, torch.Tensor]:
    """The E²-LLM augmentation of one training batch, deterministic in ``(seed, step)``.

    Row ``r`` draws ``(g, t)`` from ``PCG64(SeedSequence([seed, step, r]))``. Returns ``position_ids``
    (``(B, R)`` int64, ``m'``), ``scale`` (``(B,)`` float32, ``g``), ``offset`` (``(B,)`` int64, ``t``) and
    ``scaled_position_ids`` (``(B, R)`` float32, ``m'/g``: pass these as the model's ``position_ids``,
    with an explicit ``attention_mask``).
    """
    ids, scaled, gs, ts = [], [], [], []
    for r in range(batch_size):
        g, t = sample_scale_offset(
            _rng(seed, step, r), seq_len=seq_len, min_scale=min_scale, max_scale=max_scale, max_offset=max_offset
        )
        m, ms = e2_llm_positions(seq_len, scale=g, offset=t, split=split)
        ids.append(m)
        scaled.append(ms)
        gs.append(g)
        ts.append(t)
    return {
        "position_ids": torch.as_tensor(np.stack(ids) if ids else np.zeros((0, seq_len), np.int64)),
        "scale": torch.tensor(gs, dtype=torch.float32),
        "offset": torch.tensor(ts, dtype=torch.int64),
        "scaled_position_ids": torch.as_tensor(
            np.stack(scaled) if scaled else np.zeros((0, seq_len)), dtype=torch.float32
        ),
    }


# -- (b) the augmenter -------------------------------------------------------------------------------------


@attrs.frozen
class E2LLMConfig:
    """The training length ``R`` and the distributions of the scale ``g`` and the offset ``t``."""

    seq_len: int = attrs.field(
        default=4096, validator=positive, metadata={"help": "R: tokens per training record (paper: 4096)"}
    )
    min_scale: int = attrs.field(default=1, validator=at_least(1), metadata={"help": "smallest scale g drawn"})
    max_scale: int = attrs.field(
        default=20, validator=at_least(1), metadata={"help": "largest scale g drawn (g uniform over the integers)"}
    )
    max_offset: int | None = attrs.field(
        default=None,
        validator=optional(at_least(0)),
        metadata={"help": "cap on the offset t (none: (g − 1)·R, positions stay below g·R)"},
    )
    split: float = attrs.field(
        default=0.5,
        validator=in_range(0.0, 1.0),
        metadata={"help": "fraction of a record before the offset starts (tokens from ⌊split·n⌋ on get +t)"},
    )
    eod_token: int | None = attrs.field(
        default=None, validator=_opt_id, metadata={"help": "token appended to every document (none = no EOD)"}
    )

    def __attrs_post_init__(self) -> None:
        if self.max_scale < self.min_scale:
            raise ParameterError(f"max_scale ({self.max_scale}) must be >= min_scale ({self.min_scale})")


def pack(documents: Iterable[Sequence[int]], seq_len: int, eod_token: int | None = None) -> Iterator[list[int]]:
    """Lazily pack documents (each followed by ``eod_token`` when set) into runs of exactly ``seq_len``
    tokens, the last one possibly shorter; a document that overflows continues in the next run, and a
    document is pulled only when the current run needs it."""
    run: list[int] = []
    for doc in documents:
        toks = [int(x) for x in np.asarray(doc, dtype=np.int64).reshape(-1)]
        if not toks:
            continue
        if eod_token is not None:
            toks.append(int(eod_token))
        while toks:
            take = seq_len - len(run)
            run.extend(toks[:take])
            toks = toks[take:]
            if len(run) == seq_len:
                yield run
                run = []
    if run:
        yield run


class E2LLMAugmenter:
    """Streams records of ``R`` packed tokens, each with its own E²-LLM scale ``g`` and offset ``t``."""

    def __init__(self, config: E2LLMConfig, ctx: Any = None) -> None:
        self.config = config

    def record(self, tokens: Sequence[int], *, seed: int = 0, index: int = 0) -> Record:
        """Record ``index`` of ``seed`` for ``tokens`` (pure: same inputs, same record).

        ``loss_mask`` trains every token but the first; ``meta`` holds ``scale`` (``g``), ``offset``
        (``t``), ``split_at`` (``k``), ``position_ids`` (``m'``), ``scaled_position_ids`` (``m'/g``),
        ``index`` and ``seed``.
        """
        c = self.config
        g, t = sample_scale_offset(
            _rng(seed, index), seq_len=c.seq_len, min_scale=c.min_scale, max_scale=c.max_scale, max_offset=c.max_offset
        )
        n = len(tokens)
        ids, scaled = e2_llm_positions(n, scale=g, offset=t, split=c.split)
        meta = {
            "index": index,
            "seed": seed,
            "scale": g,
            "offset": t,
            "split_at": int(c.split * n),
            "position_ids": ids.tolist(),
            "scaled_position_ids": scaled.tolist(),
        }
        mask = [0] + [1] * (n - 1) if n else []
        return Record(input_ids=[int(x) for x in tokens], loss_mask=mask, meta=meta)

    def augment(self, documents: Iterable[Sequence[int]], *, seed: int = 0) -> Iterator[Record]:
        """Yield one record per ``R`` packed document tokens, lazily."""
        _rng(seed, 0)  # validate the seed before consuming anything
        for index, tokens in enumerate(pack(documents, self.config.seq_len, self.config.eod_token)):
            yield self.record(tokens, seed=seed, index=index)


# -- (c) inference: position interpolation with the scale g -------------------------------------------------


@attrs.frozen
class E2LLMInferenceConfig:
    """The scale ``g`` used at inference: ``g = L/R`` for an evaluation length ``L``."""

    factor: float = attrs.field(
        default=2.0,
        validator=at_least(1.0),
        metadata={"help": "g = L/R (evaluation over training length); 1 = unchanged"},
    )
    layers: str = attrs.field(
        default="full", validator=one_of(*LAYER_CHOICES), metadata={"help": "layer types to change"}
    )
    fp32_rotation: bool = fp32_rotation_field()


def e2_llm_inv_freq(
    config: Any, device: Any = None, seq_len: int | None = None, layer_type: str | None = None
) -> tuple[torch.Tensor, float]:
    """ROPE_INIT_FUNCTIONS-compatible: ``θ_i / g`` (rotating ``m`` by ``θ/g`` is rotating ``m/g`` by ``θ``)."""
    g = float(rope_params(config, layer_type)["factor"])
    return default_inv_freq(config, layer_type, device) / g, 1.0


class E2LLMInference(ScaledRope):
    """Installs E²-LLM's inference-time RoPE: position interpolation with the scale ``g``."""

    rope_type = ROPE_TYPE
    inv_freq = staticmethod(e2_llm_inv_freq)


def __getattr__(name: str) -> Any:
    """``LONGCTX_CONTRACTS``: the conformance-kit contracts of both ``e2-llm`` components."""
    if name == "LONGCTX_CONTRACTS":
        from longctx.plugins.e2_llm.contract import E2LLMAugmentationContract, E2LLMPositionalContract

        return (E2LLMAugmentationContract, E2LLMPositionalContract)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@hookimpl
def lc_register_augmenters(register):
    register(
        "e2-llm",
        config=E2LLMConfig,
        build=E2LLMAugmenter,
        summary="E²-LLM training records: R-token samples, each with its own RoPE scale g and position offset t",
        paper=PAPER,
    )


@hookimpl
def lc_register_positional_encodings(register):
    register(
        "e2-llm",
        config=E2LLMInferenceConfig,
        build=E2LLMInference,
        summary="E²-LLM inference: position interpolation with g = L/R after training with scale/offset augmentation",
        paper=PAPER,
        capabilities=("rope",),
    )
