"""CLEX (Chen et al. 2023, arXiv:2310.16450): the fixed-step integrators against closed-form ODEs, the
dynamics' time embedding and its untrained closed form, t = 1 exactness, weights I/O, length-dependent
frequencies on tiny models, and the training step."""

from __future__ import annotations

import itertools
import math
from importlib.metadata import entry_points

import pytest
import torch
from safetensors.torch import save_file

from longctx.errors import IncompatibleModelError, LongctxError, ParameterError
from longctx.models import tiny_model
from longctx.plugins.clex import (
    CLEX,
    CLEXDynamics,
    clex_dynamics,
    clex_lm_loss,
    clex_parameters,
    clex_rotaries,
    clex_training_step,
    extrapolated_positions,
    load_clex_weights,
    odeint,
    sample_scale,
    save_clex_weights,
    scale_for_length,
    untrained_frequencies,
)
from longctx.rope import default_inv_freq
from longctx.runtime import compose
from longctx.testing import random_ids

WINDOW = 256  # max_position_embeddings of the tiny models
D = 16  # their rotary dimension


def _trained_weights(path, *, seed=1, scale=0.3, dim=D, hidden=D, act="tanh"):
    """A weights file with non-zero W_down (as after training), deterministic in ``seed``."""
    dyn = CLEXDynamics(dim, hidden, act=act, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        dyn.ode_down_proj.copy_(scale * torch.randn(dyn.ode_down_proj.shape, generator=g))
    save_clex_weights(path, dyn)
    return dyn


@torch.no_grad()
def _logits(lm, ids, **kw):
    return lm.model(ids, **kw).logits


def test_registered_as_positional():
    from longctx.registry import load_registry

    eps = [ep for ep in entry_points(group="longctx.plugins") if ep.name == "clex"]
    reg = load_registry(entry_points_=eps, strict=True)
    assert reg.get("positional", "clex").build is CLEX


# -- the integrators against closed forms --------------------------------------------------------------


def _linear_system():
    """y' = A y with A = [[-0.3, -2], [2, -0.3]] (a damped rotation): y(t) = expm(A (t − t0)) y0."""
    a = torch.tensor([[-0.3, -2.0], [2.0, -0.3]], dtype=torch.float64)
    return a, (lambda t, y: a @ y)


@pytest.mark.parametrize("method,order", [("rk4", 4), ("rk38", 4), ("euler", 1)])
def test_integrators_match_a_linear_ode_and_converge_at_their_order(method, order):
    a, f = _linear_system()
    y0 = torch.tensor([1.0, 0.5], dtype=torch.float64)
    times = [1.0, 1.7, 3.0]
    exact = torch.stack([torch.linalg.matrix_exp(a * (t - 1.0)) @ y0 for t in times])
    errors = []
    for step in (0.02, 0.01):
        got = odeint(f, y0, times, step=step, method=method)
        assert got.shape == (3, 2)
        assert torch.equal(got[0], y0)
        errors.append((got - exact).abs().max().item())
    # halving the step divides the error by ~2^order
    assert 2 ** (order - 0.3) < errors[0] / errors[1] < 2 ** (order + 0.3)
    assert errors[1] < (1e-8 if order == 4 else 5e-2)


def test_rk4_on_a_time_dependent_ode():
    """y' = cos(t)·y: y(t) = y0·exp(sin t − sin t0), through a time not on the step grid."""
    y0 = torch.tensor([2.0], dtype=torch.float64)
    got = odeint(lambda t, y: math.cos(t) * y, y0, [0.0, 0.35, 2.0], step=0.1, method="rk4")
    want = [2.0, 2.0 * math.exp(math.sin(0.35)), 2.0 * math.exp(math.sin(2.0))]
    assert got[:, 0].tolist() == pytest.approx(want, rel=1e-6)


def test_odeint_refuses_bad_input():
    f = lambda t, y: y  # noqa: E731
    with pytest.raises(ParameterError, match="method"):
        odeint(f, torch.ones(1), [0.0, 1.0], step=0.1, method="midpoint")
    with pytest.raises(ParameterError, match="step"):
        odeint(f, torch.ones(1), [0.0, 1.0], step=0.0)
    with pytest.raises(ValueError, match="ascending"):
        odeint(f, torch.ones(1), [1.0, 0.0], step=0.1)


# -- the dynamics ------------------------------------------------------------------------------------------


def test_time_embedding_rate_is_the_derivative_of_log_xi():
    """d log ξ_t/dt (the authors' closed form −2·2i/((d−2)(2t−1))) against a central difference."""
    dyn = CLEXDynamics(8).double()
    dyn.two_i = dyn.two_i.double()
    for t in (1.2, 2.5, 9.0):
        h = 1e-5
        (lo, _), (hi, _) = dyn.time_embedding(t - h), dyn.time_embedding(t + h)
        log_xi, rate = dyn.time_embedding(t)
        assert torch.allclose(rate, (hi - lo) / (2 * h), atol=1e-7)
        # log ξ_t: NTK-aware base b·α^{d/(d−2)} at α = 2t − 1, b = 10 000 (hand formula)
        want = [-(2 * i / 8) * math.log(1e4) - (2 * i / 6) * math.log(2 * t - 1) for i in range(4)]
        assert log_xi.tolist() == pytest.approx(want, rel=1e-12)


def test_untrained_dynamics_equal_the_ntk_closed_form():
    """W_down = 0: θ_i(t) = θ_i·(2t − 1)^{−2i/(d−2)} — to 1e-9 in float64, to float32 precision in float32."""
    theta = default_inv_freq(tiny_model("llama").model.config)
    times = [1.0, 1.5, 2.0, 3.7, 8.0]
    want = torch.stack([untrained_frequencies(theta.double(), t) for t in times])
    exact = CLEXDynamics(D, seed=3).double().frequencies(theta.double(), times)
    assert torch.allclose(exact, want, rtol=1e-9, atol=0)
    single = CLEXDynamics(D, seed=3).frequencies(theta, times)
    assert single.dtype == torch.float32 and torch.allclose(single.double(), want, rtol=2e-5, atol=0)
    # hand values: at t = 2 the lowest frequency is θ_7 · 3^{−14/14} = θ_7 / 3, the highest stays θ_0
    assert exact[2, -1].item() == pytest.approx(theta[-1].item() / 3, rel=1e-9)
    assert exact[2, 0].item() == pytest.approx(theta[0].item(), rel=1e-12)


def test_trained_dynamics_converge_with_the_step_and_differ_from_ntk():
    theta = default_inv_freq(tiny_model("llama").model.config)
    dyn = CLEXDynamics(D, seed=0)
    with torch.no_grad():
        dyn.ode_down_proj.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))
    fine = dyn.frequencies(theta, [3.0], step=0.002)[0]
    rk4 = dyn.frequencies(theta, [3.0], step=0.01)[0]
    euler = dyn.frequencies(theta, [3.0], step=0.01, method="euler")[0]
    assert torch.allclose(rk4, fine, rtol=1e-5)
    assert (euler - fine).abs().max() > 10 * (rk4 - fine).abs().max()
    assert not torch.allclose(rk4, untrained_frequencies(theta, 3.0), rtol=1e-3)


def test_t_equal_1_returns_the_original_frequencies_exactly():
    theta = default_inv_freq(tiny_model("llama").model.config)
    dyn = CLEXDynamics(D)
    with torch.no_grad():
        dyn.ode_down_proj.fill_(0.5)
    got = dyn.frequencies(theta, [1.0, 2.0])
    assert torch.equal(got[0], theta)
    assert not torch.equal(got[1], theta)


def test_dimension_checks():
    with pytest.raises(ParameterError, match="at least 4"):
        CLEXDynamics(2)
    with pytest.raises(ParameterError, match="act"):
        CLEXDynamics(8, act="relu")
    with pytest.raises(ParameterError, match="frequencies"):
        CLEXDynamics(8).frequencies(torch.ones(8), [2.0])


# -- choosing t from the length ------------------------------------------------------------------------------


def test_scale_for_length_bucket_and_continuous():
    assert [scale_for_length(n, 256, 16) for n in (1, 256, 257, 512, 513, 10_000)] == [1, 1, 2, 2, 3, 16]
    assert scale_for_length(384, 256, 16, "continuous") == 1.5
    assert scale_for_length(100, 256, 16, "continuous") == 1.0
    assert scale_for_length(10_000, 256, 4.5, "continuous") == 4.5
    with pytest.raises(ValueError):
        scale_for_length(10, 256, 16, "log")


