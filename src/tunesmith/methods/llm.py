"""LLM methods: what becomes trainable and how the model is wrapped.

A method is applied to a freshly loaded model (fp32; quantised for qlora) and returns the model to train.
Saving follows the method: PEFT methods are saved as a PEFT adapter folder (small), full and freeze runs as a
complete model folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tunesmith.config.methods import PEFT_METHODS, FreezeMethod, FullMethod
from tunesmith.errors import ConfigError
from tunesmith.methods.lora_init import save_adapter
from tunesmith.methods.peft_methods import apply_peft


def apply_method(model: nn.Module, method, tokenizer_path: str | Path | None = None) -> nn.Module:
    """Make the method's parameters trainable. `tokenizer_path` is needed only by prompt tuning's text init;
    qlora expects the base from `models.load.load_model_for_method` (quantised at load time)."""
    if is_adapter(method):
        return apply_peft(model, method, tokenizer_path)
    if isinstance(method, FullMethod):
        model.requires_grad_(True)
        return model
    if isinstance(method, FreezeMethod):
        return _freeze(model, method)
    raise ConfigError(f"method '{method.name}' is not supported for language models")


def is_adapter(method) -> bool:
    return isinstance(method, PEFT_METHODS)


def _freeze(model: nn.Module, method: FreezeMethod) -> nn.Module:
    blocks = decoder_blocks(model)
    if method.layers > len(blocks):
        raise ConfigError(f"method.layers: {method.layers} is more than the model's {len(blocks)} blocks")
    model.requires_grad_(False)
    for block in blocks[-method.layers :]:
        block.requires_grad_(True)
    if method.train_head:
        # With tied embeddings this also trains the input embedding: they are one tensor.
        model.get_output_embeddings().requires_grad_(True)
    return model


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The transformer's block list: the longest ModuleList in the model (layers/h/blocks by architecture)."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise ConfigError("method 'freeze' needs a model with a list of transformer blocks; none was found")
    return max(lists, key=len)


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) counting each shared tensor once."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        count = _weights_in(p)
        total += count
        trainable += count if p.requires_grad else 0
    return trainable, total


def _weights_in(p: torch.Tensor) -> int:
    # bitsandbytes packs two 4-bit weights per byte; count the weights, not the bytes.
    quant_state = getattr(p, "quant_state", None)
    return quant_state.shape.numel() if quant_state is not None else p.numel()


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable tensors by name: what a checkpoint must hold to restore training."""
    return {name: p.detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [name for name, p in params.items() if p.requires_grad and name not in state]
    if missing:
        raise ValueError(f"checkpoint lacks {len(missing)} trainable tensors, e.g. {missing[0]}")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def save_final(model: nn.Module, tokenizer, method, run_dir: Path) -> Path:
    """Adapter methods write run_dir/adapter (PEFT safetensors); others write run_dir/model (safetensors)."""
    if is_adapter(method):
        folder = run_dir / "adapter"
        save_adapter(model, folder)
    else:
        folder = run_dir / "model"
        model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
