"""Dropout with a cheaper random mask on CPU.

nn.Dropout draws one Mersenne-Twister number per element, serially: with LoRA dropout on every linear layer of
SmolLM2-135M that was 19% of a CPU training step. Here one 64-bit draw gives four 15-bit uniforms, so the mask
costs a quarter of the draws (2.2x faster dropout, measured on [1130, 576] float32). The drop probability is
rounded to a multiple of 1/32768 (0.05 -> 0.04999) and kept elements are scaled by 1 / (1 - that
probability), so the output is unbiased as with nn.Dropout. Other devices use nn.Dropout's own kernel.

The mask is kept as bool and applied by methods/keep_mask.py, forward and backward: `x * bool_mask` made a float
copy of the mask first (CPU type promotion materialises it), each way; on SmolLM2-135M short rows (fp32, AVX2, one
thread) not making those copies cut dropout's CPU time per step from 1.41 to 0.90 s and the training phase's peak
RSS by 10% (benchmarks/README.md, "Levers").

With `shared_dropout_mask` (a LoRA option) the dropouts of a model share their latest call
(methods/latest_input.py): a dropout given the very tensor the previous one was given (same object, unchanged,
same p) returns that output instead of drawing a new mask. PEFT gives every adapted projection its own dropout of the layer's input, so q/k/v then share one mask
and gate/up another: 4 masks a Llama block instead of 7. The random stream stays a function of the step, so
resumed runs stay exact.

`keep_mask` hands out the mask alone, for methods/masked_linear.py: a product that keeps the mask and rebuilds the
masked copy in backward, so layers that read one input (q/k/v, gate/up) leave autograd that one tensor between them.
"""

from __future__ import annotations

import torch
from torch import nn

from tunesmith.methods.keep_mask import apply_keep
from tunesmith.methods.latest_input import LatestResult

_LEVELS = 1 << 15


class CpuDropout(nn.Dropout):
    def __init__(self, p: float = 0.5, inplace: bool = False, shared: LatestResult | None = None):
        super().__init__(p, inplace)
        self.shared = shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._shared(x, scaled=True)[0]

    def forward_unscaled(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        """x with the dropped elements zeroed and the kept ones not yet scaled, and the scale 1 / (1 - p) they are
        owed, for a caller that folds it into a later linear product (methods/lora_folded_scales.py)."""
        return self._shared(x, scaled=False)

    def _shared(self, x: torch.Tensor, scaled: bool) -> tuple[torch.Tensor, float]:
        if self.shared is None or not self.training or self.inplace:
            return self._drop(x, scaled)
        key = (self.p, scaled)
        out = self.shared.get(x, key)
        return self.shared.put(x, key, self._drop(x, scaled)) if out is None else out

    def keep_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, float] | None:
        """The mask of kept elements this dropout would apply to x (shared as its outputs are) and the scale
        1 / (1 - p) owed to them; None where it draws none (eval, p == 0, p ~ 1, in place, not on CPU)."""
        if not self._draws(x):
            return None
        if self.shared is None:
            return self._draw(x)
        key = (self.p, "mask")
        out = self.shared.get(x, key)
        return self.shared.put(x, key, self._draw(x)) if out is None else out

    def _drop(self, x: torch.Tensor, scaled: bool) -> tuple[torch.Tensor, float]:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x), 1.0
        if round(self.p * _LEVELS) >= _LEVELS:
            return x * 0, 1.0
        keep, scale = self._draw(x)
        if scaled:
            return _Masked.apply(x, keep, scale), 1.0
        return _Masked.apply(x, keep, 1.0), scale

    def _draws(self, x: torch.Tensor) -> bool:
        return (self.training and 0 < round(self.p * _LEVELS) < _LEVELS and x.device.type == "cpu"
                and not self.inplace)

    def _draw(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        threshold = round(self.p * _LEVELS)
        # random_ fills int64 with [0, 2^63): the top 16-bit word of each has one bit less, hence 15-bit uniforms.
        draws = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_()
        uniforms = draws.view(torch.int16)[: x.numel()].view(x.shape) & (_LEVELS - 1)
        # A comparison writing bool runs a scalar loop on CPU; into uint8 it is vectorised (`micro.py mask`: 2.4-2.7x).
        keep = torch.empty(x.shape, dtype=torch.uint8)
        return torch.ge(uniforms, threshold, out=keep).view(torch.bool), _LEVELS / (_LEVELS - threshold)


def masked(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x where `keep`, else 0 (unscaled); the gradient masked the same."""
    return _Masked.apply(x, keep, 1.0)


class _Masked(torch.autograd.Function):
    """x where `keep`, else 0, times `scale`; backward the same of the gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return apply_keep(x, keep, scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return apply_keep(grad, keep, ctx.scale), None, None


def use_cpu_dropout(model: nn.Module, shared_masks: bool = False) -> int:
    """Swap every nn.Dropout in `model` (LoRA's lora_dropout among them) for CpuDropout, sharing one LatestResult
    when `shared_masks`; returns how many."""
    shared = LatestResult() if shared_masks else None
    swapped = 0
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout and child.p > 0:
                parent._modules[name] = CpuDropout(child.p, child.inplace, shared)
                swapped += 1
    return swapped
