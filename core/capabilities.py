"""What a loaded model can take: detected once, checked before anything is built."""

from __future__ import annotations

from typing import Any

import attrs
import torch.nn as nn


def text_config(config: Any) -> Any:
    """The decoder/text config of ``config`` (multimodal configs nest it)."""
    get = getattr(config, "get_text_config", None)
    return get() if callable(get) else config


def rotary_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(qualified name, module)`` of every rotary-embedding module (those carrying a RoPE config)."""
    out = []
    for name, mod in model.named_modules():
        if hasattr(mod, "rope_type") and hasattr(mod, "config") and callable(getattr(mod, "forward", None)):
            out.append((name, mod))
    return out


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """Every self-attention module that dispatches through transformers' attention interface."""
    return [
        m
        for m in model.modules()
        if hasattr(m, "layer_idx") and hasattr(m, "scaling") and hasattr(m, "config") and hasattr(m, "k_proj")
    ]


@attrs.frozen
class ModelInfo:
    """Capabilities of a model, as techniques declare them in ``capabilities=``."""

    model_type: str
    architecture: str
    rope: bool
    absolute_positions: bool
    causal_lm: bool
    layer_types: tuple[str, ...]
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    max_position_embeddings: int | None
    sliding_window: int | None
    attn_implementation: str | None

    @property
    def gqa(self) -> bool:
        return self.num_kv_heads < self.num_heads

    @property
    def sliding(self) -> bool:
        return "sliding_attention" in self.layer_types

    @property
    def capabilities(self) -> frozenset[str]:
        caps = set()
        if self.rope:
            caps.add("rope")
        if self.absolute_positions:
            caps.add("absolute-positions")
        if self.causal_lm:
            caps.add("causal-lm")
        if self.gqa:
            caps.add("gqa")
        if self.sliding:
            caps.add("sliding-layers")
        return frozenset(caps)

    def to_json(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["layer_types"] = sorted(set(self.layer_types))
        d["capabilities"] = sorted(self.capabilities)
        return d

    @classmethod
    def of(cls, model: nn.Module) -> ModelInfo:
        cfg = text_config(model.config)
        n_layers = getattr(cfg, "num_hidden_layers", 0) or 0
        layer_types = tuple(getattr(cfg, "layer_types", None) or ("full_attention",) * n_layers)
        heads = getattr(cfg, "num_attention_heads", 0) or 0
        kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
        head_dim = getattr(cfg, "head_dim", None) or ((getattr(cfg, "hidden_size", 0) or 0) // max(heads, 1))
        archs = getattr(model.config, "architectures", None) or [type(model).__name__]
        absolute = any(isinstance(getattr(m, "position_embeddings", None), nn.Embedding) for m in model.modules())
        return cls(
            model_type=getattr(cfg, "model_type", "unknown"),
            architecture=archs[0],
            rope=bool(rotary_modules(model)),
            absolute_positions=absolute,
            causal_lm=hasattr(model, "generate")
            and bool(getattr(cfg, "is_decoder", False) or "CausalLM" in type(model).__name__),
            layer_types=layer_types,
            num_layers=n_layers,
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            max_position_embeddings=getattr(cfg, "max_position_embeddings", None),
            sliding_window=getattr(cfg, "sliding_window", None) if "sliding_attention" in layer_types else None,
            attn_implementation=getattr(cfg, "_attn_implementation", None),
        )
