"""The sweep's pieces that need no training: the space's keys and values, Optuna's suggestions, the objective."""

import sys
from pathlib import Path

import optuna
import pytest

from tunesmith.errors import ConfigError
from tunesmith.pipelines.sweep import run_sweep
from tunesmith.pipelines.sweep_space import (check_key, check_objective, check_space, check_space_unchanged,
                                             distribution, suggest, trial_config)

EXAMPLE = Path(__file__).parents[3] / "examples" / "cooking-assistant" / "sweep.yaml"

SPACE = {
    "training.learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
    "training.batch_size": {"type": "int", "low": 2, "high": 8, "step": 2},
    "method.r": {"type": "categorical", "choices": [4, 8, 16]},
    "method.dropout": {"type": "float", "low": 0.0, "high": 0.2},
}


@pytest.fixture
def sweep_config(tiny_run_config):
    def make(space=None, **sweep):
        return tiny_run_config(sweep={"space": space or SPACE, **sweep})

    return make


def test_each_parameter_type_maps_to_its_optuna_distribution(sweep_config):
    config = sweep_config()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    values = suggest(trial, config.sweep.space)
    study.tell(trial, 1.0)
    assert study.trials[0].distributions == {
        "training.learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True),
        "training.batch_size": optuna.distributions.IntDistribution(2, 8, step=2),
        "method.r": optuna.distributions.CategoricalDistribution([4, 8, 16]),
        "method.dropout": optuna.distributions.FloatDistribution(0.0, 0.2),
    }
    assert isinstance(values["training.batch_size"], int) and values["training.batch_size"] in (2, 4, 6, 8)
    assert 1e-5 <= values["training.learning_rate"] <= 1e-3 and values["method.r"] in (4, 8, 16)
    # what the resume check compares against is what suggest records
    assert {k: distribution(p) for k, p in config.sweep.space.items()} == study.trials[0].distributions


def test_a_resumed_study_takes_new_bounds_but_not_new_choices(sweep_config):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    suggest(trial, sweep_config().sweep.space)
    study.tell(trial, 1.0)
    wider = {**SPACE, "training.learning_rate": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True}}
    check_space_unchanged(study, sweep_config(space=wider).sweep.space, "s")
    other = {**SPACE, "method.r": {"type": "categorical", "choices": [4, 8]}}
    with pytest.raises(ConfigError) as info:
        check_space_unchanged(study, sweep_config(space=other).sweep.space, "s")
    assert str(info.value).startswith("sweep.space.method.r: study 's' searched it as CategoricalDistribution(")
    assert str(info.value).endswith("(trial 0); keep that, or start a new study with --set sweep.study=NAME")


def test_a_trial_config_sets_the_values_and_drops_the_sweep(sweep_config, tmp_path):
    trial = trial_config(sweep_config(), {"method.r": 16, "training.learning_rate": 3e-4}, tmp_path / "trial-007",
                         source="sweep trial 7")
    assert trial.method.r == 16 and trial.training.learning_rate == 3e-4
    assert trial.sweep is None and trial.output_dir == str(tmp_path / "trial-007")
    assert trial.eval.compare_base is False  # the base model scores the same in every trial


@pytest.mark.parametrize("metric, direction, expected", [
    ("val_loss", "auto", "minimize"),
    ("perplexity", "auto", "minimize"),
    ("rouge_l", "auto", "maximize"),
    ("exact_match", "auto", "maximize"),
    ("rouge_l", "minimize", "minimize"),
])
def test_the_direction_follows_the_metric_unless_set(sweep_config, metric, direction, expected):
    assert check_objective(sweep_config(metric=metric, direction=direction)) == expected


def test_a_task_metric_can_be_the_objective(tiny_run_config):
    config = tiny_run_config(eval={"task": {"format": {"patterns": ["^Short answer: "]}}},
                             sweep={"metric": "format", "space": SPACE})
    assert check_objective(config) == "maximize"


