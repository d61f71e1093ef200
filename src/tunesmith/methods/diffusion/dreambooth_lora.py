"""`dreambooth_lora`: DreamBooth's objective (a rare-token subject prompt, optional prior preservation with class
images) training LoRA parameters only."""

from __future__ import annotations

from typing import Literal

from tunesmith.methods.diffusion.lora import LEARNING_RATE, DiffusionLoraOptions, apply
from tunesmith.methods.diffusion.options import PriorOptions
from tunesmith.methods.registry import Method, register


class DreamBoothLoraMethod(PriorOptions, DiffusionLoraOptions):
    name: Literal["dreambooth_lora"] = "dreambooth_lora"


METHOD = register(Method(
    name="dreambooth_lora", family="diffusion", options=DreamBoothLoraMethod, learning_rate=LEARNING_RATE,
    summary="DreamBooth with prior preservation, LoRA weights only", apply=apply, saves="adapter",
))
