"""Fused lm_head + cross-entropy: summed token CE of `hidden @ weight.T`, never holding more than a chunk of logits.

The gradient is computed during the forward pass, chunk by chunk (softmax minus one-hot, times the weight), and
stored: the backward pass only scales it. Against the checkpointed F.cross_entropy path this skips the logits
recompute in backward, the one-hot fill/scatter and several full-vocabulary passes: measured 2.5x faster on
900 tokens x 49k vocabulary on CPU. The matmuls run in the autocast dtype when autocast is on, as
nn.Linear would (a frozen head tied to the embedding is cast once per training, see methods/frozen_precision.py);
the softmax is float32.

The chunks' [128, vocab] logits, their float32 copy and log-probabilities live in three buffers made once per call
and written with `out=`. A fresh 25 MB tensor per chunk is served by a fresh mmap whenever glibc has returned the
last one to the kernel, and then page-faults in zeroed on first touch. On Xeon-AMX the cross-entropy took 651 ms of a
4.5 s step in one profile and 89 ms with glibc told to keep freed memory (benchmarks/README.md, "Levers").
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


class _ChunkBuffers:
    """The per-chunk tensors of one call, allocated once: logits (then the logits' gradient) in the compute dtype,
    their float32 copy (none when that is float32) and the log-probabilities."""

    def __init__(self, hidden: torch.Tensor, weight: torch.Tensor):
        shape, device = (min(CHUNK_TOKENS, hidden.shape[0]), weight.shape[0]), hidden.device
        self.logits = torch.empty(shape, dtype=hidden.dtype, device=device)
        self.logits_fp32 = None if hidden.dtype == torch.float32 else torch.empty(shape, device=device)
        self.log_probs = torch.empty(shape, dtype=torch.float32, device=device)

    def log_softmax(self, hidden_rows: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """log_softmax(float(hidden_rows @ weight.T)) in the buffers; returns the log-probabilities' rows."""
        rows = hidden_rows.shape[0]
        logits = torch.mm(hidden_rows, weight.T, out=self.logits[:rows])
        if self.logits_fp32 is not None:
            logits = self.logits_fp32[:rows].copy_(logits)
        return torch.log_softmax(logits, dim=-1, out=self.log_probs[:rows])

    def in_compute_dtype(self, grad_logits: torch.Tensor) -> torch.Tensor:
        """The float32 gradient of the logits, written over the logits in the compute dtype (itself if float32)."""
        if self.logits_fp32 is None:
            return grad_logits
        return self.logits[: grad_logits.shape[0]].copy_(grad_logits)


def _summed_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    buffers = _ChunkBuffers(hidden, weight)
    for start in range(0, targets.numel(), CHUNK_TOKENS):
        log_probs = buffers.log_softmax(hidden[start : start + CHUNK_TOKENS], weight)
        total -= log_probs.gather(1, targets[start : start + CHUNK_TOKENS, None]).sum()
    return total


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, compute_dtype):
        h, w = hidden.detach().to(compute_dtype), in_compute_dtype(weight, compute_dtype)
        grad_hidden = torch.empty_like(h)
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        buffers = _ChunkBuffers(h, w)
        for start in range(0, targets.numel(), CHUNK_TOKENS):
            rows = slice(start, start + CHUNK_TOKENS)
            chunk_targets = targets[rows]
            log_probs = buffers.log_softmax(h[rows], w)
            total -= log_probs.gather(1, chunk_targets[:, None]).sum()
            # d(sum CE)/d(logits) = softmax - one_hot(target)
            grad_logits = log_probs.exp_()
            grad_logits[torch.arange(chunk_targets.numel(), device=hidden.device), chunk_targets] -= 1
            grad_logits = buffers.in_compute_dtype(grad_logits)
            torch.mm(grad_logits, w, out=grad_hidden[rows])
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
