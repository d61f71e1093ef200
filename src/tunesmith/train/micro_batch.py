"""`training.batch_size: auto`: a step that runs out of memory is retried with each batch cut into smaller pieces.

The sampler keeps drawing the same batches (the same examples, in the same order), and the loop normalises a
step's loss by the loss units of its whole window, so cutting each batch into k micro-batches changes neither which
examples a step trains on, nor its loss and gradient (up to float rounding), nor the step count and learning-rate
schedule: only how many forward and backward passes the step takes (up to gradient_accumulation x k). How many
pieces each batch is cut into is part of the checkpoint's position (TrainState.micro_batches), so a resumed run
starts cut the same way.
"""

from __future__ import annotations

import resource

import torch
from accelerate.utils.memory import should_reduce_batch_size

from tunesmith.errors import TunesmithError

GIB = 1024**3
MESSAGE_CHARS = 240  # of the allocator's own message, quoted in ours


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, or an allocator's out-of-memory RuntimeError (CPU, MPS, XPU)."""
    return isinstance(error, (torch.OutOfMemoryError, MemoryError)) or should_reduce_batch_size(error)


def cut(indices: list[int], pieces: int) -> list[list[int]]:
    """`indices` in at most `pieces` consecutive parts of nearly equal size (consecutive: a length-grouped batch
    stays grouped, so the parts carry as little padding as the whole)."""
    size = -(-len(indices) // pieces)
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def largest_micro_batch(group: list[list[int]], pieces: int) -> int:
    """Examples in the largest micro-batch of a window of drawn batches, each cut into `pieces`."""
    return max(-(-len(indices) // pieces) for indices in group)


def describe_failure(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def memory_numbers(device: torch.device) -> str:
    """What the device has and what this process used at its peak, for the error that ends the run."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        peak = torch.cuda.max_memory_allocated(device)
        return f"the GPU has {total / GIB:.2f} GiB and tensors took {peak / GIB:.2f} GiB at the peak"
    from tunesmith.methods.memory import device_memory

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return f"the machine has {device_memory(device) / GIB:.2f} GiB available and this process peaked at {peak / GIB:.2f} GiB"


def too_large_even_at_one(step: int, tried: list[tuple[int, int]], failure: str, device: torch.device,
                          memory_plan: str | None, advice: str) -> TunesmithError:
    """`advice`: what needs less memory in this task's terms (Task.memory_advice)."""
    attempts = ", ".join(f"{micro} x {accumulation}" for micro, accumulation in tried)
    plan = f"; memory plan: {memory_plan}" if memory_plan else ""
    return TunesmithError(
        f"training.batch_size: auto: step {step} runs out of memory even with one example per micro-batch (tried "
        f"micro-batch x accumulation {attempts}; last error: {failure}); {memory_numbers(device)}{plan}; {advice}"
    )


def out_of_memory_at_fixed_size(step: int, micro_batch: int, failure: str, device: torch.device,
                                memory_plan: str | None, processes: int) -> TunesmithError:
    plan = f"; memory plan: {memory_plan}" if memory_plan else ""
    if processes > 1:
        advice = ("with several processes the batch cannot be cut on the fly (the other processes wait in the gradient "
                  f"reduction): set training.batch_size below {micro_batch} and raise training.gradient_accumulation")
    else:
        advice = (f"set training.batch_size: auto (or below {micro_batch}, with more training.gradient_accumulation) "
                  "to keep the same optimizer step in smaller micro-batches")
    return TunesmithError(
        f"step {step} ran out of memory with micro-batches of {micro_batch} examples ({failure}); "
        f"{memory_numbers(device)}{plan}; {advice}"
    )