@pytest.mark.parametrize("key, message", [
    ("training.learnin_rate",
     "sweep.space: unknown key 'training.learnin_rate'; did you mean 'training.learning_rate'?"),
    ("method.rr", "sweep.space: unknown key 'method.rr' for method lora; did you mean 'method.r'?"),
    ("training.epochs.first", "sweep.space: unknown key 'training.epochs.first': 'training.epochs' is a value, "
                              "not a section"),
    ("training", "sweep.space: 'training' is a section; search one of its keys, e.g. 'training.epochs'"),
    ("data.prepare.dedup.threshold", None),  # an unset section's keys are known from its type
    ("data.max_length", None),
    ("output_dir", "sweep.space: 'output_dir' cannot be searched: every trial runs in its own folder"),
])
def test_space_keys_are_checked_against_the_schema_before_any_trial(sweep_config, key, message):
    config = sweep_config(space={key: {"type": "categorical", "choices": [1]}})
    if message is None:
        check_key(config, key)
        return
    with pytest.raises(ConfigError) as info:
        run_sweep(config)
    assert str(info.value) == message
    assert not Path(config.output_dir).exists()  # no study, no trial folder


def test_a_metric_the_config_does_not_score_is_named(sweep_config):
    config = sweep_config(metric="accuracy")
    with pytest.raises(ConfigError) as info:
        run_sweep(config)
    assert str(info.value) == ("sweep.metric: 'accuracy' is not scored by this config; choose val_loss or one of "
                               "perplexity, bleu, rouge_l, exact_match (eval.metrics and eval.task)")


def test_val_loss_needs_validation_data(tiny_run_config):
    config = tiny_run_config(data={"validation_split": 0.0}, sweep={"space": SPACE, "pruner": "none"})
    with pytest.raises(ConfigError, match="^sweep.metric: val_loss needs validation data; give data.validation"):
        check_objective(config)


def test_a_value_the_config_rejects_is_found_before_any_trial(sweep_config):
    config = sweep_config(space={"method.r": {"type": "categorical", "choices": [8, 0]}})
    with pytest.raises(ConfigError) as info:
        check_space(config)
    assert str(info.value).startswith("sweep.space.method.r = 0: invalid configuration\n")
    assert "(got 0)" in str(info.value)


@pytest.mark.parametrize("parameter, message", [
    ({"type": "int", "low": 1, "high": 2.5}, "an int parameter needs whole numbers for low, high and step"),
    ({"type": "float", "low": 1e-5, "high": 1e-3, "log": True, "step": 1e-5}, "log: true and step cannot be combined"),
    ({"type": "categorical", "choices": [4], "low": 1}, "a categorical parameter takes only choices"),
    ({"type": "float", "low": 0, "high": 1, "choices": [1]}, "a float parameter takes low and high, not choices"),
    ({"type": "categorical", "choices": [[4, 8]]}, "categorical choices must be numbers, strings, booleans or null"),
])
def test_bad_parameters_are_named(sweep_config, parameter, message):
    with pytest.raises(ConfigError, match=message) as info:
        sweep_config(space={"method.r": parameter})
    assert "sweep.space.method.r" in str(info.value)


def test_the_cooking_example_sweep_checks(monkeypatch):
    from tunesmith.config.load import load_config

    config = load_config(EXAMPLE)
    check_space(config)
    assert check_objective(config) == "minimize" and config.sweep.pruner == "median"


def test_the_command_prints_one_line_for_a_bad_metric(tmp_path, monkeypatch, capsys):
    from tunesmith.cli.main import main

    monkeypatch.setattr(sys, "argv", ["tunesmith", "sweep", str(EXAMPLE), "--set", "sweep.metric=bleu_score",
                                      "--set", f"output_dir={tmp_path / 'sweep'}"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: sweep.metric: 'bleu_score' is not scored by this config; choose val_loss or one of perplexity, "
        "bleu, rouge_l, exact_match (eval.metrics and eval.task)")
