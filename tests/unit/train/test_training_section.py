"""The `training:` keys the loop sets itself: batch_size: auto and learning_rate: auto, and their error messages."""

import pytest

from tunesmith.config.load import build_config
from tunesmith.config.training import AUTO_BATCH_SIZE
from tunesmith.errors import ConfigError


def training(**keys):
    return build_config({"data": {"train": "x"}, "training": keys}).training


def test_auto_is_accepted_for_batch_size_and_learning_rate():
    section = training(batch_size="auto", learning_rate="auto")
    assert section.batch_size == "auto" and section.examples_per_batch == AUTO_BATCH_SIZE
    assert section.learning_rate == "auto"
    assert section.method_learning_rate == 2e-4  # lora's default: the range test's centre and fallback
    assert training(batch_size=3).examples_per_batch == 3


def test_a_number_still_works_and_the_method_default_fills_a_missing_rate():
    assert training(learning_rate="1e-3").learning_rate == 1e-3  # YAML reads 1e-3 as a string
    assert training().learning_rate == 2e-4
    full = build_config({"data": {"train": "x"}, "method": {"name": "full"}, "training": {"learning_rate": "auto"}})
    assert full.training.learning_rate == "auto" and full.training.method_learning_rate == 2e-5


@pytest.mark.parametrize("key, value, expected", [
    ("batch_size", "big", "input should be a valid integer (1 or more) or 'auto'"),
    ("batch_size", 0, "input should be a valid integer (1 or more) or 'auto'"),
    ("learning_rate", "fast", "input should be a number above 0, or 'auto'"),
    ("learning_rate", -1, "input should be a number above 0, or 'auto'"),
])
def test_a_wrong_value_gets_one_line_naming_the_key(key, value, expected):
    with pytest.raises(ConfigError) as info:
        training(**{key: value})
    lines = str(info.value).splitlines()
    assert lines[1].startswith(f"  training.{key}: {expected}") and lines[1].endswith(f"(got {value!r})")
    assert len(lines) == 2
