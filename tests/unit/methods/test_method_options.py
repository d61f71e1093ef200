"""Each config option reaches the PEFT config the model is wrapped with."""

import pytest

from tunesmith.errors import ConfigError
from tunesmith.methods.apply import apply_method, is_adapter

LORA_OPTIONS = [
    ({}, {"use_rslora": False, "use_dora": False, "init_lora_weights": True, "modules_to_save": None}),
    ({"rslora": True}, {"use_rslora": True}),
    ({"dora": True}, {"use_dora": True}),
    ({"init": "pissa"}, {"init_lora_weights": "pissa"}),
    ({"init": "olora"}, {"init_lora_weights": "olora"}),
    ({"init": "gaussian"}, {"init_lora_weights": "gaussian"}),
    ({"modules_to_save": ["norm"]}, {"modules_to_save": ["norm"]}),
    ({"r": 8, "alpha": 4, "dropout": 0.0, "target_modules": ["q_proj"]},
     {"r": 8, "lora_alpha": 4, "lora_dropout": 0.0, "target_modules": {"q_proj"}}),
]


@pytest.mark.parametrize(("options", "expected"), LORA_OPTIONS)
def test_lora_options_reach_the_peft_config(options, expected, tiny_llama, make_method):
    model = apply_method(tiny_llama, make_method(name="lora", **options))

    config = model.peft_config["default"]
    assert {key: getattr(config, key) for key in expected} == expected


def test_a_trained_head_stays_tied_to_the_input_embedding_and_the_config_is_untouched(tiny_llama, make_method):
    method = make_method(name="lora", modules_to_save=["lm_head"])

    model = apply_method(tiny_llama, method).base_model.model

    assert model.lm_head.modules_to_save["default"].weight is model.model.embed_tokens.modules_to_save["default"].weight
    assert method.modules_to_save == ["lm_head"]  # PEFT rewrites the list it is given


def test_ia3_defaults_to_pefts_modules_for_the_architecture(tiny_llama, make_method):
    config = apply_method(tiny_llama, make_method(name="ia3")).peft_config["default"]

    assert config.peft_type == "IA3"
    assert set(config.target_modules) == {"k_proj", "v_proj", "down_proj"}
    assert set(config.feedforward_modules) == {"down_proj"}


def test_ia3_modules_can_be_chosen(tiny_llama, make_method):
    method = make_method(name="ia3", target_modules=["q_proj", "up_proj"], feedforward_modules=["up_proj"])

    config = apply_method(tiny_llama, method).peft_config["default"]

    assert (config.target_modules, config.feedforward_modules) == ({"q_proj", "up_proj"}, {"up_proj"})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"name": "prompt_tuning", "num_virtual_tokens": 3}, {"peft_type": "PROMPT_TUNING", "num_virtual_tokens": 3}),
        ({"name": "prefix_tuning", "prefix_projection": True},
         {"peft_type": "PREFIX_TUNING", "prefix_projection": True}),
        ({"name": "p_tuning", "encoder_hidden_size": 16}, {"peft_type": "P_TUNING", "encoder_hidden_size": 16}),
    ],
)
def test_prompt_learning_options_reach_the_peft_config(spec, expected, tiny_llama, make_method):
    config = apply_method(tiny_llama, make_method(**spec)).peft_config["default"]

    assert {key: getattr(config, key) for key in expected} == expected


def test_every_peft_method_is_an_adapter_and_full_and_freeze_are_not(make_method):
    names = ["lora", "qlora", "ia3", "prompt_tuning", "prefix_tuning", "p_tuning"]
    assert all(is_adapter(make_method(name=name)) for name in names)
    assert not is_adapter(make_method(name="full")) and not is_adapter(make_method(name="freeze"))


def test_qlora_refuses_a_base_that_was_not_loaded_quantised(tiny_llama, make_method):
    with pytest.raises(ConfigError, match="needs the base loaded quantised; load it with .*load_model_for_method"):
        apply_method(tiny_llama, make_method(name="qlora"))
