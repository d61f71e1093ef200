"""Attention for training on CPU: the three-op form (matmul, softmax, matmul) for small attention matrices, SDPA
for the rest.

PyTorch's fused CPU attention kernel is slow in backward on short sequences. Forward + backward of 8 rows x 9 heads
(bf16, padding mask) took 12.1 ms against 4.1 ms for the three-op form at 128 tokens, and 25 vs 19 ms at 256; at
512 tokens and beyond the fused kernel is 2.4x faster and its memory stays linear. So a call whose
[batch, heads, query, key] scores tensor is small takes the three-op form, any other takes SDPA. Both use SDPA's
masks (boolean, or None for plain causal), so padding and packed examples are handled alike.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "tunesmith_cpu"
# Scores tensors up to this many elements take the three-op form: 8 x 9 x 256 x 256 = 4.7M was faster,
# 8 x 9 x 512 x 512 = 18.9M slower.
MAX_SCORES = 1 << 23


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
              is_causal: bool | None = None, **kwargs):
    batch, heads, q_length, head_dim = query.shape
    kv_length = key.shape[2]
    if (query.device.type != "cpu" or batch * heads * q_length * kv_length > MAX_SCORES
            or kwargs.get("position_bias") is not None or kwargs.get("cache") is not None):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    scores = torch.matmul(query, key.transpose(2, 3)) * (head_dim**-0.5 if scaling is None else scaling)
    allowed = attention_mask
    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    if allowed is None and causal and q_length > 1:
        allowed = torch.ones(q_length, kv_length, dtype=torch.bool, device=query.device).tril(kv_length - q_length)
    if allowed is not None:
        if allowed.dtype == torch.bool:
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        else:
            scores = scores + allowed
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


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
