"""What ``clex`` promises to the longctx conformance kit (its ``PositionalContract``), stated once.

The plugin module exposes it as ``LONGCTX_CONTRACTS`` (imported only when the kit asks), so ``lc check
clex``, ``pytest --lc-plugin clex`` and tests/test_conformance.py check CLEX with the same declarations.
Chen et al. 2023, arXiv:2310.16450.
"""

# Contract attributes are class-level declarations (ClassVar on the base classes).
# ruff: noqa: RUF012

from __future__ import annotations

from longctx.contrib.conformance import PositionalContract


class CLEXContract(PositionalContract):
    technique = "clex"
    # Inside the training window (the checks' 48 tokens < 256) t = 1 and θ(1) is the model's own
    # frequencies bit for bit, whatever the parameters: the defaults are "no change" there.
    identity_params = {}
    # a small t_max keeps positional.finite_beyond_window's integration short (t ≤ 4 over 4·L tokens)
    params = {"factor": 4.0}
