"""Speed levers tried on tunesmith from inside a benchmark process, before anyone changes the source for them.

Each patch changes tunesmith in the process that applies it and nowhere else, so one lever can be measured alone
against the code as it is (`lever_ab.py --patch NAME`, `lora_vs_trl.py --tunesmith-patch NAME`). A lever that
wins becomes a change in the source; its patch is then removed from here.
"""

from __future__ import annotations

import torch


def _adamw_with(**options):
    """torch.optim.AdamW with `options` forced, in place of the class the training loop builds."""
    original = torch.optim.AdamW

    class PatchedAdamW(original):
        def __init__(self, params, *args, **kwargs):
            super().__init__(params, *args, **{**kwargs, **options})

    def apply() -> None:
        torch.optim.AdamW = PatchedAdamW  # train/loop.py looks the class up on torch.optim when it builds it

    return apply


def _lora_addmm() -> None:
    """PEFT's LoRA Linear as `addmm(base output, A(dropout(x)), B^T, alpha=scaling)`: the adapter's second product,
    its scaling and the residual add in one call (forward and backward), instead of three ops over [tokens, out]."""
    from peft.tuners.lora import layer

    original = layer.Linear.forward

    def forward(self, x, *args, **kwargs):
        active = self.active_adapters
        if (args or kwargs or self.disable_adapters or self.merged or len(active) != 1 or active[0] not in self.lora_A
                or active[0] in self.lora_variant or self.lora_B[active[0]].bias is not None):
            return original(self, x, *args, **kwargs)  # anything but plain single-adapter LoRA: PEFT's own path
        name = active[0]
        result = self.base_layer(x)
        lora_a, lora_b = self.lora_A[name], self.lora_B[name]
        reduced = lora_a(self.lora_dropout[name](self._cast_input_dtype(x, lora_a.weight.dtype)))
        flat = torch.addmm(result.reshape(-1, result.shape[-1]), reduced.reshape(-1, reduced.shape[-1]),
                           lora_b.weight.t(), alpha=self.scaling[name])
        return flat.view(result.shape).to(result.dtype)

    layer.Linear.forward = forward


PATCHES = {
    # torch's AdamW runs a Python loop over the parameters on CPU by default (foreach is CUDA-only by default);
    # the fused kernel updates all of them in one call per dtype and device, as TRL's adamw_torch_fused does.
    "adamw_fused": _adamw_with(fused=True),
    "adamw_foreach": _adamw_with(foreach=True),
    "lora_addmm": _lora_addmm,
}


def apply(names: list[str]) -> None:
    unknown = [name for name in names if name not in PATCHES]
    if unknown:
        raise ValueError(f"unknown patch {unknown[0]!r}; known: {', '.join(PATCHES)}")
    for name in names:
        PATCHES[name]()
