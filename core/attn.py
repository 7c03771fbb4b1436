"""Helpers shared by attention plugins that replace the attention function on some layers only."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import attrs
import torch
import torch.nn as nn
from transformers import AttentionInterface


@attrs.frozen
class Passthrough:
    """Per-layer context of a module that keeps the model's original attention function."""

    fn: Callable[..., tuple[torch.Tensor, torch.Tensor | None]]


def original_attention(module: nn.Module, implementation: str) -> Callable[..., Any]:
    """The function the module itself would call: ``ALL_ATTENTION_FUNCTIONS.get_interface(impl,
    eager_attention_forward)`` as the modeling code resolves it (plain lookup where ``get_interface``
    does not exist), with the modeling file's own eager function for ``eager``."""
    eager = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    registry = AttentionInterface()
    if hasattr(registry, "get_interface") and eager is not None:
        return registry.get_interface(implementation, eager)
    if implementation == "eager" and eager is not None:
        return eager
    return registry[implementation]
