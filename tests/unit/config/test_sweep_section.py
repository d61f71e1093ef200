"""The `sweep:` section validates its search space before any trial runs."""

import pytest

from tunesmith.errors import ConfigError


def test_a_search_space_validates(tiny_run_config):
    config = tiny_run_config(sweep={"trials": 3, "space": {
        "training.learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
        "method.r": {"type": "categorical", "choices": [4, 8]},
    }})
    assert config.sweep.trials == 3 and config.sweep.space["method.r"].choices == [4, 8]
    assert config.sweep.metric == "val_loss" and config.sweep.pruner == "median"


@pytest.mark.parametrize("parameter, message", [
    ({"type": "float", "low": 1e-3, "high": 1e-5}, "a float parameter needs low < high"),
    ({"type": "float", "low": 0.0, "high": 1.0, "log": True}, "log: true needs low > 0"),
    ({"type": "categorical"}, "a categorical parameter needs choices"),
])
def test_bad_parameters_are_named(tiny_run_config, parameter, message):
    with pytest.raises(ConfigError, match=message) as info:
        tiny_run_config(sweep={"space": {"training.learning_rate": parameter}})
    assert "sweep.space.training.learning_rate" in str(info.value)
