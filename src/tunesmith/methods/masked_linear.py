"""A LoRA A product whose backward rebuilds its (masked) input instead of keeping a copy of it.

`linear(mask * x, A)` under autograd keeps the masked copy of x for A's gradient: a [tokens, features] tensor per
adapted layer. Here the product keeps the mask and what x is made from, and backward rebuilds the copy (one masking
pass, methods/keep_mask.py):

- x itself, where autograd keeps x anyway: q, k and v of a Llama block read one input, gate and up another, so
  they keep that one tensor between them (methods/lora_folded_scales.py finds them).
- the tensors x is computed from, where they are kept anyway: down_proj reads `silu(gate) * up`, and the gated MLP
  keeps gate and up for its own backward (tasks/causal_lm/gated_mlp.py says so with `rebuildable`), so down_proj's
  LoRA keeps no [tokens, intermediate] tensor at all; backward recomputes the product (two element-wise passes).
  On SmolLM2-135M one [8, 143] cooking batch keeps 1,268 vs 1,469 MiB for backward, the training peak memory is
  0.90-0.92x, tokens/s within the runs' spread (benchmarks/README.md, "Levers").

The products are the ones autograd runs for F.linear (the same operands and order, so the same values), under the
autocast state of the forward; a rebuilt input is the same ops on the same operands, so bit for bit the input.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from tunesmith.methods.keep_mask import apply_keep

# Per thread, while a `rebuildable` block runs: (x, x's version, rebuild, sources). One at a time, as a thread's
# layers run one at a time.
_current = threading.local()


@contextmanager
def rebuildable(x: torch.Tensor, rebuild: Callable[..., torch.Tensor], *sources: torch.Tensor) -> Iterator[None]:
    """Inside the block, x (while unchanged) is `rebuild(*sources)`, and the sources are kept for backward anyway:
    a product over x may keep them instead of x."""
    outer = getattr(_current, "recipe", None)
    _current.recipe = (x, x._version, rebuild, sources)
    try:
        yield
    finally:
        _current.recipe = outer


def recipe_for(x: torch.Tensor) -> tuple[Callable[..., torch.Tensor], tuple[torch.Tensor, ...]] | None:
    """How to rebuild x, where a `rebuildable` block around this call (in this thread) says; else None."""
    recipe = getattr(_current, "recipe", None)
    if recipe is not None and recipe[0] is x and recipe[1] == x._version:
        return recipe[2], recipe[3]
    return None


def masked_linear(x: torch.Tensor, keep: torch.Tensor | None, weight: torch.Tensor,
                  recipe: tuple[Callable[..., torch.Tensor], tuple[torch.Tensor, ...]] | None = None) -> torch.Tensor:
    """linear(x where `keep` else 0, weight) (no mask: linear(x, weight)), keeping for backward the mask and x, or
    recipe's sources in place of x."""
    rebuild, sources = recipe if recipe is not None else (_itself, (x,))
    return _MaskedLinear.apply(x, keep, weight, rebuild, *sources)


def _itself(x: torch.Tensor) -> torch.Tensor:
    return x


def _masked(x: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    return x if keep is None else apply_keep(x, keep)


class _MaskedLinear(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu")
    def forward(ctx, x, keep, weight, rebuild, *sources):
        ctx.rebuild = rebuild
        ctx.save_for_backward(keep, weight, *sources)
        return F.linear(_masked(x, keep), weight)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad: torch.Tensor):
        keep, weight, *sources = ctx.saved_tensors
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = _masked(torch.matmul(grad, weight), keep)
        if ctx.needs_input_grad[2]:
            inputs = _masked(ctx.rebuild(*sources), keep)
            grad_weight = grad.reshape(-1, grad.shape[-1]).t().mm(inputs.reshape(-1, inputs.shape[-1]))
        return grad_x, None, grad_weight, None, *(None for _ in sources)