# -- weights ------------------------------------------------------------------------------------------------------


def test_weights_round_trip(tmp_path):
    dyn = _trained_weights(tmp_path / "w.safetensors", seed=2, hidden=2 * D, act="silu")
    up, down, meta = load_clex_weights(tmp_path / "w.safetensors")
    assert torch.equal(up, dyn.ode_up_proj.detach()) and torch.equal(down, dyn.ode_down_proj.detach())
    assert meta["act"] == "silu" and meta["rotary_dim"] == str(D) and meta["format"] == "longctx-clex/1"
    lm = tiny_model("llama")
    pipe = compose(lm, f"positional=clex:weights={tmp_path / 'w.safetensors'},act=silu")
    loaded = clex_dynamics(lm)
    assert loaded.hidden == 2 * D and loaded.act == "silu"
    assert torch.equal(loaded.ode_up_proj, up) and torch.equal(loaded.ode_down_proj, down)
    save_clex_weights(tmp_path / "again.safetensors", loaded)  # saved back from the model: same tensors
    up2, down2, _ = load_clex_weights(tmp_path / "again.safetensors")
    assert torch.equal(up2, up) and torch.equal(down2, down)
    assert pipe.describe()["changes"]["positional"]["dynamics"] == str(tmp_path / "w.safetensors")


