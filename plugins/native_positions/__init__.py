"""``native``: the model's own position handling, unchanged (the default positional technique).

Reference: Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding",
arXiv:2104.09864, for RoPE models; Vaswani et al. 2017 (arXiv:1706.03762) for absolute positions.
"""

from __future__ import annotations

from typing import Any

import attrs

from longctx.hooks import hookimpl


@attrs.frozen
class NativeConfig:
    """No parameters: the model keeps the positions it was trained with."""


class NativePositions:
    """Leaves the positional machinery untouched."""

    def __init__(self, config: NativeConfig, ctx: Any = None) -> None:
        self.config = config

    def apply(self, ctx: Any) -> dict[str, Any]:
        return {"changed": False}


@hookimpl
def lc_register_positional_encodings(register):
    register(
        "native",
        config=NativeConfig,
        build=NativePositions,
        summary="The model's own positions, unchanged (default)",
        paper="Su et al. 2021, RoFormer, arXiv:2104.09864",
    )
