"""The documentation keeps up with the code: every hook is documented, every technique has a page and
cites its source."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from longctx import hooks
from longctx.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]


def _hook_names():
    for mod in hooks.SPEC_MODULES:
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if name.startswith("lc_"):
                yield name, fn


@pytest.mark.parametrize("name, fn", list(_hook_names()))
def test_every_hook_is_documented(name, fn):
    assert fn.__doc__ and len(fn.__doc__.strip()) > 40, f"{name} needs a docstring stating its contract"
    assert name in (ROOT / "docs" / "architecture.md").read_text(), f"{name} is missing from docs/architecture.md"


FIRST_PARTY = [t for t in load_registry(strict=True).techniques() if t.distribution == "longctx"]


@pytest.mark.parametrize("tech", FIRST_PARTY, ids=lambda t: f"{t.family}-{t.name}")
def test_every_technique_has_a_page_and_a_source(tech):
    assert tech.paper and tech.summary
    pages = list((ROOT / "docs" / "techniques").glob("*.md"))
    assert any(f"`{tech.name}`" in p.read_text() for p in pages), f"no docs/techniques page mentions {tech.name}"
    module = inspect.getmodule(tech.build)
    assert module is not None and module.__doc__, f"{tech.name}: the plugin module needs a docstring"
    doc = module.__doc__
    assert any(k in doc for k in ("arXiv", "et al.", "doi.org")), f"{tech.name}: the module must cite its paper"
