"""Trainable tensors by name, whatever the method or model family: what checkpoints hold and the plan counts."""

from __future__ import annotations

import torch
from torch import nn


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) counting each shared tensor once."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        count = _weights_in(p)
        total += count
        trainable += count if p.requires_grad else 0
    return trainable, total


def _weights_in(p: torch.Tensor) -> int:
    # bitsandbytes packs two 4-bit weights per byte; count the weights, not the bytes.
    quant_state = getattr(p, "quant_state", None)
    return quant_state.shape.numel() if quant_state is not None else p.numel()


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable tensors by name: what a checkpoint must hold to restore training."""
    return {name: p.detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [name for name, p in params.items() if p.requires_grad and name not in state]
    if missing:
        raise ValueError(f"checkpoint lacks {len(missing)} trainable tensors, e.g. {missing[0]}")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)
