"""Memory the chosen method needs for weights + gradients + optimizer state, against what the device has.

The estimate is deliberately simple (activations are not counted: they depend on batch shape and
checkpointing) but it is what decides between full fine-tuning, LoRA and QLoRA on a given machine. Diffusion runs
add the activations measured for their resolution and batch (check_fits_diffusion).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tunesmith.errors import TunesmithError

GIB = 1024**3
ADAMW_STATE_BYTES = 8  # exp_avg and exp_avg_sq, fp32, per trainable parameter (train/optimizer.py STATE_BYTES)


@dataclass
class MemoryEstimate:
    weights: int
    gradients: int
    optimizer: int
    processes: int = 1  # > 1: what one of that many data-parallel processes holds

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer


def per_process(need: MemoryEstimate, distributed, world_size: int, local_world_size: int) -> MemoryEstimate:
    """What each process holds when the strategy partitions some of the three parts across processes.

    DDP partitions nothing. FSDP full_shard partitions all three (hybrid_shard within a node only);
    shard_grad_op keeps the weights gathered through forward and backward. ZeRO-1 partitions the optimizer state,
    ZeRO-2 also the gradients, ZeRO-3 also the weights.
    """
    if world_size == 1 or distributed.strategy == "ddp":
        return need
    if distributed.strategy == "fsdp":
        group = local_world_size if distributed.fsdp_sharding == "hybrid_shard" else world_size
        parts = (distributed.fsdp_sharding != "shard_grad_op", True, True)
    else:
        group, stage = world_size, distributed.zero_stage
        parts = (stage == 3, stage >= 2, True)
    sizes = (need.weights, need.gradients, need.optimizer)
    return MemoryEstimate(*(-(-size // group) if split else size for size, split in zip(sizes, parts)), group)


def estimate(model: nn.Module, optimizer_state_bytes: int = ADAMW_STATE_BYTES) -> MemoryEstimate:
    """Bytes for the model as it is now (quantised layers count at their packed size) plus fp32 gradients and the
    optimizer's state (`optimizer_state_bytes` per trained parameter)."""
    seen: set[int] = set()
    weights = trainable = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        weights += tensor.numel() * tensor.element_size()
        if isinstance(tensor, nn.Parameter) and tensor.requires_grad:
            trainable += tensor.numel()
    return MemoryEstimate(weights, trainable * 4, trainable * optimizer_state_bytes)


def device_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    with open("/proc/meminfo") as handle:
        info = dict(line.split(":", 1) for line in handle)
    return int(info["MemAvailable"].split()[0]) * 1024


def check_fits(method_name: str, need: MemoryEstimate, total_params: int, device: torch.device,
               loaded_weights: int = 0) -> None:
    """`loaded_weights`: bytes of the whole model, which every process loads before a strategy partitions it."""
    have = device_memory(device)
    if max(need.total, loaded_weights) <= have:
        return
    where = "this GPU has" if device.type == "cuda" else "this machine has"
    if need.total <= have:
        raise TunesmithError(
            f"{method_name} fits when partitioned (~{need.total / GIB:.1f} GiB per process), but every process first "
            f"loads the whole model (~{loaded_weights / GIB:.1f} GiB) and {where} {have / GIB:.1f} GiB available; "
            "try method.name: qlora, or a smaller precision for the weights"
        )
    # LoRA keeps fp32 weights with a tiny trainable set; QLoRA packs the base weights to ~4.5 bits.
    lora = total_params * 4
    hint = "lora" if lora * 1.1 < have else "qlora" if total_params * 0.6 < have else "a smaller model"
    per = f" per process (partitioned over {need.processes})" if need.processes > 1 else ""
    raise TunesmithError(
        f"{method_name} needs ~{need.total / GIB:.1f} GiB{per} for weights, gradients and optimizer state; {where} "
        f"{have / GIB:.1f} GiB available; try method.name: {hint}"
    )


