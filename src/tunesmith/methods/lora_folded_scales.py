"""LoRA's two scalars folded into B's small weight while training: no full-size multiplications for them.

PEFT computes `base(x) + B(A(dropout(x))) * scaling`, and dropout multiplies its kept elements by 1 / (1 - p):
two passes over a [tokens, features] tensor forward and two more backward, per adapted layer (420 a step on
SmolLM2-135M with all-linear LoRA). Both are scalars on a linear path, so here they multiply B's [out, r] weight
instead: `base(x) + linear(A(mask * x), B * (scaling / (1 - p)))`, and the dropout only zeroes
(methods/cpu_dropout.py `keep_mask`, or `forward_unscaled` where it draws no mask). The gradients reach A and B
through the same products, scaled by the same factors.

Layers that read the same input (q, k and v of a Llama block; gate and up) are found as they run: a layer handed
the very tensor the previous one was. Those take dropout's mask alone and the A product as one function that
keeps the input and the mask for backward, not a masked copy each (methods/masked_linear.py): on SmolLM2-135M
three [tokens, 576] tensors a block fewer (with the gated MLP's change, 0.92x a run's training peak memory:
benchmarks/README.md, "Levers"). The first forward learns which layers share, so a layer's first call may still
keep a copy; the values are the same either way. A layer whose input backward can rebuild from tensors kept
anyway (down_proj's `silu(gate) * up`, tasks/causal_lm/gated_mlp.py) keeps those and the mask instead.

What changes is rounding: where a scalar multiplies. A power-of-two scaling (alpha / r = 2 in the defaults) is
exact either way; dropout's 1 / (1 - p) is not, so outputs and gradients differ from PEFT's by float rounding.

Plain single-adapter LoRA on an nn.Linear only (methods/adapter_input_cast.py `plain_lora_linears`); a layer
with adapters disabled or merged, several active adapters, per-example adapter names or a biased B takes PEFT's
own forward. Not for sharded models (FSDP, DeepSpeed ZeRO-3): their parameters are gathered by module hooks,
which the direct product with B's weight would skip. On exit the layers' own forward is back.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn

from tunesmith.methods.adapter_input_cast import plain_lora_linears
from tunesmith.methods.cpu_dropout import masked
from tunesmith.methods.masked_linear import masked_linear, recipe_for
from tunesmith.methods.latest_input import LatestResult


@contextmanager
def lora_scales_folded(model: nn.Module, enabled: bool = True):
    """Inside the block plain LoRA Linear layers fold their scaling and dropout scale into B; yields how many."""
    layers = plain_lora_linears(model) if enabled else []
    sharing = _InputSharing()
    for layer in layers:
        # an instance attribute: the class's forward is untouched
        layer.forward = MethodType(partial(_folded_forward, sharing=sharing), layer)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            del layer.forward


def _folded_forward(layer, x: torch.Tensor, *args, sharing: _InputSharing, **kwargs) -> torch.Tensor:
    name = _single_plain_adapter(layer)
    if name is None or args or kwargs:
        return type(layer).forward(layer, x, *args, **kwargs)
    result = layer.base_layer(x)
    lora_a, lora_b = layer.lora_A[name], layer.lora_B[name]
    x = layer._cast_input_dtype(x, lora_a.weight.dtype)
    # masked_linear restores the CPU's autocast state in backward; elsewhere PEFT's products
    recipe = recipe_for(x) if x.device.type == "cpu" else None
    shared = sharing.shares(layer, x)
    dropout = layer.lora_dropout[name]
    keep = dropout.keep_mask(x) if hasattr(dropout, "keep_mask") else None
    if keep is None:
        dropped, dropout_scale = _unscaled_dropout(dropout, x)
        rebuilt = recipe is not None and dropped is x  # no dropout: the rebuilt input is A's input
        hidden = masked_linear(x, None, lora_a.weight, recipe) if rebuilt else lora_a(dropped)
    else:
        mask, dropout_scale = keep
        if shared or recipe is not None:
            hidden = masked_linear(x, mask, lora_a.weight, recipe)
        else:
            hidden = lora_a(masked(x, mask))
    lora = F.linear(hidden, lora_b.weight * (layer.scaling[name] * dropout_scale))
    return (result + lora).to(result.dtype)


class _InputSharing:
    """Which layers read an input another layer reads too, learned as they run: q, k and v (and gate and up) are
    called one after another with the very same tensor."""

    def __init__(self):
        self.latest_reader = LatestResult()
        self.sharing: set[nn.Module] = set()

    def shares(self, layer: nn.Module, x: torch.Tensor) -> bool:
        previous = self.latest_reader.get(x, "reader")
        if previous is not None and previous is not layer:
            self.sharing.update((previous, layer))
        self.latest_reader.put(x, "reader", layer)
        return layer in self.sharing


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
