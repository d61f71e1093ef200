"""Whether each language-model method fits this device's memory for a model, by the memory plan's own arithmetic.

The method is applied to the model's architecture on PyTorch's meta device (shapes, no memory), and
methods/memory.py estimates and checks it exactly as a training run's plan line does: weights, gradients and AdamW
state, activations not counted. qlora's base cannot be quantised on the meta device, so its LoRA is applied to the
full-precision shapes and each weight bitsandbytes would quantise is counted at its packed size (bits / 8 bytes per
weight), which is what the plan counts on a real quantised model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from tunesmith.errors import TunesmithError
from tunesmith.methods import memory, registry


@dataclass(frozen=True)
class MethodFit:
    method: str
    need: memory.MemoryEstimate | None  # None: the method cannot be applied to this architecture
    fits: bool | None
    reason: str = ""  # why it does not fit, or cannot be applied

    @property
    def gib(self) -> float | None:
        return self.need.total / memory.GIB if self.need else None

    def to_dict(self) -> dict:
        return {"method": self.method, "fits": self.fits, "memory_gib": None if self.gib is None else round(self.gib, 3),
                "reason": self.reason}


def default_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def quantised_weight_bytes_saved(model, bits: int) -> int:
    """Bytes a bitsandbytes base saves over these fp32 shapes: the layers transformers' quantiser would replace
    (nn.Linear and GPT-2's Conv1D, except the output head and tied or fp32-kept modules) at bits / 8 bytes a weight."""
    from torch import nn
    from transformers.pytorch_utils import Conv1D
    from transformers.quantizers.base import HfQuantizer
    from transformers.quantizers.quantizers_utils import should_convert_module

    skip = HfQuantizer.get_modules_to_not_convert(model, None, getattr(model, "_keep_in_fp32_modules", None))
    saved = 0
    for name, module in model.named_modules():
        if (type(module) is nn.Linear or isinstance(module, Conv1D)) and should_convert_module(name, skip):
            weight = module.weight
            saved += weight.numel() * weight.element_size() - weight.numel() * bits // 8
    return saved


def _need(method: registry.Method, options, base, tokenizer_path) -> memory.MemoryEstimate:
    import torch

    model = copy.deepcopy(base)  # methods change the model they are applied to
    with torch.device("meta"):  # what the method adds is made on the meta device too
        if not method.quantized_base(options):
            return memory.estimate(method.apply(model, options, tokenizer_path))
        saved = quantised_weight_bytes_saved(model, options.bits)
        # Its own apply needs a model bitsandbytes has quantised; what trains on top is LoRA's.
        need = memory.estimate(registry.get("lora").apply(model, options, tokenizer_path))
    return memory.MemoryEstimate(need.weights - saved, need.gradients, need.optimizer)


def method_fits(base, device, options_for: dict | None = None, tokenizer_path=None) -> dict[str, MethodFit]:
    """{method name: MethodFit} for every language-model method, applied with its default options (or those in
    `options_for`, e.g. a config's own method) to `base`, a meta-device model (catalogue.meta_model)."""
    from tunesmith.methods.parameters import parameter_counts

    total = parameter_counts(base)[1]
    fits = {}
    for method in registry.methods("llm"):
        options = (options_for or {}).get(method.name) or method.options(name=method.name)
        try:
            need = _need(method, options, base, tokenizer_path)
        except Exception as exc:  # noqa: BLE001  an architecture PEFT cannot wrap: say why, keep listing
            fits[method.name] = MethodFit(method.name, None, None, f"cannot be applied: {exc}".splitlines()[0])
            continue
        try:
            memory.check_fits(method.name, need, total, device, loaded_weights=need.weights)
        except TunesmithError as refusal:
            fits[method.name] = MethodFit(method.name, need, False, str(refusal))
        else:
            fits[method.name] = MethodFit(method.name, need, True)
    return fits
