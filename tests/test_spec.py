"""Parameters from CLI strings, pipeline specs from words and TOML, and their round-trips."""

from __future__ import annotations

import pytest

from longctx.errors import ParameterError, SpecError, UnknownTechniqueError
from longctx.registry import load_registry
from longctx.spec import ComponentSpec, PipelineSpec


@pytest.fixture(scope="module")
def reg():
    return load_registry(strict=True)


def test_component_parse_and_str():
    c = ComponentSpec.parse("streaming-llm:sinks=4,window=1024")
    assert c.name == "streaming-llm" and c.params == {"sinks": "4", "window": "1024"}
    assert ComponentSpec.parse(str(c)) == c
    assert ComponentSpec.parse("pi").params == {}


@pytest.mark.parametrize("bad", ["pi:factor", ":factor=2", "pi:=2"])
def test_component_parse_errors(bad):
    with pytest.raises(SpecError):
        ComponentSpec.parse(bad)


def test_words_fill_slots_and_lists():
    s = PipelineSpec.from_words(
        ["positional=pi:factor=2", "reduce=truncate-middle:budget=100", "reduce=bm25", "model=x"]
    )
    assert s.positional == ComponentSpec("pi", {"factor": "2"})
    assert [c.name for c in s.reducers] == ["truncate-middle", "bm25"]
    assert (
        s.model == "x" and s.attention is None and s.slot("attention").name == "sdpa" and s.slot("kv").name == "dynamic"
    )
    with pytest.raises(SpecError, match="SLOT=TECHNIQUE"):
        PipelineSpec.from_words(["positonal=pi"])


def test_params_are_typed_and_validated(reg):
    s = PipelineSpec.from_words(["positional=pi:factor=4"]).normalized(reg)
    assert s.positional.params == {"factor": 4.0}
    with pytest.raises(ParameterError, match="expected a number"):
        PipelineSpec.from_words(["positional=pi:factor=four"]).normalized(reg)
    with pytest.raises(ParameterError, match=r"factor must be >= 1.0"):
        PipelineSpec.from_words(["positional=pi:factor=0.5"]).normalized(reg)
    with pytest.raises(ParameterError, match=r"unknown parameter 'scale'.*valid parameters: factor, layers"):
        PipelineSpec.from_words(["positional=pi:scale=2"]).normalized(reg)
    with pytest.raises(ParameterError, match="must be one of full, sliding, all"):
        PipelineSpec.from_words(["positional=pi:layers=some"]).normalized(reg)
    with pytest.raises(UnknownTechniqueError, match="available"):
        PipelineSpec.from_words(["positional=yarnn"]).normalized(reg)


def test_toml_round_trip(reg, tmp_path):
    s = PipelineSpec.from_words(
        ["model=gemma-3-270m", "positional=ntk:factor=3", "reduce=truncate-middle:budget=500"]
    ).normalized(reg)
    path = tmp_path / "p.toml"
    s.save(path)
    back = PipelineSpec.load(path)
    assert back.normalized(reg) == s
    assert PipelineSpec.from_words(s.words()).normalized(reg) == s


def test_toml_errors(tmp_path):
    with pytest.raises(SpecError, match="malformed TOML"):
        PipelineSpec.from_toml("[pipeline\nmodel=")
    with pytest.raises(SpecError, match="unknown key"):
        PipelineSpec.from_toml("[pipeline]\npositonal = 'pi'\n")
    with pytest.raises(SpecError, match="technique"):
        PipelineSpec.from_toml("[pipeline.positional]\nfactor = 2\n")
    with pytest.raises(SpecError, match="cannot read spec file"):
        PipelineSpec.load(tmp_path / "missing.toml")


def test_bool_and_int_conversion():
    import attrs

    from longctx.params import make_config

    @attrs.frozen
    class C:
        flag: bool = False
        n: int = 1

    assert make_config(C, {"flag": "yes", "n": "1_000"}, technique="t") == C(True, 1000)
    with pytest.raises(ParameterError, match="expected an integer"):
        make_config(C, {"n": "1.5"}, technique="t")
    with pytest.raises(ParameterError, match="true/false"):
        make_config(C, {"flag": "maybe"}, technique="t")
