"""``sdpa``: the model's own attention implementation, unchanged (the default attention technique).

Dense scaled dot-product attention as in Vaswani et al. 2017, "Attention Is All You Need",
arXiv:1706.03762, computed by PyTorch's fused kernel through transformers' ``sdpa`` implementation.
"""

from __future__ import annotations

from typing import Any

import attrs

from longctx.capabilities import text_config
from longctx.hooks import hookimpl


@attrs.frozen
class SdpaConfig:
    """No parameters."""


class Sdpa:
    """Keeps the model's attention. (A model loaded with ``eager`` stays eager: nothing is changed.)"""

    def __init__(self, config: SdpaConfig, ctx: Any = None) -> None:
        self.config = config

    def apply(self, ctx: Any) -> dict[str, Any]:
        return {"changed": False, "implementation": text_config(ctx.model.config)._attn_implementation}


@hookimpl
def lc_register_attention(register):
    register(
        "sdpa",
        config=SdpaConfig,
        build=Sdpa,
        summary="Dense attention of the model, unchanged (default)",
        paper="Vaswani et al. 2017, Attention Is All You Need, arXiv:1706.03762",
    )
