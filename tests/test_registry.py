"""Plugin loading: isolation, strict mode, blocking, duplicates, unknown names, provenance."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import attrs
import pytest

from longctx.errors import DuplicateTechniqueError, PluginError, UnknownTechniqueError
from longctx.hooks import hookimpl
from longctx.registry import load_registry


@attrs.frozen
class _Cfg:
    size: int = 3


def _plugin(name: str, technique: str, family_hook: str = "lc_register_context_reducers"):
    mod = types.ModuleType(name)

    def hook(register):
        register(technique, config=_Cfg, build=lambda c, ctx: None, summary="s", paper="p")

    setattr(mod, family_hook, hookimpl(hook))
    return mod


class _FakeEP:
    def __init__(self, name, load):
        self.name, self.value, self.dist = name, f"fake:{name}", None
        self._load = load

    def load(self):
        return self._load()


def _boom():
    raise ImportError("no module named 'missing_dependency'")


def test_first_party_plugins_come_from_entry_points():
    reg = load_registry(strict=True)
    names = {(t.family, t.name) for t in reg.techniques()}
    assert ("positional", "pi") in names and ("kv", "dynamic") in names
    pi = reg.get("positional", "pi")
    assert pi.distribution == "longctx" and pi.version and pi.plugin == "pi"
    assert all(p.status == "loaded" for p in reg.plugins.values())


def test_failing_plugin_is_isolated_and_recorded():
    eps = [_FakeEP("broken", _boom), _FakeEP("good", lambda: _plugin("good", "good-reducer"))]
    reg = load_registry(strict=False, entry_points_=eps)
    assert reg.plugins["broken"].status == "failed"
    assert "missing_dependency" in reg.plugins["broken"].error
    assert reg.get("reduction", "good-reducer").plugin == "good"


def test_strict_mode_reraises():
    with pytest.raises(PluginError, match="broken"):
        load_registry(strict=True, entry_points_=[_FakeEP("broken", _boom)])


def test_plugin_failing_inside_register_is_rolled_back():
    mod = types.ModuleType("half")

    def hook(register):
        register("first", config=_Cfg, build=lambda c, ctx: None, summary="s", paper="p")
        raise RuntimeError("registration exploded")

    mod.lc_register_context_reducers = hookimpl(hook)
    reg = load_registry(strict=False, entry_points_=[_FakeEP("half", lambda: mod)])
    assert reg.plugins["half"].status == "failed"
    with pytest.raises(UnknownTechniqueError):
        reg.get("reduction", "first")


def test_duplicate_names_are_an_error_naming_both_plugins():
    eps = [_FakeEP("one", lambda: _plugin("one", "same")), _FakeEP("two", lambda: _plugin("two", "same"))]
    with pytest.raises(DuplicateTechniqueError, match=r"'one'.*'two'"):
        load_registry(strict=True, entry_points_=eps)


def test_blocking_by_name_and_env(monkeypatch):
    eps = [_FakeEP("a", lambda: _plugin("a", "ra")), _FakeEP("b", lambda: _plugin("b", "rb"))]
    reg = load_registry(strict=True, entry_points_=eps, blocked=["a"])
    assert reg.plugins["a"].status == "blocked"
    with pytest.raises(UnknownTechniqueError):
        reg.get("reduction", "ra")
    monkeypatch.setenv("LONGCTX_DISABLE_PLUGINS", "b")
    reg = load_registry(strict=True, entry_points_=eps)
    assert reg.plugins["b"].status == "blocked" and reg.plugins["a"].status == "loaded"


def test_unknown_name_lists_available():
    reg = load_registry(strict=True)
    with pytest.raises(UnknownTechniqueError, match=r"available: .*ntk.*pi"):
        reg.get("positional", "yarnn")
    with pytest.raises(UnknownTechniqueError, match="is a positional technique"):
        reg.get("attention", "pi")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"config": dict}, "attrs class"),
        ({"config": attrs.make_class("NoDefault", {"x": attrs.field()})}, "defaults"),
        ({"requires": ("sink-window",)}, "family=name"),
    ],
)
def test_register_contract_violations(kwargs, message):
    mod = types.ModuleType("bad")

    def hook(register):
        args = {"config": _Cfg, "build": lambda c, ctx: None, "summary": "s", "paper": "p", **kwargs}
        register("bad", **args)

    mod.lc_register_kv_stores = hookimpl(hook)
    with pytest.raises(PluginError, match=message):
        load_registry(strict=True, entry_points_=[_FakeEP("bad", lambda: mod)])


def test_hookimpl_with_unknown_argument_is_rejected():
    mod = types.ModuleType("wrongsig")

    def lc_register_kv_stores(register, nonsense):
        pass

    mod.lc_register_kv_stores = hookimpl(lc_register_kv_stores)
    reg = load_registry(strict=False, entry_points_=[_FakeEP("wrongsig", lambda: mod)])
    assert reg.plugins["wrongsig"].status == "failed"


def _install_fake_distribution(root: Path, body: str) -> None:
    """A real installed distribution (dist-info + entry point) on a path the subprocess imports."""
    (root / "lc_thirdparty.py").write_text(body)
    info = root / "lc_thirdparty-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lc-thirdparty\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text("[longctx.plugins]\nthirdparty = lc_thirdparty\n")


def test_cli_reports_a_third_party_plugin_that_raises_on_import(tmp_path):
    _install_fake_distribution(tmp_path, "raise RuntimeError('this plugin is broken on purpose')\n")
    env = {"PYTHONPATH": str(tmp_path), "LONGCTX_STRICT_PLUGINS": "0", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "longctx.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    status = {p["name"]: p for p in data["plugins"]}
    assert status["thirdparty"]["status"] == "failed"
    assert "broken on purpose" in status["thirdparty"]["error"]
    assert status["thirdparty"]["distribution"] == "lc-thirdparty"
    assert any(t["name"] == "pi" for t in data["techniques"])  # the rest still work
