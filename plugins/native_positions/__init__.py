"""``native``: the model's own position handling, unchanged (the default positional technique).

Reference: Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary Position Embedding",
arXiv:2104.09864, for RoPE models; Vaswani et al. 2017 (arXiv:1706.03762) for absolute positions.

``fp32_rotation=true`` keeps the model's own RoPE frequencies but computes its rotation in float32 in a
bf16/fp16 model, casting only the rotated q and k back (Wang et al. 2024, "When Precision Meets
Position: BFloat16 Breaks Down RoPE in Long-Context Training", arXiv:2411.13476); see
:func:`longctx.rope.install_fp32_rotation`. It needs a RoPE model.
"""

from __future__ import annotations

from typing import Any

import attrs

from longctx.hooks import hookimpl
from longctx.rope import fp32_rotation_field, install_fp32_rotation


@attrs.frozen
class NativeConfig:
    """The model keeps the positions it was trained with; only the precision of its rotation can change."""

    fp32_rotation: bool = fp32_rotation_field()


class NativePositions:
    """Leaves the positional machinery untouched."""

    def __init__(self, config: NativeConfig, ctx: Any = None) -> None:
        self.config = config

    def apply(self, ctx: Any) -> dict[str, Any]:
        if self.config.fp32_rotation:
            return {"changed": True, "fp32_rotation": install_fp32_rotation(ctx)}
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
