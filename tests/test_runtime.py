"""compose(): validation before building, the default pipeline is the identity, PI/NTK against
transformers' own RoPE and the papers' formulas, undo, and the errors a user sees."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from longctx.errors import CompositionError, IncompatibleModelError, InputError, ParameterError
from longctx.hooks import hookimpl
from longctx.plugins.ntk import ntk_base
from longctx.registry import load_registry
from longctx.runtime import compose
from longctx.testing import random_ids as _ids


@torch.no_grad()
def _logits(model, ids):
    return model(ids).logits


@pytest.mark.parametrize("arch", ["llama", "gemma3", "qwen2"])
def test_default_pipeline_is_the_identity(tiny, arch):
    lm = tiny(arch)
    ids = _ids(80)
    before = _logits(lm.model, ids)
    with compose(lm) as pipe:
        assert torch.equal(_logits(lm.model, ids), before)
        assert torch.equal(pipe.forward(ids).logits, before)
        desc = pipe.describe()
        json.dumps(desc)
        assert [c["technique"] for c in desc["components"]] == ["native", "dynamic", "sdpa"]


def test_pi_factor_one_is_identity(tiny_llama):
    ids = _ids(60)
    before = _logits(tiny_llama.model, ids)
    with compose(tiny_llama, "positional=pi:factor=1"):
        assert torch.allclose(_logits(tiny_llama.model, ids), before, atol=0, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_pi_equals_transformers_linear_rope(tiny, arch):
    from transformers import ROPE_INIT_FUNCTIONS

    lm = tiny(arch)
    ids = _ids(100)
    base = _logits(lm.model, ids)
    cfg = copy.deepcopy(lm.model.config)
    cfg.rope_parameters = {**cfg.rope_parameters, "rope_type": "linear", "factor": 4.0}
    ref_model = type(lm.model)(cfg).eval()
    ref_model.load_state_dict(lm.model.state_dict())
    with compose(lm, "positional=pi:factor=4") as pipe:
        rot = lm.model.model.rotary_emb
        inv_ref, scale_ref = ROPE_INIT_FUNCTIONS["linear"](cfg)
        assert torch.equal(rot.inv_freq, inv_ref) and rot.attention_scaling == scale_ref
        out = _logits(lm.model, ids)
        assert torch.allclose(out, _logits(ref_model, ids), atol=1e-6)
        assert not torch.allclose(out, base, atol=1e-4)
        assert pipe.max_context == 4 * lm.model.config.max_position_embeddings
    assert torch.equal(_logits(lm.model, ids), base)  # undone


def test_ntk_matches_its_formula(tiny_llama):
    cfg = tiny_llama.model.config
    dim = cfg.head_dim
    theta = cfg.rope_parameters["rope_theta"]
    with compose(tiny_llama, "positional=ntk:factor=8"):
        inv = tiny_llama.model.model.rotary_emb.inv_freq
        b = theta * 8 ** (dim / (dim - 2))
        expected = 1.0 / (b ** (torch.arange(0, dim, 2).float() / dim))
        assert torch.allclose(inv, expected, rtol=1e-6)
        orig = 1.0 / (theta ** (torch.arange(0, dim, 2).float() / dim))
        # the paper's property: highest frequency kept, lowest interpolated by exactly s
        assert torch.isclose(inv[0], orig[0]) and torch.isclose(inv[-1], orig[-1] / 8, rtol=1e-5)
    assert ntk_base(10000.0, 1.0, 64) == 10000.0


def test_gemma3_positional_defaults_to_full_layers(tiny_gemma3):
    rot = tiny_gemma3.model.model.rotary_emb
    sliding, full = rot.sliding_attention_inv_freq.clone(), rot.full_attention_inv_freq.clone()
    with compose(tiny_gemma3, "positional=pi:factor=4"):
        rot2 = tiny_gemma3.model.model.rotary_emb
        assert torch.equal(rot2.sliding_attention_inv_freq, sliding)
        assert torch.allclose(rot2.full_attention_inv_freq, full / 4)
    with compose(tiny_gemma3, "positional=pi:factor=4,layers=all"):
        rot2 = tiny_gemma3.model.model.rotary_emb
        assert torch.allclose(rot2.sliding_attention_inv_freq, sliding / 4)
    assert torch.equal(tiny_gemma3.model.model.rotary_emb.full_attention_inv_freq, full)


def test_gemma3_pi_equals_model_built_with_linear_on_full_layers(tiny_gemma3):
    lm = tiny_gemma3
    ids = _ids(90)
    cfg = copy.deepcopy(lm.model.config)
    rp = copy.deepcopy(cfg.rope_parameters)
    rp["full_attention"] = {**rp["full_attention"], "rope_type": "linear", "factor": 2.0}
    cfg.rope_parameters = rp
    ref_model = type(lm.model)(cfg).eval()
    ref_model.load_state_dict(lm.model.state_dict())
    with compose(lm, "positional=pi:factor=2"):
        assert torch.allclose(_logits(lm.model, ids), _logits(ref_model, ids), atol=1e-6)


def test_rope_technique_on_bert_is_refused(tiny_bert):
    with pytest.raises(IncompatibleModelError, match=r"pi.*rope.*absolute position"):
        compose(tiny_bert, "positional=pi:factor=2")


def test_validation_happens_before_any_change(tiny_llama):
    ids = _ids(30)
    before = _logits(tiny_llama.model, ids)
    with pytest.raises(ParameterError):
        compose(tiny_llama, "positional=pi:factor=2 reduce=truncate-middle:budget=-3")
    assert torch.equal(_logits(tiny_llama.model, ids), before)
    assert tiny_llama.model.config.rope_parameters["rope_type"] == "default"


def test_conflicts_and_requirements_are_checked():
    import attrs

    @attrs.frozen
    class C:
        pass

    class P:
        @hookimpl
        def lc_register_attention(self, register):
            register("needy", config=C, build=lambda c, x: None, summary="s", paper="p", requires=("kv=special",))
            register(
                "grumpy",
                config=C,
                build=lambda c, x: None,
                summary="s",
                paper="p",
                conflicts=("positional=pi",),
            )

        @hookimpl
        def lc_register_kv_stores(self, register):
            register("special", config=C, build=lambda c, x: None, summary="s", paper="p")

    reg = load_registry(strict=True, extra_plugins=[("test-plugin", P())])
    from longctx.runtime import _check_conflicts, _resolve_requirements
    from longctx.spec import PipelineSpec

    spec, notes = _resolve_requirements(PipelineSpec.from_words(["attention=needy"]), reg)
    assert spec.kv.name == "special" and "required by needy" in notes[0]
    with pytest.raises(CompositionError, match="requires kv=special, but kv=dynamic was chosen"):
        # an explicit non-default choice is never overridden
        _resolve_requirements(PipelineSpec.from_words(["attention=needy", "kv=dynamic"]), reg)
    with pytest.raises(CompositionError, match="grumpy conflicts with positional=pi"):
        _check_conflicts(PipelineSpec.from_words(["attention=grumpy", "positional=pi"]), reg)


def test_lifecycle_hooks_see_composition_and_generation(tiny_llama):
    seen = []

    class Tracer:
        @hookimpl
        def lc_pipeline_composed(self, pipeline):
            seen.append(("composed", pipeline.spec.positional.name))

        @hookimpl(wrapper=True)
        def lc_run_generate(self, pipeline, prompt, run):
            seen.append(("before", prompt))
            result = yield
            seen.append(("after", result.new_tokens))
            return result

    reg = load_registry(strict=True, extra_plugins=[("tracer", Tracer())])
    with compose(tiny_llama, "positional=pi:factor=2", registry=reg) as pipe:
        g = pipe.generate("hello there", max_new_tokens=3)
    assert seen == [("composed", "pi"), ("before", "hello there"), ("after", g.new_tokens)]
    assert g.new_tokens == 3 and g.kv_bytes > 0
    assert 0 < g.prefill_seconds <= g.seconds


def test_generate_errors(tiny_llama):
    with compose(tiny_llama) as pipe:
        with pytest.raises(InputError, match="empty"):
            pipe.generate("   ")
        long = "x" * 400  # 401 byte tokens > the tiny model's 256-token window
        with pytest.raises(InputError, match=r"window is 256 tokens; add a reducer, e\.g\. reduce=truncate-middle"):
            pipe.generate(long, max_new_tokens=4)


def test_reducer_makes_a_long_prompt_fit(tiny_llama):
    prompt = ("filler text. " * 40) + "\nWhat is the answer?"
    with compose(tiny_llama, "reduce=truncate-middle:budget=120") as pipe:
        g = pipe.generate(prompt, max_new_tokens=4)
        assert g.reduction is not None and g.reduction.tokens_out <= 120
        assert g.prompt_tokens <= 1 + 120 + 1 + len("What is the answer?")


def test_undo_is_idempotent_and_blocks_reuse(tiny_llama):
    pipe = compose(tiny_llama, "positional=ntk:factor=2")
    pipe.undo()
    pipe.undo()
    with pytest.raises(Exception, match="undone"):
        pipe.generate("hi")