def test_weights_with_the_authors_checkpoint_names(tmp_path):
    """A shard of the authors' checkpoint: model.clex_layer.proj_func.ode_{up,down}_proj among others."""
    up, down = torch.randn(D // 2, D), torch.randn(D, D // 2)
    save_file(
        {
            "model.clex_layer.proj_func.ode_up_proj": up,
            "model.clex_layer.proj_func.ode_down_proj": down,
            "model.clex_layer.inv_freq": torch.ones(D // 2),
            "model.embed_tokens.weight": torch.zeros(4, 4),
        },
        str(tmp_path / "shard.safetensors"),
    )
    got_up, got_down, meta = load_clex_weights(tmp_path / "shard.safetensors")
    assert torch.equal(got_up, up) and torch.equal(got_down, down) and meta == {}


def test_weights_errors_are_actionable(tmp_path):
    lm = tiny_model("llama")
    with pytest.raises(ParameterError, match="does not exist"):
        compose(lm, f"positional=clex:weights={tmp_path / 'missing.safetensors'}")
    save_file({"something": torch.ones(2)}, str(tmp_path / "empty.safetensors"))
    with pytest.raises(ParameterError, match="no tensor named …ode_up_proj"):
        compose(lm, f"positional=clex:weights={tmp_path / 'empty.safetensors'}")
    _trained_weights(tmp_path / "d32.safetensors", dim=32, hidden=32)
    with pytest.raises(ParameterError, match="rotary dimension 32"):
        compose(lm, f"positional=clex:weights={tmp_path / 'd32.safetensors'}")
    _trained_weights(tmp_path / "tanh.safetensors")
    with pytest.raises(ParameterError, match="set act=tanh"):
        compose(lm, f"positional=clex:weights={tmp_path / 'tanh.safetensors'},act=silu")
    # nothing was left installed by the refused compositions
    assert not clex_rotaries(lm.model)


# -- on tiny models --------------------------------------------------------------------------------------------------


def test_logits_inside_the_window_unchanged_and_frequencies_follow_the_length(tmp_path):
    dyn = _trained_weights(tmp_path / "w.safetensors")
    lm = tiny_model("llama")
    ids = random_ids(600, seed=1)
    base_short = _logits(lm, ids[:, :WINDOW])
    base_long = _logits(lm, ids[:, :300])
    theta1 = lm.model.model.rotary_emb.inv_freq.clone()
    compose(lm, f"positional=clex:weights={tmp_path / 'w.safetensors'}")
    rot = lm.model.model.rotary_emb
    # inside the training window: t = 1, the model's own frequencies, bit-identical logits
    assert torch.equal(_logits(lm, ids[:, :WINDOW]), base_short)
    assert rot.clex_last == {None: 1.0}
    # 300 tokens: t = ⌈300/256⌉ = 2; 600: t = 3 — the rotary's cos equals cos(p·θ(t)) of the ODE
    want = {t: dyn.frequencies(theta1, [t])[0] for t in (2.0, 3.0)}
    for n, t in ((300, 2.0), (600, 3.0)):
        pos = torch.arange(n)[None]
        with torch.no_grad():
            cos, _sin = rot(torch.zeros(1, dtype=torch.float32), pos)
        assert rot.clex_last == {None: t}
        assert torch.allclose(cos[0, :, : D // 2], torch.cos(pos[0, :, None] * want[t]), atol=1e-5)
    assert not torch.allclose(want[2.0], want[3.0])
    assert not torch.allclose(_logits(lm, ids[:, :300]), base_long, atol=1e-4)
    # the buffer is θ(1) again between calls
    assert torch.equal(rot.inv_freq, theta1)


@pytest.mark.parametrize("n,alpha", [(300, 3.0), (600, 5.0)])
def test_untrained_clex_is_ntk_with_factor_2t_minus_1(n, alpha):
    """Without weights, CLEX at t = ⌈n/L⌉ is NTK-aware scaling with α = 2t − 1 (ntk plugin, same logits)."""
    ids = random_ids(n, seed=2)
    lm = tiny_model("llama")
    pipe = compose(lm, "positional=clex")
    got = _logits(lm, ids)
    pipe.undo()
    compose(lm, f"positional=ntk:factor={alpha}")
    assert torch.allclose(got, _logits(lm, ids), atol=2e-5)


def test_continuous_scale_on_the_model():
    lm = tiny_model("qwen2")
    compose(lm, "positional=clex:scale=continuous,factor=4")
    _logits(lm, random_ids(384, seed=3))
    assert lm.model.model.rotary_emb.clex_last == {None: 1.5}
    _logits(lm, random_ids(2048, seed=3))
    assert lm.model.model.rotary_emb.clex_last == {None: 4.0}  # capped at t_max


def test_gemma3_changes_only_the_full_layers_by_default():
    lm = tiny_model("gemma3")
    rot0 = lm.model.model.rotary_emb
    sliding, full = rot0.sliding_attention_inv_freq.clone(), rot0.full_attention_inv_freq.clone()
    pipe = compose(lm, "positional=clex")
    _logits(lm, random_ids(300, seed=4))
    rot = lm.model.model.rotary_emb
    assert rot.clex_last == {"full_attention": 2.0}
    assert torch.equal(rot.sliding_attention_inv_freq, sliding) and torch.equal(rot.full_attention_inv_freq, full)
    with torch.no_grad():
        cos, _ = rot(torch.zeros(1), torch.arange(300)[None], layer_type="sliding_attention")
    assert torch.allclose(cos[0, :, : D // 2], torch.cos(torch.arange(300)[:, None] * sliding), atol=1e-5)
    pipe.undo()
    assert lm.model.model.rotary_emb is rot0
    compose(lm, "positional=clex:layers=all")
    _logits(lm, random_ids(300, seed=4))
    assert lm.model.model.rotary_emb.clex_last == {"full_attention": 2.0, "sliding_attention": 2.0}


def test_refuses_models_without_rope_and_undo_restores():
    with pytest.raises(IncompatibleModelError):
        compose(tiny_model("bert"), "positional=clex")
    lm = tiny_model("llama")
    rot0 = lm.model.model.rotary_emb
    n_params = len(list(lm.model.parameters()))
    pipe = compose(lm, "positional=clex")
    assert len(list(lm.model.parameters())) == n_params + 2  # ode_up_proj, ode_down_proj
    assert pipe.max_context == 16 * WINDOW
    pipe.undo()
    assert lm.model.model.rotary_emb is rot0 and not clex_rotaries(lm.model)


def test_fp32_rotation_is_inherited_from_scaled_rope(tmp_path):
    """The shared ``fp32_rotation`` option: a no-op in a float32 model; in a bf16 model the rotary returns
    float32 cos/sin, and θ(t) is still integrated in float32 from the exact θ(1)."""
    from longctx.registry import get_registry

    params = {p.name: p for p in get_registry().get("positional", "clex").params}
    assert params["fp32_rotation"].default is False and "arXiv:2411.13476" in params["fp32_rotation"].help
    dyn = _trained_weights(tmp_path / "w.safetensors")
    ids = random_ids(300, seed=6)
    lm = tiny_model("llama")
    with compose(lm, f"positional=clex:weights={tmp_path / 'w.safetensors'}"):
        want = _logits(lm, ids)
    with compose(lm, f"positional=clex:weights={tmp_path / 'w.safetensors'},fp32_rotation=true") as pipe:
        assert torch.equal(_logits(lm, ids), want)
        assert pipe.describe()["changes"]["positional"]["fp32_rotation"]["rotary_modules"] == ["model.rotary_emb"]
    theta = default_inv_freq(lm.model.config)
    lm.model.to(torch.bfloat16)
    with compose(lm, f"positional=clex:weights={tmp_path / 'w.safetensors'},fp32_rotation=true"):
        got = _logits(lm, ids)
        rot = lm.model.model.rotary_emb
        with torch.no_grad():
            cos, _ = rot(torch.zeros(1, dtype=torch.bfloat16), torch.arange(300)[None])
        theta2 = rot.clex_frequencies(2.0)
    assert torch.isfinite(got).all() and cos.dtype == torch.float32 and rot.clex_last == {None: 2.0}
    assert theta2.dtype == torch.float32 and torch.allclose(theta2, dyn.frequencies(theta, [2.0])[0], rtol=1e-2)


# -- training ----------------------------------------------------------------------------------------------------


def test_extrapolated_positions():
    assert torch.equal(extrapolated_positions(8, 1, window=256), torch.arange(8, dtype=torch.float32))
    g = torch.Generator().manual_seed(0)
    pos = extrapolated_positions(8, 3, window=256, generator=g)
    assert pos[0] == 0 and pos[-1] == 23 and len(pos) == 8
    assert torch.all(pos[1:] > pos[:-1]) and torch.equal(pos, pos.round())
    # sequences longer than the window (n = 16, L = 4): s = 4, positions in window units
    pos = extrapolated_positions(16, 2, window=4, generator=g)
    assert pos[-1] == (32 - 1) / 4 and torch.all(pos[1:] > pos[:-1]) and torch.equal(pos * 4, (pos * 4).round())
    draws = {sample_scale(4, torch.Generator().manual_seed(s)) for s in range(40)}
    assert draws == {1, 2, 3, 4}


def test_training_step_reduces_the_loss_and_changes_only_the_ode():
    """Steps on one batch with the same positions (the generator re-seeded) descend the LM loss; only the
    ODE parameters change although the optimizer holds every parameter. The model's weights are larger
    than the default init (0.1) so that its loss depends on the frequencies at all."""
    lm = tiny_model("llama", initializer_range=0.1)
    compose(lm, "positional=clex:factor=4,time_dt=0.1")
    model = lm.model
    ode = clex_parameters(lm)
    assert {tuple(p.shape) for p in ode} == {(D // 2, D), (D, D // 2)}
    frozen_before = {k: v.clone() for k, v in model.state_dict().items() if "clex" not in k}
    ode_before = [p.detach().clone() for p in ode]
    batch = {"input_ids": random_ids(16, seed=5, b=2)}
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = [
        clex_training_step(lm, batch, opt, generator=torch.Generator().manual_seed(9), t=2.0)["loss"] for _ in range(5)
    ]
    pos = extrapolated_positions(16, 2.0, window=WINDOW, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        losses.append(clex_lm_loss(model, batch, t=2.0, positions=pos).item())
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < losses[0] - 2e-3
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen_before.items())
    assert not torch.equal(ode[1].detach(), ode_before[1])  # W_down moved off zero
    assert all(p.requires_grad for p in model.parameters())  # nothing left frozen
    # t sampled in 1 … t_max as the authors do; t = 1 trains nothing (θ(1) does not depend on the ODE)
    assert clex_training_step(model, batch, opt, generator=torch.Generator().manual_seed(1))["t"] in {1, 2, 3, 4}
    with pytest.raises(ParameterError, match="t_max"):
        clex_training_step(model, batch, opt, t=5.0)


def test_training_needs_clex_installed():
    with pytest.raises(LongctxError, match="compose"):
        clex_parameters(tiny_model("llama"))
