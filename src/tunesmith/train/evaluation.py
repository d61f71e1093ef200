"""Loss evaluation shared by the loop's validation and by scoring outside training: one summation, one mean."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import nullcontext

import torch
from torch import nn


@torch.no_grad()
def summed_loss(loss_module: nn.Module, batches: Iterable[tuple[object, int]], device,
                autocast=nullcontext) -> tuple[torch.Tensor, int]:
    """(the loss summed over every batch's loss units, on `device`; the number of units) for (batch, units) pairs.

    The loss module is called with a normaliser of 1, so it returns its batch's sum; the caller divides by the
    units (after reducing both across ranks, where there are several)."""
    total = torch.zeros((), device=device)
    units = 0
    for batch, n_units in batches:
        with autocast():
            total += loss_module(to_device(batch, device), 1).float()
        units += n_units
    return total, units


def to_device(batch, device):
    """Tensors of a (possibly nested) batch on the training device."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