def describe(need: MemoryEstimate) -> str:
    per = f" per process of {need.processes}" if need.processes > 1 else ""
    return (f"~{need.total / GIB:.2f} GiB{per} (weights {need.weights / GIB:.2f} + gradients "
            f"{need.gradients / GIB:.2f} + optimizer {need.optimizer / GIB:.2f})")


# The share of the device's memory a plan (weights, training state, activations) may fill: the allocator, the data
# and the rest of the process need the remainder.
HEADROOM = 0.9


@dataclass
class Activations:
    """What a diffusion micro-batch saves for backward, measured on one example (tasks/diffusion/activation_memory)."""

    per_example: int | None  # bytes for one example (with its class image); None: one example ran out of memory
    examples: int  # examples in the largest micro-batch training draws
    smallest: int  # examples in the smallest micro-batch it can fall back to (1 under batch_size: auto)
    checkpointing: bool
    resolution: int
    reason: str = ""  # why checkpointing is on or off

    @property
    def total(self) -> int | None:
        return None if self.per_example is None else self.per_example * self.examples


def describe_activations(activations: Activations | None) -> str:
    if activations is None:
        return "activations not measured (the weights and training state alone do not fit)"
    if activations.per_example is None:
        return f"activations: one example at {activations.resolution} px ran out of memory"
    return (f"activations ~{activations.total / GIB:.2f} GiB ({activations.examples} x "
            f"{activations.per_example / GIB:.3f} at {activations.resolution} px)")


def check_fits_diffusion(method_name: str, need: MemoryEstimate, device: torch.device, adapter: bool,
                         activations: Activations | None = None) -> None:
    """A Stable Diffusion run's weights + training state (+ the activations of its smallest micro-batch, once
    measured) against HEADROOM of the device's memory. The refusal gives the numbers and what needs less: full
    DreamBooth's LoRA variant (~1% of the weights train), gradient checkpointing, batch 1, a lower resolution."""
    have = device_memory(device)
    budget = HEADROOM * have
    hints = [] if adapter else ["method.name: dreambooth_lora (the same objective, LoRA weights only)"]
    if need.total > budget:
        what = f"~{need.total / GIB:.1f} GiB for weights, gradients and optimizer state"
        hints += ["a smaller model"] if adapter else []
    elif activations is None:
        return
    else:
        smallest = None if activations.per_example is None else activations.per_example * activations.smallest
        if smallest is not None and need.total + smallest <= budget:
            return
        what = _with_activations(need, activations, smallest)
        if not activations.checkpointing:
            hints.append("training.gradient_checkpointing: auto")
        if activations.smallest > 1 and activations.per_example is not None:
            hints.append(f"training.batch_size: 1 with more gradient_accumulation (the same step; activations "
                         f"~{activations.per_example / GIB:.2f} GiB)")
        hints.append(f"a data.resolution below {activations.resolution}")
    where = "this GPU has" if device.type == "cuda" else "this machine has"
    raise TunesmithError(f"{method_name} needs {what}; {where} {have / GIB:.1f} GiB available, of which a plan fills "
                         f"at most {HEADROOM:.0%}; try {_either(hints)}")


def _with_activations(need: MemoryEstimate, activations: Activations, smallest: int | None) -> str:
    checkpointing = "with" if activations.checkpointing else "without"
    examples = f"{activations.smallest} example{'s' if activations.smallest > 1 else ''}"
    if smallest is None:
        return (f"more than the device holds: weights, gradients and optimizer state ~{need.total / GIB:.1f} GiB, "
                f"and one example at {activations.resolution} px ran out of memory in its forward pass "
                f"{checkpointing} gradient checkpointing")
    return (f"~{(need.total + smallest) / GIB:.1f} GiB: weights, gradients and optimizer state "
            f"{need.total / GIB:.1f} + activations {smallest / GIB:.1f} ({examples} at {activations.resolution} px, "
            f"{checkpointing} gradient checkpointing)")


def _either(hints: list[str]) -> str:
    return hints[0] if len(hints) == 1 else ", ".join(hints[:-1]) + " or " + hints[-1]
