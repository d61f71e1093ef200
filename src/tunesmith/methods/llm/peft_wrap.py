"""What every PEFT method shares: wrapping the base with a PEFT config, and saving the adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the config schema imports every method without torch
    from torch import nn


def wrap(model: nn.Module, peft_config) -> nn.Module:
    from peft import get_peft_model

    return get_peft_model(model, peft_config)


def copy(value):
    """Lists are copied: PEFT rewrites some of them (modules_to_save) in place."""
    return list(value) if isinstance(value, list) else value
