"""`eval.scratch.learning_rate`: the from-scratch baseline's rate, GPT-3's by model size under auto (the default) or
the number a user sets; a bad value is one message naming the key; the rate and why reach the scratch run and its
report line, and a changed rate trains the baseline again instead of reusing it."""

import json
from pathlib import Path

import pytest
from rich.console import Console

import tunesmith.run  # train_scratch imports it (and the loop) inside; at collection, as the other run tests do
from tunesmith.config.load import build_config, load_config
from tunesmith.errors import ConfigError
from tunesmith.evaluate import scratch as scratch_module
from tunesmith.evaluate.scratch import scratch_learning_rate, train_scratch
from tunesmith.provenance import write_provenance


def raw_config(tmp_path, **eval_keys):
    train = tmp_path / "train.jsonl"
    train.write_text('{"prompt": "a", "completion": "b"}\n')
    return {"model": "some/model", "data": {"train": str(train), "max_length": 64}, "method": {"name": "lora", "r": 4},
            "training": {"max_steps": 4, "batch_size": 2}, "eval": {"metrics": ["perplexity"], **eval_keys},
            "output_dir": str(tmp_path / "run")}


def test_auto_is_the_default_and_a_number_is_kept(tmp_path):
    assert build_config(raw_config(tmp_path)).eval.scratch.learning_rate == "auto"
    assert build_config(raw_config(tmp_path, scratch={"learning_rate": 3e-3})).eval.scratch.learning_rate == 3e-3


def test_a_command_line_override_reads_as_a_number(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(raw_config(tmp_path)))
    config = load_config(path, ["eval.scratch.learning_rate=1e-3"])
    assert config.eval.scratch.learning_rate == pytest.approx(1e-3)


@pytest.mark.parametrize("value", [0, -1e-3, "fast", None])
def test_a_bad_rate_names_the_key_and_what_would_be_right(tmp_path, value):
    with pytest.raises(ConfigError) as error:
        build_config(raw_config(tmp_path, scratch={"learning_rate": value}), source="run.yaml")
    message = str(error.value)
    assert "run.yaml: invalid configuration" in message
    assert "eval.scratch.learning_rate: input should be a number above 0, or 'auto'" in message
    assert message.endswith(f"(got {value!r})")
    assert message.count("\n") == 1  # one line for the key, not one per member of the union


def test_an_unknown_key_in_the_section_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"eval\.scratch\.lr: unknown key"):
        build_config(raw_config(tmp_path, scratch={"lr": 1e-3}))


def test_a_set_rate_is_used_and_the_reason_says_where_it_came_from():
    rate, why = scratch_learning_rate(135_000_000, 2e-3)
    assert rate == 2e-3
    assert why.startswith("learning rate 0.002: set by eval.scratch.learning_rate (auto: 0.0006, GPT-3's")
    rate, why = scratch_learning_rate(135_000_000, "auto")
    assert rate == 6e-4 and "eval.scratch.learning_rate: auto" in why and "Brown et al. 2020" in why


class FakeRun:
    """Stands in for tunesmith.run.run: records each call and leaves a finished run's files (config, model, steps)."""

    def __init__(self):
        self.calls = []

    def __call__(self, config, **options):
        self.calls.append((config, options))
        folder = Path(config.output_dir)
        write_provenance(folder, config)
        (folder / "model").mkdir(exist_ok=True)
        write_steps(folder, config.training.max_steps)


def write_steps(folder, steps):
    folder.mkdir(parents=True, exist_ok=True)
    line = {"type": "train", "step": steps, "tokens_seen": 100 * steps, "elapsed": 1.0}
    (folder / "metrics.jsonl").write_text(json.dumps(line) + "\n")


@pytest.fixture
def tuned_run(tmp_path):
    write_steps(tmp_path / "run", 4)
    return tmp_path / "run"


def test_the_configured_rate_trains_the_baseline_and_a_new_rate_trains_it_again(tmp_path, tuned_run, monkeypatch):
    fake = FakeRun()
    monkeypatch.setattr(tunesmith.run, "run", fake)
    console = Console(record=True, width=400)
    config = build_config(raw_config(tmp_path, scratch={"learning_rate": 2e-3}))
    folder, given = train_scratch(config, tuned_run, 135_000_000, console)
    trained, options = fake.calls[-1]
    assert trained.training.learning_rate == given["learning_rate"] == 2e-3
    assert (trained.training.max_steps, trained.model_init) == (4, "scratch")
    assert options == {"resume": False, "overwrite": False, "console": console}
    assert "set by eval.scratch.learning_rate" in given["learning_rate_reason"]
    assert given["learning_rate_reason"] in console.export_text().replace("\n", "")

    same = train_scratch(config, tuned_run, 135_000_000, console)[1]
    assert same["reused"] and len(fake.calls) == 1

    auto = build_config(raw_config(tmp_path))
    given = train_scratch(auto, tuned_run, 135_000_000, console)[1]
    assert not given["reused"] and given["learning_rate"] == 6e-4
    assert fake.calls[-1][0].training.learning_rate == 6e-4
    assert fake.calls[-1][1]["overwrite"] and not fake.calls[-1][1]["resume"]  # the old one is replaced, not resumed
    assert folder == tuned_run / scratch_module.SCRATCH_DIR
