"""`qlora`: LoRA on a 4-bit (NF4/FP4) or 8-bit bitsandbytes base, with k-bit preparation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationInfo, field_validator

from tunesmith.config.section import invalid
from tunesmith.errors import ConfigError
from tunesmith.methods.llm import lora
from tunesmith.methods.registry import Method, always, register

if TYPE_CHECKING:  # annotations only: the config schema imports every method without torch
    from torch import nn


class QLoraMethod(lora.LoraOptions):
    name: Literal["qlora"]
    bits: Literal[4, 8] = 4
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = Field(True, description="also quantise the quantisation constants (4-bit)")
    compute_dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="auto: the training precision")

    @field_validator("init")
    @classmethod
    def _init_fits_quantized_base(cls, init: str, info: ValidationInfo) -> str:
        if init in lora.MUTATING_INITS:
            raise invalid(
                f"'{init}' rewrites the base weights, which qlora keeps quantised; use init: default or gaussian, "
                f"or method.name: lora for {init}"
            )
        return init

    # A non-default 4-bit option with 8 bits would be silently ignored. Defaults pass, so a saved config
    # (which writes every key) loads again.
    @field_validator("quant_type", "double_quant", "compute_dtype")
    @classmethod
    def _four_bit_only(cls, value, info: ValidationInfo):
        if info.data.get("bits") == 8 and value != cls.model_fields[info.field_name].default:
            raise invalid("applies only to 4-bit quantisation; remove it or set bits: 4")
        return value


def apply(model: nn.Module, options: QLoraMethod, tokenizer_path: str | Path | None = None) -> nn.Module:
    from peft import prepare_model_for_kbit_training

    if not getattr(model, "is_quantized", False):
        raise ConfigError(
            "method 'qlora' needs the base loaded quantised; load it with tunesmith.models.load.load_model_for_method"
        )
    # Casts the remaining full-precision weights to fp32 and freezes the base. Gradient checkpointing stays
    # the loop's choice (training.gradient_checkpointing), as for every other method.
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return lora.apply(model, options, tokenizer_path)


METHOD = register(Method(
    name="qlora", family="llm", options=QLoraMethod, learning_rate=2e-4,  # the QLoRA paper's rate for 7B-33B models
    summary="LoRA on a 4-bit (NF4/FP4) or 8-bit bitsandbytes base", apply=apply, saves="adapter",
    # bitsandbytes layers are not nn.Linear, so there is nothing to cast; the rule stays LoRA's.
    fast_frozen_weights=lora.keeps_base_exact, quantized_base=always, trial_knobs=lora.TRIAL_KNOBS,
))
