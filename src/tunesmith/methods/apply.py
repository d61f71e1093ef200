"""Apply a configured method to a freshly loaded model, and save what it trained: both read the registry."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from tunesmith.methods import registry


def apply_method(model: nn.Module, options, tokenizer_path: str | Path | None = None) -> nn.Module:
    """Make the method's parameters trainable. `tokenizer_path` is needed only by prompt tuning's text init;
    qlora expects the base from `models.load.load_model_for_method` (quantised at load time)."""
    return registry.of(options).apply(model, options, tokenizer_path)


def is_adapter(options) -> bool:
    return registry.of(options).is_adapter


def output_folder(run_dir: Path, options) -> Path:
    """Where a finished run keeps what it trained: adapter/ (PEFT safetensors) or model/ (a whole model)."""
    return Path(run_dir) / registry.of(options).saves


def save_final(model: nn.Module, tokenizer, options, run_dir: Path) -> Path:
    from tunesmith.methods.lora_init import save_adapter

    folder = output_folder(run_dir, options)
    if is_adapter(options):
        save_adapter(model, folder)
    else:
        model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder
