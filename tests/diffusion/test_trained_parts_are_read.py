"""Every parameter a method trains gets a gradient from the conditioning the loss reads. A trained parameter
without one would fail DDP's step (SDXL reads text encoder 1's penultimate hidden state, so its last layer and final
layer norm are idle and must not train). Tiny random pipelines from tests/diffusion/conftest.py."""

import pytest
import torch

from tests.diffusion.conftest import build_tiny_pipeline
from tunesmith.methods import registry
from tunesmith.methods.diffusion.dreambooth import DreamBoothMethod
from tunesmith.methods.diffusion.lora import DiffusionLoraMethod
from tunesmith.models.diffusion import FAMILIES, DiffusionModel

METHODS = {"lora": DiffusionLoraMethod, "dreambooth": DreamBoothMethod}


def trainable_without_gradient(pipeline) -> list[str]:
    from tunesmith.tasks.diffusion.text import encode_text, tokenize

    encoders = [e for e in (pipeline.text_encoder, getattr(pipeline, "text_encoder_2", None)) if e is not None]
    text = encode_text(encoders, tokenize([pipeline.tokenizer, getattr(pipeline, "tokenizer_2", None)][:len(encoders)],
                                          ["a photo of sks dog"]))
    extra = {}
    if "pooled_prompt_embeds" in text:
        extra["added_cond_kwargs"] = {"text_embeds": text["pooled_prompt_embeds"],
                                      "time_ids": torch.tensor([[32.0, 32, 0, 0, 32, 32]])}
    latents = torch.randn(1, 4, 8, 8)
    pipeline.unet(latents, torch.tensor([500]), text["prompt_embeds"], **extra).sample.square().mean().backward()
    parts = {"unet": pipeline.unet, **{f"text_encoder{'_2' * i}": e for i, e in enumerate(encoders)}}
    return [f"{part}.{name}" for part, module in parts.items() for name, p in module.named_parameters()
            if p.requires_grad and p.grad is None]


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_every_trained_parameter_gets_a_gradient(family, name):
    pipeline = build_tiny_pipeline(family)
    method = METHODS[name](train_text_encoder=True)
    registry.of(method).apply(DiffusionModel(pipeline, FAMILIES[family], "epsilon", "", None), method, None)
    trained = [n for e in (pipeline.text_encoder, getattr(pipeline, "text_encoder_2", None)) if e is not None
               for n, p in e.named_parameters() if p.requires_grad]
    assert trained  # the text encoders do train
    assert trainable_without_gradient(pipeline) == []
    if family == "sdxl":  # the idle last layer of text encoder 1 carries no trained parameter
        last = f"encoder.layers.{pipeline.text_encoder.config.num_hidden_layers - 1}."
        assert not [n for n, p in pipeline.text_encoder.named_parameters()
                    if p.requires_grad and (last in n or "final_layer_norm" in n)]
