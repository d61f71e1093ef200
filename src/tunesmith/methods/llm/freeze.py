"""`freeze`: only the last N transformer blocks train (and the head with train_head)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tunesmith.config.section import Section
from tunesmith.errors import ConfigError
from tunesmith.methods.registry import Method, register

if TYPE_CHECKING:  # annotations only: the config schema imports every method without torch
    from torch import nn


class FreezeMethod(Section):
    name: Literal["freeze"]
    layers: int = Field(2, ge=1, description="train only the last N transformer blocks")
    train_head: bool = False


def apply(model: nn.Module, options: FreezeMethod, tokenizer_path=None) -> nn.Module:
    blocks = decoder_blocks(model)
    if options.layers > len(blocks):
        raise ConfigError(f"method.layers: {options.layers} is more than the model's {len(blocks)} blocks")
    model.requires_grad_(False)
    for block in blocks[-options.layers :]:
        block.requires_grad_(True)
    if options.train_head:
        # With tied embeddings this also trains the input embedding: they are one tensor.
        model.get_output_embeddings().requires_grad_(True)
    return model


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The transformer's block list: the longest ModuleList in the model (layers/h/blocks by architecture)."""
    from torch import nn

    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ConfigError("method 'freeze' needs a model with a list of transformer blocks; none was found")
    return max(lists, key=len)


METHOD = register(Method(
    name="freeze", family="llm", options=FreezeMethod, learning_rate=5e-5,
    summary="the last `layers` blocks (+ the head with `train_head: true`)", apply=apply, saves="model",
))
