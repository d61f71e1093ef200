"""FSDP2 (distributed.strategy: fsdp): full, unsharded trainable state from a sharded model and back.

Under FSDP every rank holds a shard of each parameter (a DTensor), so reading or writing the trainable tensors is
a collective: every rank calls these functions; the gathered tensors land on rank 0 (on the CPU), the others get
empty dicts. Names are those of the wrapped model (the task's `model.` prefix removed), as in DDP checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

PREFIX = "model."  # CausalLMTask keeps the model as `self.model`


def _options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def full_trainable_state(task: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable tensors, whole, on rank 0 (collective). Each shared tensor appears once, as in trainable_state."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    state = get_model_state_dict(task, options=_options(cpu_offload=True, ignore_frozen_params=True))
    names = [name for name, p in task.named_parameters() if p.requires_grad]
    return {name[len(PREFIX):]: state[name] for name in names if name in state}


def full_optimizer_state(task: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer state, whole and keyed by parameter name, on rank 0 (collective)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(task, optimizer, options=_options(cpu_offload=True))


def load_full_state(task: nn.Module, optimizer: torch.optim.Optimizer, trainable: dict, optimizer_state: dict) -> None:
    """Load whole trainable tensors and optimizer state (the same on every rank) into the sharded model (collective)."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    missing = [name for name, p in task.named_parameters() if p.requires_grad and name[len(PREFIX):] not in trainable]
    if missing:
        raise ValueError(f"checkpoint lacks {len(missing)} trainable tensors, e.g. {missing[0][len(PREFIX):]}")
    set_model_state_dict(task, {PREFIX + name: t for name, t in trainable.items()}, options=_options(strict=False))
    set_optimizer_state_dict(task, optimizer, optimizer_state, options=_options())


def sharding_summary(task: nn.Module, accelerator) -> str:
    """One line saying how much of the model this rank holds, e.g. 'FSDP2: 3 sharded units; rank 0 holds 50.0% ...'."""
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    units = sum(isinstance(m, FSDPModule) for m in task.modules())
    held = total = 0
    for p in task.parameters():
        total += p.numel()
        held += p.to_local().numel() if isinstance(p, DTensor) else p.numel()
    return (f"FSDP2: {units} sharded units; rank {accelerator.process_index} holds {100 * held / max(total, 1):.1f}% "
            f"of {total:,} weights")
