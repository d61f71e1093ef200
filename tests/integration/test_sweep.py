"""`tunesmith sweep` end to end on the tiny model: trials are real runs, the pruner stops a bad one, and a stopped
sweep continues where it stopped."""

import json
from pathlib import Path

import pytest
from rich.console import Console

from tunesmith.config.load import load_config
from tunesmith.pipelines.sweep import run_sweep
from tunesmith.train.loop import CancelToken, TrainingInterrupted

pytestmark = pytest.mark.slow

QUIET = Console(quiet=True)


class Recorder:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event.to_dict())

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]


def sweep_config(tiny_run_config, tmp_path, **sweep):
    space = sweep.pop("space", {
        "training.learning_rate": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
        "method.r": {"type": "categorical", "choices": [2, 4]},
    })
    return tiny_run_config(output_dir=str(tmp_path / "sweep"),
                           sweep={"trials": 3, "sampler": "random", "pruner": "none", "space": space, **sweep})


def test_three_trials_write_a_table_an_importance_plot_and_a_best_config_that_loads(tiny_run_config, tmp_path):
    result = run_sweep(sweep_config(tiny_run_config, tmp_path), console=QUIET)
    sweep_dir = tmp_path / "sweep"
    assert [r["state"] for r in result.trials] == ["complete"] * 3
    saved = json.loads((sweep_dir / "trials.json").read_text())
    assert [t["number"] for t in saved["trials"]] == [0, 1, 2] and saved["direction"] == "minimize"
    values = [t["metric"] for t in saved["trials"]]
    assert result.best["metric"] == min(values) and saved["best"] == result.best["number"]
    for row in saved["trials"]:
        run_dir = Path(row["run_dir"])
        assert run_dir.name == f"trial-{row['number']:03d}" and (run_dir / "adapter").is_dir()
        assert not (run_dir / "checkpoints").exists()  # a finished trial is never resumed
        assert set(row["params"]) == {"training.learning_rate", "method.r"} and row["seconds"] > 0
        # the trial ran what the table says
        trial = load_config(run_dir / "config.yaml")
        assert trial.method.r == row["params"]["method.r"] and trial.sweep is None
        assert trial.training.learning_rate == pytest.approx(row["params"]["training.learning_rate"])
    table = (sweep_dir / "trials.md").read_text()
    assert "| trial | state | training.learning_rate | method.r | val_loss | seconds | run | note |" in table
    assert table.count("| complete |") == 3

    best = load_config(result.best_config)
    assert result.best_config == sweep_dir / "best.yaml"
    assert best.sweep is None and best.output_dir == str(sweep_dir / "best")
    assert best.method.r == result.best["params"]["method.r"]
    assert best.training.learning_rate == pytest.approx(result.best["params"]["training.learning_rate"])
    assert best.eval.compare_base is True  # the user's setting, not the trials' shortcut

    assert (sweep_dir / "importance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(result.importance) == {"training.learning_rate", "method.r"}
    assert sum(result.importance.values()) == pytest.approx(1.0)


def test_the_median_pruner_stops_a_trial_planted_to_be_bad(tiny_run_config, tmp_path):
    good = {"training.learning_rate": {"type": "float", "low": 1e-2, "high": 1.1e-2}}
    run_sweep(sweep_config(tiny_run_config, tmp_path, trials=1, pruner="median", startup_trials=1, space=good),
              console=QUIET)
    # The same study, now searching only learning rates that wreck the model.
    bad = {"training.learning_rate": {"type": "float", "low": 20.0, "high": 30.0}}
    recorder = Recorder()
    result = run_sweep(sweep_config(tiny_run_config, tmp_path, trials=2, pruner="median", startup_trials=1,
                                    space=bad), console=QUIET, on_event=recorder)
    assert [r["state"] for r in result.trials] == ["complete", "pruned"]
    assert result.trials[1]["note"].startswith("pruned at step 3 (val_loss ")
    assert result.best["number"] == 0
    assert max(e["step"] for e in recorder.of("step")) == 3  # of 6: stopped at the first evaluation
    assert recorder.of("run_finished") == [] and recorder.of("evaluation")[0]["val_loss"] > result.best["metric"]
    trial_dir = tmp_path / "sweep" / "trial-001"
    assert not (trial_dir / "checkpoints").exists() and not (trial_dir / "interrupted.json").exists()


def test_a_stopped_sweep_continues_the_stopped_trial_and_never_reruns_finished_ones(tiny_run_config, tmp_path):
    config = sweep_config(tiny_run_config, tmp_path, trials=2)
    token = CancelToken()

    def stop_trial_1_at_step_2(event):
        if event.type == "step" and event.step == 2 and current["run_dir"].endswith("trial-001"):
            token.cancel()
        if event.type == "run_started":
            current["run_dir"] = str(event.run_dir)

    current = {}
    with pytest.raises(TrainingInterrupted, match=r"^sweep stopped in trial 1 at step 2 \(checkpoint saved\)"):
        run_sweep(config, console=QUIET, on_event=stop_trial_1_at_step_2, cancel=token)
    stopped = json.loads((tmp_path / "sweep" / "trials.json").read_text())["trials"]
    assert [t["state"] for t in stopped] == ["complete", "fail", "waiting"]

    again = Recorder()
    result = run_sweep(config, console=QUIET, on_event=again)
    assert [e["run_dir"] for e in again.of("run_started")] == [str(tmp_path / "sweep" / "trial-001")]
    assert again.of("training_started")[0]["resumed"] is True and again.of("training_started")[0]["step"] == 2
    assert [r["state"] for r in result.trials] == ["complete", "fail", "complete"]
    assert result.trials[1]["note"] == "stopped at step 2; continued by trial 2"
    assert result.trials[2]["note"] == "continues trial 1" and result.trials[2]["params"] == stopped[1]["params"]

    finished = Recorder()
    run_sweep(config, console=QUIET, on_event=finished)
    assert finished.events == []  # the study already holds its two finished trials


def test_the_command_runs_a_sweep_in_the_named_storage(tiny_run_config, tmp_path, monkeypatch, capsys):
    import sys

    from tunesmith.cli.main import main
    from tunesmith.config.load import save_config

    path = tmp_path / "sweep.yaml"
    save_config(sweep_config(tiny_run_config, tmp_path), path)
    storage = tmp_path / "shared.db"
    monkeypatch.setattr(sys, "argv", ["tunesmith", "sweep", str(path), "--trials", "1", "--storage",
                                      f"sqlite:///{storage}", "--set", "training.max_steps=3"])
    main()
    printed = capsys.readouterr().out
    assert "best: trial 0 (val_loss " in printed and f"config: {tmp_path / 'sweep' / 'best.yaml'}" in printed
    assert storage.is_file() and not (tmp_path / "sweep" / "study.db").exists()
    assert load_config(tmp_path / "sweep" / "best.yaml").training.max_steps == 3
