"""``ape-interpolation``: position-interpolated absolute position embeddings (LongEmbed's plug-and-play PI).

Zhu, Wang, Yang, Zhang, Wei & Li 2024, "LongEmbed: Extending Embedding Models for Long Context
Retrieval", arXiv:2404.12096 (§"plug-and-play" context extension for models with absolute position
embeddings); Position Interpolation itself is Chen et al. 2023, arXiv:2306.15595.

Method: an encoder with a learned table ``E ∈ R^{L×d}`` is stretched to ``L' = ⌊s·L⌋`` rows by reading the
trained table at the squeezed position ``j/s``:

``E'[j] = (1 − α)·E[⌊j/s⌋] + α·E[⌊j/s⌋ + 1]``,  ``α = j/s − ⌊j/s⌋``,

with the source position clamped at the last trained row ``L − 1`` (the last ``s − 1`` rows repeat it).
Rows at integer ``j/s`` are the trained rows exactly; ``s = 1`` leaves the table unchanged. ``mode=nearest``
takes ``E[⌊j/s + ½⌋]`` instead. No fine-tuning is done (LongEmbed reports plug-and-play PI and further
gains with tuning).
"""

from __future__ import annotations

from typing import Any

import attrs
import torch

from longctx.ape import MODES, install_position_tables
from longctx.hooks import hookimpl
from longctx.params import at_least, one_of


@attrs.frozen
class APEInterpolationConfig:
    """The scale ``s = L'/L`` and how fractional positions are read."""

    factor: float = attrs.field(
        default=4.0, validator=at_least(1.0), metadata={"help": "scale s = L'/L of the position table (1 = unchanged)"}
    )
    mode: str = attrs.field(
        default="linear", validator=one_of(*MODES), metadata={"help": "read E at j/s linearly or at the nearest row"}
    )


class APEInterpolation:
    """Installs an ``⌊s·L⌋``-row table ``E'[j] = E(j/s)`` in place of every absolute position table."""

    def __init__(self, config: APEInterpolationConfig, ctx: Any = None) -> None:
        self.config = config

    def positions(self, n: int) -> torch.Tensor:
        """Source positions ``j/s`` for ``j < ⌊s·n⌋`` of a table of ``n`` trained rows."""
        s = float(self.config.factor)
        size = int(s * n + 1e-9)
        return torch.arange(size, dtype=torch.float64) / s

    def apply(self, ctx: Any) -> dict[str, Any]:
        changes = install_position_tables(ctx, self.positions, mode=self.config.mode, technique="ape-interpolation")
        return {"factor": self.config.factor, "mode": self.config.mode, **changes}


@hookimpl
def lc_register_positional_encodings(register):
    register(
        "ape-interpolation",
        config=APEInterpolationConfig,
        build=APEInterpolation,
        summary="Interpolated absolute position table: E'[j] = E at j/s (LongEmbed plug-and-play PI)",
        paper="Zhu et al. 2024 (LongEmbed), arXiv:2404.12096; Chen et al. 2023, arXiv:2306.15595",
        capabilities=("absolute-positions",),
    )
