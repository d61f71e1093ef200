"""RMSNorm for training on CPU: Llama's formula with a hand-written backward.

Autograd through Llama's RMSNorm records pow, mean, add, rsqrt and two products and runs the backward of each, a
full pass over the activations apiece. Here the forward saves the normalised input and the backward is three
passes: g*w, its row dot product with x_hat, and r * (g*w - x_hat * dot / n). The forward is bit-for-bit
Llama's; the backward agrees to float32 rounding. Forward + backward of [1144, 576] fp32 took 3.4 ms against 5.8
(one Xeon-AMX thread); SmolLM2-135M runs 61 of them a step, and whole LoRA runs gained 1.03x tokens/s
(benchmarks/README.md, "Levers").

Only norm classes whose forward is Llama's own code (transformers copies it into Mistral, Qwen2/3, Phi3 and
others) are swapped, and only for fp32 inputs and weights; any other norm keeps its forward.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from tunesmith.tasks.causal_lm.llama_code import forward_swapped, runs_forward_of


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
        normalised = x * rstd
        ctx.save_for_backward(normalised, rstd, weight)
        return weight * normalised

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        normalised, rstd, weight = ctx.saved_tensors
        grad_normalised = grad * weight
        dot = (grad_normalised * normalised).mean(-1, keepdim=True)
        grad_x = (grad_normalised - normalised * dot).mul_(rstd) if ctx.needs_input_grad[0] else None
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = (grad * normalised).reshape(-1, normalised.shape[-1]).sum(0)
        return grad_x, grad_weight, None


def _forward(module, hidden_states: torch.Tensor) -> torch.Tensor:
    if hidden_states.dtype != torch.float32 or module.weight.dtype != torch.float32:
        return type(module).forward(module, hidden_states)
    return _RMSNorm.apply(hidden_states, module.weight, module.variance_epsilon)


def cpu_rms_norm(model: nn.Module, device: torch.device):
    """Inside the block a CPU model's Llama-style RMSNorms use `_RMSNorm`; yields how many."""
    norms = [m for m in model.modules() if runs_forward_of(m, LlamaRMSNorm)] if device.type == "cpu" else []
    return forward_swapped(norms, _forward)
