"""The ``lc`` command line: listings, composition, evaluation, and clean errors without tracebacks."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from longctx.cli import cli, parse_length
from longctx.errors import SpecError


@pytest.fixture
def run():
    runner = CliRunner()

    def _run(*args: str):
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        return result

    return _run


def test_plugins_lists_every_technique_with_provenance(run):
    r = run("plugins", "--json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    by_name = {(t["family"], t["name"]): t for t in data["techniques"]}
    expected = {
        ("positional", "pi"), ("positional", "ntk"), ("positional", "native"),
        ("attention", "sdpa"), ("attention", "streaming-llm"),
        ("kv", "dynamic"), ("kv", "sink-window"),
        ("reduction", "truncate-middle"), ("reduction", "bm25"),
        ("augmentation", "untie-knots"), ("evaluation", "passkey"),
    }  # fmt: skip
    assert expected <= set(by_name)
    pi = by_name[("positional", "pi")]
    assert pi["distribution"] == "longctx" and pi["version"] and "2306.15595" in pi["paper"]
    assert {"name": "factor", "type": "float", "default": 2.0} == {
        k: pi["parameters"][0][k] for k in ("name", "type", "default")
    }
    assert by_name[("attention", "streaming-llm")]["requires"] == ["kv=sink-window"]


def test_plugins_family_filter_and_table(run):
    r = run("plugins", "--family", "kv")
    assert r.exit_code == 0 and "sink-window" in r.stdout and "bm25" not in r.stdout


def test_blocking_a_plugin(run):
    r = run("-p", "no:bm25", "plugins", "--json")
    data = json.loads(r.stdout)
    assert {p["name"]: p["status"] for p in data["plugins"]}["bm25"] == "blocked"
    assert not any(t["name"] == "bm25" for t in data["techniques"])
    r = run("-p", "bm25", "plugins")
    assert r.exit_code == 2 and "no:NAME" in r.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["positional=yarnn", "--dry-run"], "unknown positional technique 'yarnn'; available: abf, "),
        (["positional=pi:factr=2", "--dry-run"], "unknown parameter 'factr'; valid parameters: factor, layers"),
        (["positional=pi:factor=big", "--dry-run"], "pi:factor: expected a number, got 'big'"),
        (["positional=pi:factor=0.5", "--dry-run"], "factor must be >= 1.0"),
        (["positonal=pi", "--dry-run"], "cannot read 'positonal=pi'"),
        (["--prompt", "  "], "the prompt is empty"),
        ([], "nothing to run"),
        (["--prompt", "a", "--prompt-file", "b"], "either --prompt or --prompt-file"),
        (["--prompt-file", "/no/such/file.txt"], "cannot read prompt file"),
        (["--model", "/no/such/model", "--dry-run"], "model path '/no/such/model' does not exist"),
        (["--model", "gpt-17", "--dry-run"], "unknown model 'gpt-17'"),
        (["--from", "/no/such.toml", "--dry-run"], "cannot read spec file"),
    ],
)
def test_compose_errors_are_one_clear_line(run, args, message):
    r = run("compose", *args)
    assert r.exit_code == 2
    assert message in " ".join(r.stderr.split())
    assert "Traceback" not in r.output


def test_malformed_toml(run, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[pipeline\npositional = ")
    r = run("compose", "--from", str(bad), "--dry-run")
    assert r.exit_code == 2 and "malformed TOML" in r.stderr


def test_conflicting_components_name_both(run):
    r = run("compose", "--model", "tiny-llama", "attention=streaming-llm:window=8", "kv=dynamic", "--dry-run")
    assert r.exit_code == 2
    assert "requires kv=sink-window, but kv=dynamic was chosen" in " ".join(r.stderr.split())


def test_rope_technique_on_an_encoder_is_refused(run):
    r = run("compose", "--model", "all-minilm-l6-v2", "positional=ntk", "--dry-run")
    assert r.exit_code == 2 and "needs a model with rope" in " ".join(r.stderr.split())


def test_prompt_longer_than_window_suggests_a_reducer(run):
    r = run("compose", "--model", "tiny-llama", "--prompt", "y" * 600)
    assert r.exit_code == 2
    err = " ".join(r.stderr.split())
    assert "window is 256 tokens" in err and "reduce=truncate-middle" in err


def test_compose_runs_saves_and_reloads(run, tmp_path):
    toml = tmp_path / "p.toml"
    r = run(
        "compose", "--model", "tiny-llama", "positional=pi:factor=4", "reduce=truncate-middle:budget=100",
        "--save", str(toml), "--prompt", "x " * 200 + "\nquestion?", "--max-new-tokens", "3", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["result"]["new_tokens"] == 3 and out["result"]["reduction"]["tokens_out"] <= 100
    assert [c["technique"] for c in out["pipeline"]["components"]] == ["truncate-middle", "pi", "dynamic", "sdpa"]
    r2 = run("compose", "--from", str(toml), "--dry-run", "--json")
    again = json.loads(r2.stdout)["pipeline"]
    assert again["spec"] == out["pipeline"]["spec"]
    assert "model=tiny-llama" in again["spec"]


def test_compose_tree_shows_auto_filled_requirement(run):
    r = run("compose", "--model", "tiny-gemma3", "attention=streaming-llm:sinks=2,window=8", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "kv = sink-window" in r.stdout and "unbounded" in r.stdout
    r = run("compose", "--model", "tiny-gemma3", "attention=streaming-llm:sinks=2,window=8", "--dry-run", "--json")
    desc = json.loads(r.stdout)["pipeline"]
    assert desc["notes"] == ["kv=sink-window:sinks=2,window=8,layers=full added: required by streaming-llm"]
    assert desc["kv"]["technique"] == "sink-window" and desc["max_context"] is None


def test_eval_writes_results_and_resumes(run, tmp_path):
    out = tmp_path / "run"
    pipelines = ["default", "reduce=bm25:budget=64", "positional=pi:factor=4"]
    args = ["eval", "--model", "tiny-llama", "--task", "passkey", "--lengths", "400", "--depths", "0,1", "--out",
            str(out)] + [x for p in pipelines for x in ("--pipeline", p)]  # fmt: skip
    r = run(*args, "--json")
    assert r.exit_code == 0, r.output
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 6  # 2 depths x 3 pipelines
    rows = [json.loads(x) for x in lines]
    assert {r["pipeline"] for r in rows} == set(pipelines)
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)
    # the 400-token case does not fit the tiny model's 256-token window: recorded, not a crash
    assert all("window" in r["error"] for r in rows if r["pipeline"] == "default")
    assert all(r["error"] is None for r in rows if r["pipeline"] != "default")
    r = run(*args, "--json")  # resume: nothing new is run
    assert len((out / "results.jsonl").read_text().splitlines()) == 6
    summary = json.loads(r.stdout)
    assert {row["pipeline"] for row in summary["by_length"]} == set(pipelines)
    r = run(*args)  # the table, including a cell where every case errored
    assert r.exit_code == 0 and "errors" in r.stdout


def test_eval_rejects_bad_lengths_and_depths(run):
    r = run("eval", "--task", "passkey", "--lengths", "lots")
    assert r.exit_code == 2 and "cannot read length" in r.stderr
    r = run("eval", "--task", "passkey", "--lengths", "1k", "--depths", "1.5")
    assert r.exit_code == 2 and "within [0, 1]" in r.stderr


def test_parse_length():
    assert parse_length("4k") == 4096 and parse_length("1500") == 1500 and parse_length("1.5k") == 1536
    with pytest.raises(SpecError):
        parse_length("-3")


@pytest.mark.real_model
def test_compose_on_gemma_json(run):
    r = run("compose", "positional=pi:factor=2", "--prompt", "The capital of France is", "--max-new-tokens", "4",
            "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["pipeline"]["model"]["model_type"] == "gemma3_text"
    assert out["pipeline"]["max_context"] == 65536
    assert out["result"]["new_tokens"] >= 1 and out["result"]["kv_bytes"] > 0
