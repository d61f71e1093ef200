"""The method section: each method's defaults, and errors that name the key to change."""

import pytest

from tunesmith.config.load import build_config, load_config, save_config
from tunesmith.errors import ConfigError
from tunesmith.methods import registry


def config_with(method: dict):
    return build_config({"data": {"train": "train.jsonl"}, "method": method}, source="run.yaml")


def error_for(method: dict) -> str:
    with pytest.raises(ConfigError) as raised:
        config_with(method)
    return str(raised.value)


@pytest.mark.parametrize("name", registry.names())
def test_every_method_validates_with_defaults_and_gets_its_learning_rate(name):
    config = config_with({"name": name})

    assert config.method.name == name
    assert config.training.learning_rate == registry.get(name).learning_rate


def test_qlora_defaults_are_4bit_nf4_with_double_quantisation():
    method = config_with({"name": "qlora"}).method

    assert (method.bits, method.quant_type, method.double_quant, method.compute_dtype) == (4, "nf4", True, "auto")
    assert (method.r, method.init, method.rslora, method.dora) == (16, "default", False, False)


def test_prompt_tuning_text_init_without_text_names_init_text():
    assert error_for({"name": "prompt_tuning", "init": "text"}) == (
        "run.yaml: invalid configuration\n"
        "  method.init_text: required when init is 'text': the text whose token embeddings start the virtual "
        "tokens (got None)"
    )


def test_init_text_without_text_init_is_not_silently_ignored():
    assert "method.init_text: used only with init: text" in error_for({"name": "prompt_tuning", "init_text": "Hi"})


def test_a_key_no_method_has_lists_the_valid_keys():
    message = error_for({"name": "lora", "rank": 4})

    assert "  method.rank: unknown key; valid keys here: alpha, dora, dropout, init, modules_to_save, name, r, " \
           "rslora, shared_dropout_mask, target_modules" in message


def test_a_misspelt_option_gets_a_suggestion():
    assert "method.quant_typ: unknown key; did you mean 'method.quant_type'?" in error_for(
        {"name": "qlora", "quant_typ": "nf4"}
    )


@pytest.mark.parametrize("key", ["quant_type", "double_quant", "compute_dtype"])
def test_four_bit_options_are_rejected_with_8_bits(key):
    value = {"quant_type": "fp4", "double_quant": False, "compute_dtype": "bf16"}[key]

    message = error_for({"name": "qlora", "bits": 8, key: value})

    assert f"method.{key}: applies only to 4-bit quantisation; remove it or set bits: 4" in message


def test_bits_must_be_4_or_8():
    assert "method.bits: input should be 4 or 8 (got 3)" in error_for({"name": "qlora", "bits": 3})


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_qlora_rejects_initialisations_that_rewrite_the_base(init):
    assert f"method.init: '{init}' rewrites the base weights, which qlora keeps quantised" in error_for(
        {"name": "qlora", "init": init}
    )


def test_dora_with_pissa_is_rejected():
    assert "method.init: 'pissa' cannot be combined with dora: true" in error_for(
        {"name": "lora", "dora": True, "init": "pissa"}
    )


@pytest.mark.parametrize(
    ("ia3", "expected"),
    [
        ({"target_modules": ["k_proj", "down_proj"]},
         "method.feedforward_modules: required when target_modules is set"),
        ({"feedforward_modules": ["down_proj"]}, "method.feedforward_modules: needs method.target_modules too"),
        ({"target_modules": ["k_proj"], "feedforward_modules": ["down_proj"]},
         "method.feedforward_modules: down_proj not in method.target_modules"),
    ],
)
def test_ia3_feedforward_modules_must_be_among_the_targets(ia3, expected):
    assert expected in error_for({"name": "ia3", **ia3})


def test_unknown_method_lists_every_method():
    assert "method.name: unknown method 'adapter'; expected one of full, freeze, lora, qlora, ia3, prompt_tuning, " \
           "prefix_tuning, p_tuning" in error_for({"name": "adapter"})


@pytest.mark.parametrize(
    "method",
    [
        {"name": "qlora", "bits": 8},
        {"name": "qlora", "quant_type": "fp4", "double_quant": False, "compute_dtype": "bf16", "dora": True},
        {"name": "lora", "rslora": True, "init": "pissa", "modules_to_save": ["lm_head"], "target_modules": ["q_proj"]},
        {"name": "ia3", "target_modules": ["k_proj", "down_proj"], "feedforward_modules": ["down_proj"]},
        {"name": "prompt_tuning", "init": "text", "init_text": "Answer like a chef"},
        {"name": "prefix_tuning", "prefix_projection": True},
        {"name": "p_tuning", "encoder_hidden_size": 64},
    ],
)
def test_a_saved_config_loads_back_unchanged(method, tmp_path):
    # Run folders keep config.yaml with every key written out; loading a finished run reads it back.
    config = config_with(method)
    save_config(config, tmp_path / "config.yaml")

    assert load_config(tmp_path / "config.yaml").method == config.method
