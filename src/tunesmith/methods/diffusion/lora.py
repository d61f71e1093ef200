"""`lora` on a Stable Diffusion pipeline: low-rank adapters on the UNet (and optionally the text encoders),
trained on captioned images. The options are shared with dreambooth_lora, which adds prior preservation.

Defaults follow the diffusers LoRA scripts: rank 4, alpha = rank, the UNet's attention projections, the text
encoders' attention projections.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunesmith.methods.diffusion.options import DiffusionOptions
from tunesmith.methods.diffusion.parts import add_lora, freeze
from tunesmith.methods.registry import Method, register

UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
LEARNING_RATE = 1e-4


class DiffusionLoraOptions(DiffusionOptions):
    r: int = Field(4, ge=1)
    alpha: float | None = Field(None, gt=0, description="default: r (a scale of 1)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    rslora: bool = Field(False, description="scale by alpha/sqrt(r) instead of alpha/r")
    target_modules: list[str] = Field(default_factory=lambda: list(UNET_TARGETS), min_length=1,
                                      description="UNet layers (name suffixes) that get LoRA")
    text_encoder_target_modules: list[str] = Field(default_factory=lambda: list(TEXT_ENCODER_TARGETS), min_length=1,
                                                   description="text encoder layers, with train_text_encoder")


class DiffusionLoraMethod(DiffusionLoraOptions):
    name: Literal["lora"] = "lora"


def apply(model, options: DiffusionLoraOptions, tokenizer_path=None):
    """`model`: a tunesmith.models.diffusion.DiffusionModel; only the LoRA weights train afterwards."""
    freeze(model.pipeline)
    add_lora(model.pipeline, options)
    return model


METHOD = register(Method(
    name="lora", family="diffusion", options=DiffusionLoraMethod, learning_rate=LEARNING_RATE,
    summary="low-rank adapters on the UNet (and text encoders), captioned images", apply=apply, saves="adapter",
))
