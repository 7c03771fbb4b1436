"""``long-clip``: knowledge-preserved stretching of absolute position embeddings (Long-CLIP).

Zhang, Zhang, Zhang, Wang & Wang 2024, "Long-CLIP: Unlocking the Long-Text Capability of CLIP",
arXiv:2403.15378 (§3.2, knowledge-preserved stretching).

Method: the first positions of a learned table ``E ∈ R^{L×d}`` are the best trained, so the first ``k``
rows are kept exactly and only the rest are interpolated by a ratio ``λ``:

``E'[j] = E[j]`` for ``j < k``;  ``E'[j] = E(k + (j − k)/λ)`` for ``j ≥ k``,

where ``E(p) = (1 − α)·E[⌊p⌋] + α·E[⌊p⌋ + 1]``, ``α = p − ⌊p⌋``, clamped at the last trained row. The new
length is ``L' = k + (L − k)·λ`` (CLIP's 77 positions with ``k = 20, λ = 4`` become 248). ``λ = 1`` leaves
the table unchanged; ``k = 0`` is plain interpolation (``ape-interpolation``). The paper then fine-tunes on
long captions; here the stretch is applied without training.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from longctx.ape import install_position_tables
from longctx.errors import IncompatibleModelError
from longctx.hooks import hookimpl
from longctx.params import at_least, non_negative


@attrs.frozen
class LongCLIPConfig:
    """Named as in the paper: ``keep`` positions preserved (20) and the stretch ratio ``λ`` (4)."""

    keep: int = attrs.field(
        default=20, validator=non_negative, metadata={"help": "leading positions kept exactly as trained"}
    )
    factor: float = attrs.field(
        default=4.0, validator=at_least(1.0), metadata={"help": "stretch ratio λ of the remaining positions"}
    )


def long_clip_positions(n: int, keep: int, factor: float) -> torch.Tensor:
    """Source positions of the ``keep + round((n − keep)·λ)`` new rows of a table of ``n`` trained rows."""
    size = keep + int((n - keep) * float(factor) + 1e-9)
    j = torch.arange(size, dtype=torch.float64)
    return torch.where(j < keep, j, keep + (j - keep) / float(factor))


class LongCLIP:
    """Installs the knowledge-preserved stretched table in place of every absolute position table."""

    def __init__(self, config: LongCLIPConfig, ctx: Any = None) -> None:
        self.config = config

    def positions(self, n: int) -> torch.Tensor:
        if self.config.keep >= n:
            raise IncompatibleModelError(
                f"long-clip: keep={self.config.keep} leaves nothing to stretch in a table of {n} positions"
            )
        return long_clip_positions(n, self.config.keep, self.config.factor)

    def apply(self, ctx: Any) -> dict[str, Any]:
        changes = install_position_tables(ctx, self.positions, technique="long-clip")
        return {"keep": self.config.keep, "factor": self.config.factor, **changes}


@hookimpl
def lc_register_positional_encodings(register):
    register(
        "long-clip",
        config=LongCLIPConfig,
        build=LongCLIP,
        summary="Knowledge-preserved stretching: keep the first positions, interpolate the rest by λ (Long-CLIP)",
        paper="Zhang et al. 2024 (Long-CLIP), arXiv:2403.15378",
        capabilities=("absolute-positions",),
    )
