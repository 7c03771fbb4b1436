"""CLEX training: sample ``t``, extrapolate positions, integrate, and update only the ODE parameters.

Chen et al. 2023, arXiv:2310.16450, §3.3 ("position extrapolation" training), as the authors'
``CLEXScalingRotaryEmbedding.forward(..., do_train=True)`` does it:

1. Sample the scale factor ``t`` uniformly from the integers ``1 … t_max`` (once per step, shared by the
   batch).
2. Position extrapolation: a training sequence of ``n`` tokens stands in for one of ``t·n`` tokens. Its
   positions are ``0``, ``n − 2`` distinct sorted integers drawn from ``[1, t·n − 2]``, and ``t·n − 1`` —
   all divided by ``s = max(1, ⌊n/L⌋)`` when the sequences are longer than the window ``L`` — so the
   model sees the position range of a ``t·L``-token input. (The authors end with ``⌊t·n/s⌋ − 1``; we use
   ``(t·n − 1)/s``, which keeps the positions increasing; the two agree when ``n ≤ L``.)
3. Integrate the ODE from 1 to ``t`` with gradient, rotate with ``θ(t)``, and take the LM loss.

The authors fine-tune the whole model jointly; :func:`clex_training_step` trains the ODE alone (the
other parameters are frozen for the step), which is what a plugin that must not change the model's own
weights can offer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from longctx.errors import LongctxError, ParameterError
from longctx.plugins.clex.dynamics import parameters_of
from longctx.plugins.clex.rotary import clex_rotaries, forced_scale


def _hf_model(model: Any) -> nn.Module:
    from longctx.models import LoadedModel

    return model.model if isinstance(model, LoadedModel) else model


def _rotaries(model: nn.Module) -> list[nn.Module]:
    mods = clex_rotaries(model)
    if not mods:
        raise LongctxError(
            "clex: the model has no CLEX rotary module; compose it first, e.g. compose(model, 'positional=clex')"
        )
    return mods


def clex_parameters(model: Any) -> list[nn.Parameter]:
    """The ODE parameters (``ode_up_proj``, ``ode_down_proj``) of the CLEX installed on ``model`` — what
    to give the optimizer."""
    return parameters_of([m.clex for m in _rotaries(_hf_model(model))])


def sample_scale(max_factor: float, generator: torch.Generator | None = None) -> int:
    """``t`` uniform over the integers ``1 … ⌊t_max⌋`` (the authors' ``sample_random_times``)."""
    hi = math.floor(max_factor)
    return int(torch.randint(1, hi + 1, (1,), generator=generator).item())


def extrapolated_positions(n: int, t: float, *, window: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The (float) positions of an ``n``-token training sequence standing in for ``t·n`` tokens (step 2 of
    the module docstring). ``t = 1`` with ``n ≤ L`` gives ``0, 1, …, n − 1``."""
    if n < 2:
        raise ParameterError(f"clex training needs sequences of at least 2 tokens, got {n}")
    span = round(n * t)
    s = max(1, n // window)
    drawn = torch.randperm(span - 2, generator=generator)[: n - 2].sort().values + 1
    pos = torch.cat([torch.zeros(1, dtype=torch.long), drawn, torch.tensor([span - 1])])
    return pos.to(torch.float32) / s


def clex_lm_loss(model: Any, batch: Mapping[str, torch.Tensor], *, t: float, positions: torch.Tensor) -> torch.Tensor:
    """The causal-LM loss of ``batch`` (``input_ids``; optional ``attention_mask``, ``labels``) with every
    CLEX rotary module at scale ``t`` and the given per-token ``positions`` (float, shared by the batch).

    An explicit attention mask always goes in: non-consecutive positions without one are read by
    transformers as packed documents.
    """
    mdl = _hf_model(model)
    ids = batch["input_ids"]
    mask = batch.get("attention_mask")
    mask = torch.ones_like(ids) if mask is None else mask
    labels = batch.get("labels")
    if labels is None:
        labels = ids.masked_fill(mask == 0, -100)
    pos = positions.to(ids.device)[None, :].expand(ids.shape[0], -1)
    with forced_scale(mdl, t):
        out = mdl(input_ids=ids, attention_mask=mask, position_ids=pos, labels=labels, use_cache=False)
    return out.loss


def clex_training_step(
    model: Any,
    batch: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    generator: torch.Generator | None = None,
    t: float | None = None,
) -> dict[str, Any]:
    """One CLEX training step: sample ``t`` (unless given), extrapolate positions, integrate the ODE with
    gradient, take the LM loss and let ``optimizer`` update the ODE parameters only.

    Every other parameter of ``model`` is frozen for the step (``requires_grad`` restored after), so an
    optimizer over all parameters still changes only the ODE (optimizers skip parameters without a
    gradient). ``generator`` makes ``t`` and the positions reproducible. Returns ``{"loss", "t"}``.
    """
    mdl = _hf_model(model)
    rotaries = _rotaries(mdl)
    ode = parameters_of([m.clex for m in rotaries])
    ode_ids = {id(p) for p in ode}
    t_max = rotaries[0].clex_max_factor
    if t is None:
        t = float(sample_scale(t_max, generator))
    elif not 1.0 <= float(t) <= t_max:
        raise ParameterError(f"clex: the training scale t must lie in [1, {t_max:g}] (t_max), got {t}")
    n = int(batch["input_ids"].shape[1])
    positions = extrapolated_positions(n, float(t), window=rotaries[0].clex_window, generator=generator)
    frozen = [p for p in mdl.parameters() if id(p) not in ode_ids and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        for p in ode:
            p.requires_grad_(True)
        optimizer.zero_grad(set_to_none=True)
        loss = clex_lm_loss(mdl, batch, t=float(t), positions=positions)
        if loss.requires_grad:  # at t = 1 the frequencies are θ(1): nothing depends on the ODE
            loss.backward()
            optimizer.step()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return {"loss": float(loss.detach()), "t": float(t)}
