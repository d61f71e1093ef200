"""`dreambooth`: the whole UNet (and optionally the text encoders) trains on a subject, with prior preservation
(Ruiz et al., 2023). Optionally an exponential moving average of the trained weights is what gets saved."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunesmith.methods.diffusion.options import DiffusionOptions, PriorOptions
from tunesmith.methods.diffusion.parts import freeze, train_text_encoders
from tunesmith.methods.registry import Method, register


class DreamBoothMethod(PriorOptions, DiffusionOptions):
    name: Literal["dreambooth"] = "dreambooth"
    ema: bool = Field(False, description="save an exponential moving average of the trained weights")
    ema_decay: float = Field(0.9999, gt=0.0, lt=1.0, description="the average's decay once warmed up")


def apply(model, options: DreamBoothMethod, tokenizer_path=None):
    pipeline = model.pipeline
    freeze(pipeline)
    pipeline.unet.requires_grad_(True)
    if options.train_text_encoder:
        train_text_encoders(pipeline)
    return model


METHOD = register(Method(
    name="dreambooth", family="diffusion", options=DreamBoothMethod, learning_rate=5e-6,
    summary="the whole UNet (and text encoders) on a subject, prior preservation", apply=apply, saves="model",
))
