"""Config errors name the key path and what would be right; overrides and path resolution work."""

from pathlib import Path

import pytest

from tunesmith.config.load import build_config, load_config
from tunesmith.errors import ConfigError

EXAMPLES = Path(__file__).parents[3] / "examples"


def error_of(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        build_config(raw)
    return str(info.value)


def test_unknown_top_level_key_suggests_closest():
    assert "  trainig: unknown key; did you mean 'training'?" in error_of({"data": {"train": "x"}, "trainig": {}})


def test_unknown_nested_key_suggests_closest():
    message = error_of({"data": {"train": "x"}, "training": {"epoch": 2}})
    assert "  training.epoch: unknown key; did you mean 'training.epochs'?" in message


def test_unknown_method_key_is_checked_against_that_method():
    message = error_of({"data": {"train": "x"}, "method": {"name": "lora", "rr": 2}})
    assert "  method.rr: unknown key; did you mean 'method.r'?" in message


def test_unknown_method_name_lists_the_methods():
    message = error_of({"data": {"train": "x"}, "method": {"name": "lorax"}})
    assert "  method.name: unknown method 'lorax'; expected one of " in message
    assert "lora" in message.split("expected one of ")[1]


def test_wrong_type_names_key_and_expected_type():
    message = error_of({"data": {"train": "x"}, "training": {"batch_size": "big"}})
    assert "  training.batch_size: input should be a valid integer" in message
    assert "(got 'big')" in message


def test_missing_required_section():
    assert "  data: required key is missing" in error_of({})


def test_method_default_learning_rate():
    assert build_config({"data": {"train": "x"}}).training.learning_rate == 2e-4
    assert build_config({"data": {"train": "x"}, "method": {"name": "full"}}).training.learning_rate == 2e-5


def test_set_overrides_are_typed_and_nested(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {train: d/train.jsonl}\n")
    config = load_config(path, ["training.epochs=2", "method.target_modules=[q_proj, v_proj]", "eval.compare_base=false"])
    assert config.training.epochs == 2
    assert config.method.target_modules == ["q_proj", "v_proj"]
    assert config.eval.compare_base is False
    # data paths are relative to the config file's folder
    assert config.data.train == str(tmp_path / "d" / "train.jsonl")


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config(EXAMPLES / "cooking-assistant" / "lora.yaml", ["training.epochs"])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_example_config_validates(path):
    config = load_config(path)
    assert Path(config.data.images if config.family == "diffusion" else config.data.train).exists()
    assert path.read_text().startswith("# Run: ")


def test_option_of_another_method_names_that_method():
    message = error_of({"data": {"train": "x"}, "method": {"name": "lora", "bits": 4}})
    assert "  method.bits: unknown key for method lora; it is an option of qlora" in message


def test_cross_section_rule_reads_as_one_sentence():
    message = error_of({"data": {"train": "x"}, "method": {"name": "prefix_tuning"},
                        "training": {"gradient_checkpointing": True}})
    assert message.endswith("\n  prefix_tuning cannot train with training.gradient_checkpointing: true; turn it off")
