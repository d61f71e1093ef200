"""`training.optimizer`: the optimizers the loop can make, what each keeps per trained parameter, and where each runs.

- `adamw`: torch's AdamW with its fused kernel where torch has one for the device (CPU, CUDA, XPU, MPS): one kernel
  for all parameters instead of a handful of elementwise passes per tensor, the same update to rounding.
- `adamw_8bit`: bitsandbytes' block-wise 8-bit AdamW, the optimizer the DreamBooth and QLoRA recipes use to fit on
  small GPUs: Adam's two moments in one byte each (plus a float per 256-value block) instead of four, so the optimizer
  state is ~4x smaller. bitsandbytes runs it on CUDA and, since 0.49, on CPU. DeepSpeed and FSDP keep or shard the
  optimizer state themselves, so they run with `adamw` only.
"""

from __future__ import annotations

import torch

from tunesmith.errors import ConfigError

# Bytes of optimizer state per trained parameter: two fp32 moments, or two 8-bit moments and their block scales.
STATE_BYTES = {"adamw": 8, "adamw_8bit": 2}

FUSED_DEVICES = {"cpu", "cuda", "xpu", "mps"}


def make_optimizer(name: str, groups: list[dict], learning_rate: float, strategy: str) -> torch.optim.Optimizer:
    """The optimizer over the task's parameter groups (each may carry its own "lr")."""
    if name == "adamw_8bit":
        if strategy in ("deepspeed", "fsdp"):
            raise ConfigError(f"training.optimizer: adamw_8bit cannot run under distributed.strategy: {strategy} "
                              f"({strategy} keeps the optimizer state itself); use training.optimizer: adamw")
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(groups, lr=learning_rate)
    return torch.optim.AdamW(groups, lr=learning_rate, fused=_fusable(groups) or None)


def _fusable(groups: list[dict]) -> bool:
    params = [p for group in groups for p in group["params"]]
    return bool(params) and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params) and \
        len({p.device for p in params}) == 1
