"""Choosing what trains in a Stable Diffusion pipeline: freeze it, then open the UNet / text encoders or add LoRA.

The UNet gets its adapter through diffusers' add_adapter; the text encoders through peft.inject_adapter_in_model,
because transformers 5.24's own add_adapter refuses peft 0.21. Both name the adapter "default", which the exports
(export/diffusion_lora.py, export/kohya.py) read.
"""

from __future__ import annotations

import re

from tunesmith.errors import ConfigError

ADAPTER = "default"


def text_encoders(pipeline) -> list:
    return [e for e in (pipeline.text_encoder, getattr(pipeline, "text_encoder_2", None)) if e is not None]


def freeze(pipeline) -> None:
    for part in (pipeline.unet, pipeline.vae, *text_encoders(pipeline)):
        part.requires_grad_(False)


def train_text_encoders(pipeline) -> None:
    """Full training of every text encoder module the conditioning reads."""
    from tunesmith.tasks.diffusion.text import unread_modules

    encoders = text_encoders(pipeline)
    for encoder, unread in zip(encoders, unread_modules(encoders)):
        encoder.requires_grad_(True)
        for name in unread:
            encoder.get_submodule(name).requires_grad_(False)


def add_lora(pipeline, options) -> None:
    """LoRA on the UNet's `target_modules` and, with train_text_encoder, on every text encoder (not on the modules
    the conditioning never reads)."""
    from peft import LoraConfig, inject_adapter_in_model

    from tunesmith.tasks.diffusion.text import unread_modules

    def config(targets: list[str], unread: list[str] = ()):
        # gaussian: A drawn with std 1/r and B zero, as diffusers' LoRA scripts do; the start is the base model
        return LoraConfig(r=options.r, lora_alpha=options.alpha or options.r, lora_dropout=options.dropout,
                          target_modules=list(targets), init_lora_weights="gaussian", use_rslora=options.rslora,
                          exclude_modules=_inside(unread))

    _adding("target_modules", options.target_modules, lambda: pipeline.unet.add_adapter(
        config(options.target_modules), adapter_name=ADAPTER))
    if options.train_text_encoder:
        encoders = text_encoders(pipeline)
        for encoder, unread in zip(encoders, unread_modules(encoders)):
            _adding("text_encoder_target_modules", options.text_encoder_target_modules, lambda e=encoder, u=unread:
                    inject_adapter_in_model(config(options.text_encoder_target_modules, u), e,
                                            adapter_name=ADAPTER))


def _inside(modules: list[str]) -> str | None:
    """PEFT's exclude_modules (a regex on full module names) for `modules` and everything inside them."""
    if not modules:
        return None
    return "(" + "|".join(re.escape(name) for name in modules) + r")(\..*)?"


def _adding(key: str, targets: list[str], add) -> None:
    try:
        add()
    except ValueError as error:  # PEFT: "Target modules {...} not found in the base model"
        raise ConfigError(f"method.{key}: {', '.join(targets)} match no layer of the model "
                          f"({str(error).splitlines()[0]})") from None
