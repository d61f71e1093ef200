"""Prompt, prefix and P-tuning: trained models generate, and prompt tuning can start from text."""

import pytest
import torch

from tunesmith.errors import ConfigError
from tunesmith.methods.apply import apply_method

PROMPT_METHODS = [
    {"name": "prompt_tuning", "num_virtual_tokens": 4},
    {"name": "prefix_tuning", "num_virtual_tokens": 4},
    {"name": "p_tuning", "num_virtual_tokens": 4, "encoder_hidden_size": 16},
]


@pytest.mark.parametrize("spec", PROMPT_METHODS, ids=lambda spec: spec["name"])
def test_trained_prompt_learning_model_generates(spec, tiny_llama, make_method, tokenizer, train_steps):
    model = apply_method(tiny_llama, make_method(**spec))
    train_steps(model, steps=2)
    prompt = tokenizer(["Whisk the eggs"], return_tensors="pt")

    model.eval()
    with torch.no_grad():
        output = model.generate(**prompt, max_new_tokens=3, min_new_tokens=3, do_sample=False)

    assert output.shape == (1, prompt["input_ids"].shape[1] + 3)
    assert torch.equal(output[:, : prompt["input_ids"].shape[1]], prompt["input_ids"])


def test_text_init_starts_the_virtual_tokens_at_the_texts_embeddings(tiny_llama, make_method, tokenizer):
    text = "Answer like a chef"
    method = make_method(name="prompt_tuning", num_virtual_tokens=3, init="text", init_text=text)

    model = apply_method(tiny_llama, method, tokenizer_path=tokenizer.name_or_path)

    ids = tokenizer(text)["input_ids"][:3]
    virtual = model.prompt_encoder["default"].embedding.weight
    torch.testing.assert_close(virtual, tiny_llama.get_input_embeddings().weight[ids])


def test_text_init_without_a_tokenizer_says_what_is_missing(tiny_llama, make_method):
    method = make_method(name="prompt_tuning", init="text", init_text="Answer like a chef")

    with pytest.raises(ConfigError, match="method.init: text needs the model's tokenizer; pass tokenizer_path"):
        apply_method(tiny_llama, method)
