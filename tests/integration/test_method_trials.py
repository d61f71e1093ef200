"""`tunesmith methods`: every requested method trains for the same budget and lands in the table."""

import json
from pathlib import Path

from rich.console import Console

from tunesmith.pipelines.method_trials import run_trials, trial_config


def test_trial_config_keeps_data_and_sets_the_budget(tiny_run_config, tmp_path):
    config = tiny_run_config({"name": "lora", "r": 4, "alpha": 8})
    trial = trial_config(config, "qlora", 5, tmp_path)
    assert trial.method.name == "qlora" and trial.method.r == 4
    assert trial.training.max_steps == 5
    assert trial.training.learning_rate == 2e-4  # the method's own default, not the config's
    assert trial.data.train == config.data.train and trial.data.test is None


def test_trials_measure_each_method(tiny_run_config):
    config = tiny_run_config()
    rows = run_trials(config, ["full", "lora", "ia3"], steps=3, console=Console(quiet=True))
    assert [r["method"] for r in rows] == ["full", "lora", "ia3"]
    for row in rows:
        assert "error" not in row, row
        assert row["peak_memory_mib"] > 0 and row["seconds_per_step"] > 0 and row["val_loss"] > 0
    full, lora, ia3 = rows
    assert full["trainable_params"] == full["total_params"]
    assert ia3["trainable_params"] < lora["trainable_params"] < full["trainable_params"]
    saved = json.loads((Path(config.output_dir) / "method-trials" / "methods.json").read_text())
    assert [r["method"] for r in saved] == ["full", "lora", "ia3"]
