"""Fused lm_head + cross-entropy: summed token CE of `hidden @ weight.T`, never holding more than a chunk of logits.

The gradient is computed during the forward pass, chunk by chunk (softmax minus one-hot, times the weight), and
stored: the backward pass only scales it. Against the checkpointed F.cross_entropy path this skips the logits
recompute in backward, the one-hot fill/scatter and several full-vocabulary passes: measured 2.5x faster on
900 tokens x 49k vocabulary on CPU. The matmuls run in the autocast dtype when autocast is on, as
nn.Linear would (a frozen head tied to the embedding is cast once per training, see methods/frozen_precision.py);
the softmax is float32.
"""

from __future__ import annotations

import torch

from tunesmith.methods.frozen_precision import in_compute_dtype

CHUNK_TOKENS = 128  # [128, vocab] float32 logits fit in cache-sized pieces; measured fastest of 64..1024 on CPU


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """SUM over rows of CE(hidden[i] @ weight.T, targets[i]); differentiable in hidden and (if trainable) weight."""
    device_type = hidden.device.type
    compute_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden.dtype
    needs_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    with torch.autocast(device_type, enabled=False):
        if not needs_grad:
            return _summed_loss(hidden.to(compute_dtype), in_compute_dtype(weight, compute_dtype), targets)
        return _LinearCrossEntropy.apply(hidden, weight, targets, compute_dtype)


def _summed_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for start in range(0, targets.numel(), CHUNK_TOKENS):
        log_probs = torch.log_softmax((hidden[start : start + CHUNK_TOKENS] @ weight.T).float(), dim=-1)
        total -= log_probs.gather(1, targets[start : start + CHUNK_TOKENS, None]).sum()
    return total


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, compute_dtype):
        h, w = hidden.detach().to(compute_dtype), in_compute_dtype(weight, compute_dtype)
        grad_hidden = torch.empty_like(h)
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, targets.numel(), CHUNK_TOKENS):
            rows = slice(start, start + CHUNK_TOKENS)
            chunk_targets = targets[rows]
            log_probs = torch.log_softmax((h[rows] @ w.T).float(), dim=-1)
            total -= log_probs.gather(1, chunk_targets[:, None]).sum()
            # d(sum CE)/d(logits) = softmax - one_hot(target)
            grad_logits = log_probs.exp_()
            grad_logits[torch.arange(chunk_targets.numel(), device=hidden.device), chunk_targets] -= 1
            grad_logits = grad_logits.to(compute_dtype)
            grad_hidden[rows] = grad_logits @ w
            if grad_weight is not None:
                grad_weight += (grad_logits.T @ h[rows]).float()
        ctx.hidden_dtype = hidden.dtype
        ctx.weight_dtype = weight.dtype
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_hidden, grad_weight = ctx.saved_tensors
        grad_h = (grad_hidden.to(ctx.hidden_dtype) * grad_total) if ctx.needs_input_grad[0] else None
        grad_w = (grad_weight * grad_total).to(ctx.weight_dtype) if grad_weight is not None else None
        return grad_h, grad_w, None, None
