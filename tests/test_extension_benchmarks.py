"""benchmarks/extension_cpu.py and extension_gpu.py: method parsing, the CPU smoke mode of the GPU
benchmark on a tiny random Llama (JSON rows, statuses, perplexity against a hand computation, the
markdown tables), resuming, the time budget, out-of-memory rows and refusing to mix settings."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


cpu = _load("extension_cpu")
gpu = _load("extension_gpu")

SMOKE = ["--device", "cpu", "--model", "tiny-llama", "--dtype", "fp32", "--case-cache", "none"]


# -- methods -------------------------------------------------------------------------------------------


def test_split_methods_keeps_parameters_with_their_method():
    raw = (
        "native,pi:factor=2,attention=self-extend:group_size=8,neighbor_window=1024,attention=self-extend,yarn:factor=4"
    )
    assert cpu.split_methods(raw) == [
        "native",
        "pi:factor=2",
        "attention=self-extend:group_size=8,neighbor_window=1024",
        "attention=self-extend",
        "yarn:factor=4",
    ]
    # ';' separates whole specs, spaces join words of one pipeline
    assert cpu.split_methods("positional=yarn:factor=2 attention=self-extend; native") == [
        "positional=yarn:factor=2 attention=self-extend",
        "native",
    ]


def test_spec_words_and_fp32_rotation():
    assert cpu.spec_words("pi:factor=2") == ["positional=pi:factor=2"]
    assert cpu.spec_words("native") == ["positional=native"]
    assert cpu.spec_words("attention=self-extend:group_size=8") == ["attention=self-extend:group_size=8"]
    assert cpu.with_fp32_rotation("native") == "native:fp32_rotation=true"
    assert cpu.with_fp32_rotation("yarn:factor=4") == "yarn:factor=4,fp32_rotation=true"
    # self-extend rotates with the model's own RoPE: the option goes to it when no positional is named
    assert cpu.with_fp32_rotation("attention=self-extend") == "attention=self-extend:fp32_rotation=true"
    assert (
        cpu.with_fp32_rotation("positional=yarn:factor=2 attention=self-extend")
        == "positional=yarn:factor=2,fp32_rotation=true attention=self-extend"
    )
    assert cpu.with_fp32_rotation("kv=dynamic") == "kv=dynamic positional=native:fp32_rotation=true"
    assert [cpu.parse_length(x) for x in ("2k", "1.5k", "300")] == [2048, 1536, 300]


def test_gpu_methods_reach_factor_times_the_window(tiny_gemma3):
    import longctx

    methods = gpu.gpu_methods(4)
    assert "native" in methods and gpu.SELF_EXTEND in methods and len(methods) == len(set(methods)) == 12
    for m in methods:
        with longctx.compose(tiny_gemma3, cpu.spec_words(m)) as pipe:
            want = 256 if m in ("native", gpu.SELF_EXTEND) else 4 * 256  # self-extend: W=1024 ≥ the 256 window
            assert pipe.max_context == want, m


# -- the smoke run -------------------------------------------------------------------------------------


def _hand_nll(lm, text: str) -> float:
    ids = lm.tokenizer(text, return_tensors="pt")["input_ids"]  # BOS + text
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits.float()
    return float(torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:]))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("ext") / "smoke.json"
    lines: list[str] = []
    argv = [*SMOKE, "--lengths", "400,1k", "--methods", "native,pi:factor=2", "--out", str(out)]
    args = gpu.engine.build_parser(gpu.GPU_DEFAULTS, "t").parse_args(argv)
    data = gpu.engine.run(args, title="t", header=gpu.gpu_header, print_fn=lines.append)
    return out, data, "\n".join(lines), argv


def test_smoke_json_rows(smoke):
    out, data, _, _ = smoke
    saved = json.loads(out.read_text())
    assert saved["results"] == json.loads(json.dumps(data["results"]))
    meta = saved["meta"]
    assert meta["model"] == "tiny-llama" and meta["dtype"] == "fp32" and meta["device_type"] == "cpu"
    assert meta["date"] and meta["torch"] == torch.__version__ and meta["stopped"] is None
    rows = {(r["method"], r["task"], r["length"]): r for r in saved["results"]}
    # 2 methods × 2 tasks × 2 lengths, seed 0 each
    assert len(rows) == len(saved["results"]) == 8
    # tiny Llama's window is 256 tokens, pi:factor=2 declares 512: native's passkey is refused at 400
    assert rows[("native", "passkey", 400)]["status"] == "beyond-window"
    assert rows[("native", "passkey", 400)]["max_context"] == 256
    pk = rows[("pi:factor=2", "passkey", 400)]
    assert pk["status"] == "ok" and pk["max_context"] == 512 and pk["score"] in (0.0, 1.0)
    assert 390 <= pk["actual_tokens"] <= 400 and pk["answer"].isdigit()
    assert rows[("pi:factor=2", "passkey", 1024)]["status"] == "beyond-window"
    # perplexity is measured beyond the window too (that is the point of the curve)
    for m in ("native", "pi:factor=2"):
        for n in (400, 1024):
            r = rows[(m, "perplexity", n)]
            assert r["status"] == "ok", r
            assert r["beyond_window"] is (n > r["max_context"])
            assert {f"nll_b{b}" for b in range(8)} <= set(r["metrics"])


def test_smoke_perplexity_matches_a_hand_computation(smoke):
    from longctx.evaluate import load_tasks
    from longctx.models import tiny_model

    _, data, _, _ = smoke
    lm = tiny_model("llama")
    task = load_tasks(["perplexity"])["perplexity"]
    case = next(iter(task.cases(lm.tokenizer, length=400, depth=0.5, seed=0)))
    want = _hand_nll(lm, case.prompt)
    got = next(
        r for r in data["results"] if r["method"] == "native" and r["task"] == "perplexity" and r["length"] == 400
    )
    assert got["case_id"] == case.id
    assert got["metrics"]["nll"] == pytest.approx(want, abs=1e-5)


def test_smoke_tables(smoke):
    _, data, text, _ = smoke
    meta = data["meta"]
    assert f"Measured on **{meta['date']}** on **{meta['device_name']}**" in text
    assert "| method | passkey@400 | passkey@1k | PPL@400 | PPL@1k |" in text
    nll = {(r["method"], r["length"]): r["metrics"]["nll"] for r in data["results"] if r["task"] == "perplexity"}
    pk = next(
        r for r in data["results"] if r["method"] == "pi:factor=2" and r["task"] == "passkey" and r["length"] == 400
    )
    row_native = (
        f"| `native` | n/a | n/a | {math.exp(nll[('native', 400)]):.2f} | {math.exp(nll[('native', 1024)]):.2f} |"
    )
    row_pi = (
        f"| `pi:factor=2` | {pk['score']:.0f}/1 | n/a | {math.exp(nll[('pi:factor=2', 400)]):.2f} | "
        f"{math.exp(nll[('pi:factor=2', 1024)]):.2f} |"
    )
    assert row_native in text and row_pi in text
    assert "per position bucket, 1k-token passage" in text
    # bucket table: native's NLL, then each method's difference to it
    by = {r["method"]: r["metrics"] for r in data["results"] if r["task"] == "perplexity" and r["length"] == 1024}
    native = " | ".join(f"{by['native'][f'nll_b{b}']:.3f}" for b in range(8))
    pi = " | ".join(f"{by['pi:factor=2'][f'nll_b{b}'] - by['native'][f'nll_b{b}']:+.3f}" for b in range(8))
    assert f"| `native` | {native} |" in text and f"| `pi:factor=2` | {pi} |" in text


def test_resume_measures_nothing_twice(smoke, monkeypatch):
    out, _, _, argv = smoke
    before = out.read_text()
    calls = []
    monkeypatch.setattr(cpu, "measure", lambda *a, **k: calls.append(a) or pytest.fail("measured again"))
    lines: list[str] = []
    args = gpu.engine.build_parser(gpu.GPU_DEFAULTS, "t").parse_args(argv)
    again = gpu.engine.run(args, title="t", header=gpu.gpu_header, print_fn=lines.append)
    assert calls == [] and len(again["results"]) == 8
    assert json.loads(out.read_text())["results"] == json.loads(before)["results"]


def test_other_setting_is_refused(smoke):
    from longctx.errors import InputError

    _, _, _, argv = smoke
    args = gpu.engine.build_parser(gpu.GPU_DEFAULTS, "t").parse_args([*argv, "--dtype", "bf16"])
    with pytest.raises(InputError, match="another --out"):
        gpu.engine.run(args, title="t", header=gpu.gpu_header, print_fn=lambda s: None)


def test_budget_stops_cleanly(tmp_path):
    out = tmp_path / "b.json"
    lines: list[str] = []
    argv = [*SMOKE, "--lengths", "400", "--methods", "native", "--budget-s", "0", "--out", str(out)]
    args = gpu.engine.build_parser(gpu.GPU_DEFAULTS, "t").parse_args(argv)
    data = gpu.engine.run(args, title="t", header=gpu.gpu_header, print_fn=lines.append)
    assert data["results"] == [] and "time budget" in data["meta"]["stopped"]
    assert any(line.startswith("STOPPED") for line in "\n".join(lines).splitlines())
    assert "| `native` | – | – |" in "\n".join(lines)


# -- out of memory ----------------------------------------------------------------------------------------


def test_oom_becomes_a_row_and_the_model_is_restored(tiny_llama):
    ids = torch.arange(1, 30)[None]
    with torch.no_grad():
        before = tiny_llama.model(input_ids=ids).logits

    def boom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 64.00 GiB")

    task = object()
    row = cpu.measure(tiny_llama, "pi:factor=2", "passkey", task, 400, 0, run_eval=boom)
    assert row["status"] == "oom" and "out of memory" in row["error"] and row["max_context"] == 512
    row = cpu.measure(tiny_llama, "pi:factor=2", "passkey", task, 400, 0, run_eval=lambda *a, **k: 1 / 0)
    assert row["status"] == "error" and row["error"].startswith("ZeroDivisionError")
    with torch.no_grad():
        assert torch.equal(tiny_llama.model(input_ids=ids).logits, before)  # undone after each failure
    assert cpu.is_oom(RuntimeError("CUDA error: out of memory"))
    assert cpu.is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"))
    assert not cpu.is_oom(RuntimeError("shape mismatch"))
    data = {"results": [{**row, "status": "oom"}]}
    assert cpu.passkey_cell(data["results"]) == "oom"
    assert cpu.ppl_cell([], None, "ppl") == "–"
