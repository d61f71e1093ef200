"""Apply a dropout keep-mask (bool, one byte an element) to a tensor on CPU: x where kept, else 0, times a scale.

`torch.where(keep, x, 0)` runs a scalar loop on CPU. `x * keep` is vectorised but first promotes the mask to x's
dtype in a temporary tensor; across the ~20 applications a layer makes a step such temporaries raised the training
peak RSS 1.05-1.09x (benchmarks/README.md, "Levers"). Here the output itself holds the converted mask (uint8 ->
float converts vectorised, bool -> float does not) and is multiplied by x in place: the one allocation `where`
makes, 2-3.6x faster on a Zen 3 EPYC (`micro.py mask`).

Values are `where`'s for finite x (a dropped negative element gives -0.0, which compares and sums as 0); a dropped
inf or NaN gives NaN instead of 0, where the step's loss is not finite anyway.
"""

from __future__ import annotations

import torch


def apply_keep(x: torch.Tensor, keep: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """A new tensor: x where `keep` (bool, x's shape), else 0, times `scale`."""
    if x.device.type != "cpu" or x.shape != keep.shape or (x.requires_grad and torch.is_grad_enabled()):
        out = torch.where(keep, x, 0)  # (the in-place product below is for callers outside autograd)
    else:
        out = torch.empty_like(x, memory_format=torch.contiguous_format).copy_(keep.view(torch.uint8)).mul_(x)
    return out if scale == 1.0 else out.mul_(scale)
