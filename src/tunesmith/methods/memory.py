"""Memory the chosen method needs for weights + gradients + optimizer state, against what the device has.

The estimate is deliberately simple (activations are not counted: they depend on batch shape and
checkpointing) but it is what decides between full fine-tuning, LoRA and QLoRA on a given machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tunesmith.errors import TunesmithError

GIB = 1024**3
ADAMW_STATES = 2  # exp_avg and exp_avg_sq, fp32, per trainable parameter


@dataclass
class MemoryEstimate:
    weights: int
    gradients: int
    optimizer: int

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer


def estimate(model: nn.Module) -> MemoryEstimate:
    """Bytes for the model as it is now (quantised layers count at their packed size) plus fp32 training state."""
    seen: set[int] = set()
    weights = trainable = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        weights += tensor.numel() * tensor.element_size()
        if isinstance(tensor, nn.Parameter) and tensor.requires_grad:
            trainable += tensor.numel()
    return MemoryEstimate(weights, trainable * 4, trainable * 4 * ADAMW_STATES)


def device_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    with open("/proc/meminfo") as handle:
        info = dict(line.split(":", 1) for line in handle)
    return int(info["MemAvailable"].split()[0]) * 1024


def check_fits(method_name: str, need: MemoryEstimate, total_params: int, device: torch.device) -> None:
    have = device_memory(device)
    if need.total <= have:
        return
    where = "this GPU has" if device.type == "cuda" else "this machine has"
    # LoRA keeps fp32 weights with a tiny trainable set; QLoRA packs the base weights to ~4.5 bits.
    lora = total_params * 4
    hint = "lora" if lora * 1.1 < have else "qlora" if total_params * 0.6 < have else "a smaller model"
    raise TunesmithError(
        f"{method_name} needs ~{need.total / GIB:.1f} GiB for weights, gradients and optimizer state; {where} "
        f"{have / GIB:.1f} GiB available; try method.name: {hint}"
    )


def describe(need: MemoryEstimate) -> str:
    return (f"~{need.total / GIB:.2f} GiB (weights {need.weights / GIB:.2f} + gradients {need.gradients / GIB:.2f} "
            f"+ optimizer {need.optimizer / GIB:.2f})")
