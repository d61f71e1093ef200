"""`tunesmith data check | prepare | report | preview` on the command line."""

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tunesmith.cli.main import app
from tunesmith.errors import ConfigError


def invoke(*args):
    return CliRunner().invoke(app, ["data", *map(str, args)])


def test_check_lists_every_problem_and_exits_1(write_jsonl, make_chat):
    write_jsonl("train.jsonl", [make_chat("q", "a"), {"messages": [{"role": "user", "content": "q"}]},
                                make_chat("q2", "a2"), make_chat("q3", "a3")])
    result = invoke("check", "train.jsonl")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "train.jsonl:2: messages: no assistant turn; each chat example needs at least one assistant message to "
        "learn from",
        "train.jsonl: 1 problem in 4 records, 3 valid chat examples; fix them, or let `tunesmith data prepare` "
        "quarantine the bad rows",
    ]


def test_check_of_a_good_file_exits_0(write_jsonl, make_chat):
    write_jsonl("train.jsonl", [make_chat(f"q{i}", f"a{i}") for i in range(3)])
    result = invoke("check", "train.jsonl", "--format", "chat")
    assert (result.exit_code, result.output) == (0, "train.jsonl: 3 chat examples, no problems\n")


def test_prepare_a_file_with_settings_on_the_command_line(write_jsonl, distinct_chats):
    write_jsonl("train.jsonl", distinct_chats(10) + distinct_chats(1))
    result = invoke("prepare", "train.jsonl", "--out", "out", "--set", "pii.enabled=false",
                    "--set", "split.test=0")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "prepared out: 9 train, 1 validation, 0 test; 1 quarantined in rejected.jsonl"
    )
    assert result.output.splitlines()[-1] == "report: out/report.md"
    assert invoke("prepare", "train.jsonl", "--out", "out", "--set", "pii.enabled=false", "--set",
                  "split.test=0").output.startswith("reused out: ")


def test_a_mistyped_setting_is_named(write_jsonl, distinct_chats):
    write_jsonl("train.jsonl", distinct_chats(3))
    result = invoke("prepare", "train.jsonl", "--out", "out", "--set", "dedup.treshold=0.9")
    assert isinstance(result.exception, ConfigError)
    assert "data.prepare.dedup.treshold: unknown key" in str(result.exception)


def test_a_data_file_needs_an_out_folder(write_jsonl, distinct_chats):
    write_jsonl("train.jsonl", distinct_chats(3))
    result = invoke("prepare", "train.jsonl")
    assert str(result.exception) == "train.jsonl: a data file needs --out DIR for the prepared set"


def write_config(tiny_model_dir, **data):
    Path("run.yaml").write_text(yaml.safe_dump({
        "model": str(tiny_model_dir), "data": {"train": "train.jsonl", "max_length": 64, **data},
        "training": {"max_steps": 1}, "output_dir": "runs/x",
    }))
    return "run.yaml"


def test_prepare_from_a_config_fills_the_cache_a_run_reuses(write_jsonl, distinct_chats, tiny_model_dir, workdir):
    write_jsonl("train.jsonl", distinct_chats(12))
    config = write_config(tiny_model_dir, prepare={"pii": {"enabled": False}})
    result = invoke("prepare", config)
    assert result.exit_code == 0, result.output
    folder = Path(result.output.split(":")[0].removeprefix("prepared "))
    assert folder.parent == workdir / "cache" / "prepared"
    assert json.loads((folder / "report.json").read_text())["unit"] == "tokens"  # the config's model counts
    from tunesmith.config.load import load_config
    from tunesmith.data.splits import load_run_data
    from tunesmith.models.load import load_tokenizer, resolve_model

    loaded = load_config(config)
    data = load_run_data(loaded.data, load_tokenizer(resolve_model(loaded.model)))
    assert data.prepared == folder and len(data.train) == 10


def test_report_of_a_file_and_of_a_prepared_folder(write_jsonl, distinct_chats):
    write_jsonl("train.jsonl", distinct_chats(5))
    result = invoke("report", "train.jsonl")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "report: train-report/report.md (also report.html, report.json)"
    assert json.loads(Path("train-report/report.json").read_text())["splits"]["all"]["examples"] == 5
    invoke("prepare", "train.jsonl", "--out", "out", "--set", "pii.enabled=false")
    assert invoke("report", "out").exit_code == 0
    assert set(json.loads(Path("out/report.json").read_text())["splits"]) == {"train", "validation", "test"}


def test_preview_highlights_the_trained_tokens(write_jsonl, make_chat, tiny_model_dir):
    write_jsonl("train.jsonl", [make_chat("How long for eggs?", "Nine minutes."),
                                make_chat("And rice?", "Eighteen minutes.")])
    config = write_config(tiny_model_dir, validation_split=0)
    result = invoke("preview", config, "--n", "1")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "trained tokens (the loss covers them) | context tokens"
    assert "train.jsonl:1" in lines[1] and "And rice?" not in result.output
    assert "How long for eggs?" in result.output and "Nine minutes." in result.output
    assert lines[-1].endswith(" trained") and " tokens, " in lines[-1]
