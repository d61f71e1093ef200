"""LLM methods: what becomes trainable and how the model is wrapped.

A method is applied to a freshly loaded fp32 model and returns the model to train. Saving follows the
method: adapters are saved as a PEFT folder (small), full and freeze runs as a complete model folder.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tunesmith.config.schema import FreezeMethod, FullMethod, LoraMethod
from tunesmith.errors import ConfigError


def apply_method(model: nn.Module, method) -> nn.Module:
    if isinstance(method, LoraMethod):
        return _lora(model, method)
    if isinstance(method, FullMethod):
        model.requires_grad_(True)
        return model
    if isinstance(method, FreezeMethod):
        return _freeze(model, method)
    raise ConfigError(f"method '{method.name}' is not supported for language models")


def is_adapter(method) -> bool:
    return isinstance(method, LoraMethod)


def _lora(model: nn.Module, method: LoraMethod) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=method.r,
        lora_alpha=method.alpha,
        lora_dropout=method.dropout,
        target_modules=method.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


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
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total


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
    folder = run_dir / ("adapter" if is_adapter(method) else "model")
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
