"""What a training step's activations cost, measured: the bytes autograd keeps for backward after one forward.

Both model families' memory plans use it (tasks/*/activation_memory.py) instead of a formula, so the attention
path, the method's layers and the precision are all in the number.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import torch

from tunesmith.train.micro_batch import is_out_of_memory


def saved_bytes(model: torch.nn.Module, forward: Callable[[], object], autocast=nullcontext) -> int | None:
    """Bytes of the tensors autograd saves while `forward()` runs a training forward of `model` (parameters not
    counted), with the random streams and train/eval mode left as they were; None when the forward runs out of
    device memory."""
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters and storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        return tensor

    device = next(model.parameters()).device
    was_training, out_of_memory = model.training, False
    model.train()
    try:  # the probe must not move the random streams training draws its dropout and noise from
        with (torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
              torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast()):
            forward()
    except Exception as error:  # noqa: BLE001 - which errors mean "out of memory" is is_out_of_memory's to say
        if not is_out_of_memory(error):
            raise
        out_of_memory = True  # acted on outside the handler, whose traceback holds the partial graph
    finally:
        model.train(was_training)
    if out_of_memory:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return None
    return total
