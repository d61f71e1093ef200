"""LoRA's two scalars folded into B's small weight while training: no full-size multiplications for them.

PEFT computes `base(x) + B(A(dropout(x))) * scaling`, and dropout multiplies its kept elements by 1 / (1 - p):
two passes over a [tokens, features] tensor forward and two more backward, per adapted layer (420 a step on
SmolLM2-135M with all-linear LoRA). Both are scalars on a linear path, so here they multiply B's [out, r] weight
instead: `base(x) + linear(A(mask * x), B * (scaling / (1 - p)))`, and the dropout only zeroes
(methods/cpu_dropout.py `forward_unscaled`). The gradients reach A and B through the same products, scaled
by the same factors.

What changes is rounding: where a scalar multiplies. A power-of-two scaling (alpha / r = 2 in the defaults) is
exact either way; dropout's 1 / (1 - p) is not, so outputs and gradients differ from PEFT's by float rounding.

Plain single-adapter LoRA on an nn.Linear only (methods/adapter_input_cast.py `plain_lora_linears`); a layer
with adapters disabled or merged, several active adapters, per-example adapter names or a biased B takes PEFT's
own forward. Not for sharded models (FSDP, DeepSpeed ZeRO-3): their parameters are gathered by module hooks,
which the direct product with B's weight would skip. On exit the layers' own forward is back.
"""

from __future__ import annotations

from contextlib import contextmanager
from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.methods.adapter_input_cast import plain_lora_linears


@contextmanager
def lora_scales_folded(model: nn.Module, enabled: bool = True):
    """Inside the block plain LoRA Linear layers fold their scaling and dropout scale into B; yields how many."""
    layers = plain_lora_linears(model) if enabled else []
    for layer in layers:
        layer.forward = MethodType(_folded_forward, layer)  # an instance attribute: the class's forward is untouched
    try:
        yield len(layers)
    finally:
        for layer in layers:
            del layer.forward


def _folded_forward(layer, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    name = _single_plain_adapter(layer)
    if name is None or args or kwargs:
        return type(layer).forward(layer, x, *args, **kwargs)
    result = layer.base_layer(x)
    lora_a, lora_b = layer.lora_A[name], layer.lora_B[name]
    dropped, dropout_scale = _unscaled_dropout(layer.lora_dropout[name], layer._cast_input_dtype(x, lora_a.weight.dtype))
    lora = F.linear(lora_a(dropped), lora_b.weight * (layer.scaling[name] * dropout_scale))
    return (result + lora).to(result.dtype)


def _single_plain_adapter(layer) -> str | None:
    if layer.disable_adapters or layer.merged:
        return None
    active = [name for name in layer.active_adapters if name in layer.lora_A]
    if len(active) != 1 or active[0] in layer.lora_variant or layer.lora_B[active[0]].bias is not None:
        return None
    return active[0]


def _unscaled_dropout(dropout: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The dropout's output and the scale still owed to it: CpuDropout leaves its 1 / (1 - p) to the caller."""
    unscaled = getattr(dropout, "forward_unscaled", None)
    return unscaled(x) if unscaled is not None else (dropout(x), 1.0)
