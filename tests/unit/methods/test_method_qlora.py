"""qlora: the base is quantised by bitsandbytes while loading (on this CPU), smaller than fp32, and a finished
run loads back onto the same quantised base."""

import bitsandbytes as bnb
import pytest
import torch

from tunesmith.config.load import build_config, save_config
from tunesmith.methods.apply import apply_method, save_final
from tunesmith.methods.parameters import parameter_counts
from tunesmith.models.load import load_model_for_method, load_trained
from tunesmith.models.quantize import bnb_config


@pytest.mark.parametrize(
    ("options", "layer_type", "quant_type", "nested"),
    [
        ({}, bnb.nn.Linear4bit, "nf4", True),
        ({"quant_type": "fp4", "double_quant": False}, bnb.nn.Linear4bit, "fp4", False),
        ({"bits": 8}, bnb.nn.Linear8bitLt, None, None),
    ],
)
def test_base_linear_layers_are_quantised_and_the_model_is_smaller_than_fp32(
    options, layer_type, quant_type, nested, tiny_llama, tiny_llama_source, make_method
):
    model = load_model_for_method(tiny_llama_source, make_method(name="qlora", **options))

    projection = model.model.layers[0].self_attn.q_proj
    assert type(projection) is layer_type
    if quant_type:
        assert projection.weight.quant_type == quant_type
        assert projection.weight.quant_state.nested is nested
    assert model.get_memory_footprint() < tiny_llama.get_memory_footprint()


def test_parameter_counts_count_4bit_weights_not_their_packed_bytes(tiny_llama, tiny_llama_source, make_method):
    method = make_method(name="qlora", r=4)
    qlora = apply_method(load_model_for_method(tiny_llama_source, method), method)
    lora = apply_method(tiny_llama, make_method(name="lora", r=4))

    assert parameter_counts(qlora) == parameter_counts(lora)


@pytest.mark.parametrize(
    ("compute_dtype", "mixed_precision", "expected"),
    [("auto", "no", torch.float32), ("auto", "bf16", torch.bfloat16), ("fp16", "bf16", torch.float16)],
)
def test_compute_dtype_follows_the_training_precision_unless_set(compute_dtype, mixed_precision, expected, make_method):
    config = bnb_config(make_method(name="qlora", compute_dtype=compute_dtype), mixed_precision)

    assert config.bnb_4bit_compute_dtype == expected


def test_eight_bit_config_loads_in_8bit(make_method):
    config = bnb_config(make_method(name="qlora", bits=8))

    assert config.load_in_8bit and not config.load_in_4bit


def test_finished_qlora_run_loads_onto_the_same_quantised_base(
    tiny_llama_source, make_method, tokenizer, train_steps, logits_of, tmp_path
):
    config = build_config({"model": str(tiny_llama_source.folder), "data": {"train": "train.jsonl"},
                           "method": {"name": "qlora", "r": 4}})
    model = apply_method(load_model_for_method(tiny_llama_source, config.method), config.method)
    train_steps(model, steps=2)
    save_config(config, tmp_path / "config.yaml")
    save_final(model, tokenizer, config.method, tmp_path)

    loaded, _ = load_trained(tmp_path)

    assert type(loaded.base_model.model.model.layers[0].mlp.down_proj.base_layer) is bnb.nn.Linear4bit
    torch.testing.assert_close(logits_of(loaded), logits_of(model))
