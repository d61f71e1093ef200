"""Llama's gated MLP, down(silu(gate(x)) * up(x)), keeping two tensors for backward instead of three.

Autograd through `silu(gate) * up` keeps gate's output for silu's backward and both factors of the product for
the product's: three [tokens, intermediate] tensors a block, the largest activations of a Llama step. Here the
backward recomputes silu(gate) from gate's output (one pass) and keeps gate and up only. The forward and the
gradients are bit for bit autograd's: the same ops on the same operands. A LoRA on down_proj is told that its
input can be rebuilt from gate and up (methods/masked_linear.py `rebuildable`), so it keeps no copy of it either.

Only MLPs whose forward is Llama's own code (tasks/causal_lm/llama_code.py) with a SiLU activation are swapped;
on exit their forward is theirs again.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import SiLUActivation
from transformers.models.llama.modeling_llama import LlamaMLP

from tunesmith.methods.masked_linear import rebuildable
from tunesmith.tasks.causal_lm.llama_code import forward_swapped, runs_forward_of


def _silu_gate(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    silu = F.silu(gate)
    # in place where that is what `*` would give: one [tokens, intermediate] allocation, not two
    return silu.mul_(up) if up.dtype == silu.dtype else silu * up


class _SiluGate(torch.autograd.Function):
    """silu(gate) * up; silu and the product run in their inputs' dtypes, so autocast has nothing to cast."""

    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        return _silu_gate(gate, up)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gate, up = ctx.saved_tensors
        grad_up = grad * F.silu(gate) if ctx.needs_input_grad[1] else None
        grad_gate = torch.ops.aten.silu_backward(grad * up, gate) if ctx.needs_input_grad[0] else None
        return grad_gate, grad_up


def _forward(module, x: torch.Tensor) -> torch.Tensor:
    gate, up = module.gate_proj(x), module.up_proj(x)
    product = _SiluGate.apply(gate, up)
    with rebuildable(product, _silu_gate, gate, up):  # kept for _SiluGate's backward, so down_proj's LoRA may too
        return module.down_proj(product)


def _is_llama_silu_mlp(module: nn.Module) -> bool:
    return runs_forward_of(module, LlamaMLP) and type(getattr(module, "act_fn", None)) in (SiLUActivation, nn.SiLU)


def gated_mlp_keeping_less(model: nn.Module):
    """Inside the block the model's Llama-style SiLU MLPs use `_SiluGate`; yields how many."""
    return forward_swapped([m for m in model.modules() if _is_llama_silu_mlp(m)], _forward)
