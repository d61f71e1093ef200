"""`lora`: low-rank adapters through PEFT, with rsLoRA, DoRA and PiSSA/OLoRA/gaussian initialisations.

The LoRA options are shared with qlora (methods/llm/qlora.py), which adds a quantised base.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Union

from pydantic import Field, ValidationInfo, field_validator

from tunesmith.config.section import Section, invalid
from tunesmith.methods.llm.peft_wrap import copy, wrap
from tunesmith.methods.registry import Method, register

if TYPE_CHECKING:  # annotations only: the config schema imports every method without torch
    from torch import nn

# init -> LoraConfig.init_lora_weights
LORA_INIT = {"default": True, "pissa": "pissa", "olora": "olora", "gaussian": "gaussian"}
# PiSSA and OLoRA move part of each base weight into the adapter (the base becomes a residual).
MUTATING_INITS = ("pissa", "olora")
TRIAL_KNOBS = ("r", "alpha", "dropout", "target_modules")


class LoraOptions(Section):
    r: int = Field(16, ge=1)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: Union[Literal["all-linear"], list[str]] = "all-linear"
    rslora: bool = Field(False, description="scale by alpha/sqrt(r) instead of alpha/r")
    dora: bool = Field(False, description="weight-decomposed LoRA: also train each weight's magnitude")
    init: Literal["default", "pissa", "olora", "gaussian"] = "default"
    modules_to_save: list[str] | None = Field(None, description="modules trained in full and saved with the adapter")
    shared_dropout_mask: bool = Field(
        False, description="projections that read the same input (q/k/v, gate/up) share one dropout mask instead of "
                           "one each: fewer random draws (faster on CPUs), a slightly different regulariser than PEFT's")

    @field_validator("init")
    @classmethod
    def _init_fits_dora(cls, init: str, info: ValidationInfo) -> str:
        # The saved adapter is converted back to plain LoRA on the original base; that conversion carries
        # only the low-rank matrices, not DoRA's magnitudes.
        if init in MUTATING_INITS and info.data.get("dora"):
            raise invalid(f"'{init}' cannot be combined with dora: true; use init: default or gaussian with DoRA")
        return init


class LoraMethod(LoraOptions):
    name: Literal["lora"] = "lora"


def apply(model: nn.Module, options: LoraOptions, tokenizer_path: str | Path | None = None) -> nn.Module:
    from tunesmith.methods.lora_init import remember_initial_adapter

    model = wrap(model, lora_config(options, _adapts_tied_embeddings(model, options)))
    remember_initial_adapter(model, options)
    return model


def lora_config(options: LoraOptions, tie_embeddings: bool = False):
    from peft import LoraConfig

    return LoraConfig(
        task_type="CAUSAL_LM",
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=copy(options.target_modules),
        use_rslora=options.rslora,
        use_dora=options.dora,
        init_lora_weights=LORA_INIT[options.init],
        modules_to_save=copy(options.modules_to_save),
        # With tied input/output embeddings, adapting either one adapts the shared tensor, as in the base
        # model; an untied copy would be lost when a merged model is saved and re-tied on load.
        ensure_weight_tying=tie_embeddings,
    )


def _adapts_tied_embeddings(model: nn.Module, options: LoraOptions) -> bool:
    from peft.utils.constants import EMBEDDING_LAYER_NAMES

    config = getattr(model, "config", None)
    if config is None or not config.get_text_config().tie_word_embeddings:
        return False
    targets = options.target_modules if isinstance(options.target_modules, list) else []
    # The same name test PEFT applies when it ties adapters.
    return any(name.split(".")[-1] in EMBEDDING_LAYER_NAMES for name in [*targets, *(options.modules_to_save or [])])


def keeps_base_exact(options: LoraOptions) -> bool:
    """Frozen weights may be cast for speed unless the adapter is derived from them: DoRA's magnitudes,
    PiSSA/OLoRA's initialisation and save conversion."""
    return not options.dora and options.init not in MUTATING_INITS


METHOD = register(Method(
    name="lora", family="llm", options=LoraMethod, learning_rate=2e-4, summary="low-rank adapters (PEFT)",
    apply=apply, saves="adapter", fast_frozen_weights=keeps_base_exact, trial_knobs=TRIAL_KNOBS,
))
