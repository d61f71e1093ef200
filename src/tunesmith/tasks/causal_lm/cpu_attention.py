"""Attention for training on CPU: the three-op form (matmul, softmax, matmul) for small attention matrices, SDPA
for the rest, and packed rows attended example by example.

PyTorch's fused CPU attention kernel is slow in backward on short sequences. Forward + backward of 8 rows x 9 heads
(bf16, padding mask) took 12.1 ms against 4.1 ms for the three-op form at 128 tokens, and 25 vs 19 ms at 256; at
512 tokens and beyond the fused kernel is 2.4x faster and its memory stays linear. So a call whose
[batch, heads, query, key] scores tensor is small takes the three-op form, any other takes SDPA. Both use SDPA's
masks (boolean, or None for plain causal), so padding is handled alike.

A packed row (one row, position_ids restarting per example) would otherwise go through a dense block-diagonal
[T, T] mask; attending each example's span on its own costs the sum of the squared lengths instead of T^2,
and is exactly the block-diagonal result.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from tunesmith.methods.latest_input import LatestResult

NAME = "tunesmith_cpu"
# Scores tensors up to this many elements take the three-op form: 8 x 9 x 256 x 256 = 4.7M was faster,
# 8 x 9 x 512 x 512 = 18.9M slower.
MAX_SCORES = 1 << 23


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
              is_causal: bool | None = None, **kwargs):
    if query.device.type != "cpu" or kwargs.get("position_bias") is not None or kwargs.get("cache") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    spans = _packed_spans(module, query, key, attention_mask, causal, kwargs.get("position_ids"))
    if spans is None:
        return _attend(module, query, key, value, attention_mask, dropout, scaling, causal, **kwargs), None
    outputs = [
        _attend(module, query[:, :, start:end], key[:, :, start:end], value[:, :, start:end], None, dropout, scaling,
                True, **kwargs)
        for start, end in spans
    ]
    return torch.cat(outputs, dim=1), None


def _attend(module, query, key, value, mask, dropout, scaling, causal, **kwargs) -> torch.Tensor:
    """[batch, query, heads, head_dim] attention output of one call."""
    batch, heads, q_length, head_dim = query.shape
    kv_length = key.shape[2]
    if batch * heads * q_length * kv_length > MAX_SCORES:
        return sdpa_attention_forward(module, query, key, value, mask, dropout=dropout, scaling=scaling,
                                      is_causal=causal, **kwargs)[0]
    # Grouped-query attention without repeat_kv: the query heads that share a key/value head are stacked along the
    # query axis of that head ([batch, kv_heads, groups * query, head_dim]), so key and value are read, not copied
    # per group, and their gradients need no sum over the groups.
    kv_heads = key.shape[1]
    grouped = query.reshape(batch, kv_heads, heads // kv_heads * q_length, head_dim)
    scores = torch.matmul(grouped, key.transpose(2, 3)).view(batch, heads, q_length, kv_length)
    if mask is None and causal and q_length > 1:
        mask = _causal(q_length, kv_length, query.device)
    # Under autocast the next matmul runs in the autocast dtype anyway (query is float32 after RoPE).
    device = query.device.type
    probs = _MaskedSoftmax.apply(scores, mask, head_dim**-0.5 if scaling is None else scaling,
                                 torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else query.dtype)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs.view(batch, kv_heads, -1, kv_length), value).view(batch, heads, q_length, head_dim)
    return out.transpose(1, 2).contiguous()


class _MaskedSoftmax(torch.autograd.Function):
    """softmax(scores * scale, masked) in float32, returned in `dtype`, keeping only that output for backward.

    Scaling, masking and softmax as separate autograd ops made a pass each way per op, and `masked_fill` is a
    scalar loop on CPU: a boolean mask becomes an additive one ([batch, 1, q, k], 0 or the dtype's minimum, made
    once for all the layers that get the same mask) added with the scale in one vectorised pass (two where the
    scale is not exact in the scores' dtype; 1/8, for 64-wide heads, is). Scaling and masking [8, 9, 95, 95] scores,
    forward and backward: 3.6 -> 0.9 ms in fp32, 2.5 -> 0.6 ms in bf16 (`micro.py attention-mask`), the same
    values: a masked score is the minimum either way; its probability is 0, and so its gradient, except in a row
    masked whole, which backward zeroes as masked_fill's backward did. softmax(..., dtype=float32).to(bf16) would keep
    the float32 probabilities as well: 6 bytes per score instead of 2; backward computes in float32 from the kept
    probabilities.
    """

    @staticmethod
    def forward(ctx, scores, mask, scale, dtype):
        ctx.scores_dtype, ctx.scale = scores.dtype, scale
        masked_rows = None
        if mask is None:
            scores = scores * scale
        elif mask.dtype == torch.bool:
            bias, empty_rows = _additive(mask, scores.dtype)
            # add's alpha is rounded to the tensor's dtype, a `*` scalar is not: the same only where it is exact.
            scores = torch.add(bias, scores, alpha=scale) if _exact(scale, scores.dtype) else bias + scores * scale
            masked_rows = mask if empty_rows else None
        else:
            scores = scores * scale + mask
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(dtype)
        ctx.save_for_backward(probs, masked_rows)
        return probs

    @staticmethod
    def backward(ctx, grad_probs):
        probs, masked_rows = ctx.saved_tensors
        probs, grad_probs = probs.float(), grad_probs.float()
        grad_scores = (probs * (grad_probs - (grad_probs * probs).sum(dim=-1, keepdim=True))).to(ctx.scores_dtype)
        if masked_rows is not None:
            grad_scores.masked_fill_(~masked_rows, 0)
        return grad_scores.mul_(ctx.scale), None, None, None


_latest_mask = LatestResult()


@functools.lru_cache(maxsize=8)
def _causal(q_length: int, kv_length: int, device: torch.device) -> torch.Tensor:
    """The plain causal mask, one object per shape, so that the layers of a forward pass share its additive form
    (never changed in place)."""
    return torch.ones(q_length, kv_length, dtype=torch.bool, device=device).tril(kv_length - q_length)


@functools.cache
def _exact(scale: float, dtype: torch.dtype) -> bool:
    return torch.tensor(scale, dtype=dtype).item() == scale


def _additive(mask: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, bool]:
    """The additive form of a boolean mask (0 where attended, dtype's minimum elsewhere), and whether some query
    row attends nothing; the layers of one forward pass share the mask object, and so this."""
    cached = _latest_mask.get(mask, dtype)
    if cached is None:
        bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, torch.finfo(dtype).min)
        cached = _latest_mask.put(mask, dtype, (bias, not bool(mask.any(dim=-1).all())))
    return cached


def _packed_spans(module, query, key, mask, causal: bool, position_ids) -> list[tuple[int, int]] | None:
    """(start, end) of each example in a packed row, or None where the call is not plain packed causal attention."""
    if (position_ids is None or mask is None or not causal or query.shape[0] != 1 or position_ids.shape[0] != 1
            or query.shape[2] != key.shape[2] or getattr(module, "sliding_window", None)):
        return None
    positions = position_ids[0]
    # The rule transformers uses to find packed examples: a position that does not continue the previous one.
    starts = (torch.nonzero(positions[1:] != positions[:-1] + 1).flatten() + 1).tolist()
    if not starts:
        return None
    bounds = [0, *starts, positions.numel()]
    return list(zip(bounds[:-1], bounds[1:]))


AttentionInterface.register(NAME, attention)
AttentionMaskInterface.register(NAME, sdpa_mask)


@contextmanager
def cpu_attention(model, device: torch.device):
    """Inside the block a CPU model that uses SDPA uses `attention`; its own setting returns on exit."""
    config = getattr(model, "config", None)
    if device.type != "cpu" or getattr(config, "_attn_implementation", None) != "sdpa":
        yield False
        return
    model.set_attn_implementation(NAME)
    try:
        yield True
    finally:
        model.set_attn_implementation("sdpa")
