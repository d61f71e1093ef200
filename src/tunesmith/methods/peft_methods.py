"""The PEFT family: each `method.name` becomes a PEFT config, and the base model is wrapped with it."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from tunesmith.config.methods import (
    LORA_INIT,
    IA3Method,
    LoraOptions,
    PrefixTuningMethod,
    PromptTuningMethod,
    PTuningMethod,
    QLoraMethod,
)
from tunesmith.errors import ConfigError
from tunesmith.methods.lora_init import remember_initial_adapter


def apply_peft(model: nn.Module, method, tokenizer_path: str | Path | None = None) -> nn.Module:
    from peft import get_peft_model, prepare_model_for_kbit_training

    if isinstance(method, QLoraMethod):
        if not getattr(model, "is_quantized", False):
            raise ConfigError(
                "method 'qlora' needs the base loaded quantised; load it with "
                "tunesmith.models.load.load_model_for_method"
            )
        # Casts the remaining full-precision weights to fp32 and freezes the base. Gradient checkpointing stays
        # the loop's choice (training.gradient_checkpointing), as for every other method.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(model, peft_config(method, tokenizer_path, _adapts_tied_embeddings(model, method)))
    if isinstance(method, LoraOptions):
        remember_initial_adapter(model, method)
    return model


def peft_config(method, tokenizer_path: str | Path | None = None, tie_embeddings: bool = False):
    """PEFT's config for a method. Lists are copied: PEFT rewrites some of them (modules_to_save) in place."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, PromptEncoderConfig

    if isinstance(method, LoraOptions):
        return LoraConfig(
            task_type="CAUSAL_LM",
            r=method.r,
            lora_alpha=method.alpha,
            lora_dropout=method.dropout,
            target_modules=_copy(method.target_modules),
            use_rslora=method.rslora,
            use_dora=method.dora,
            init_lora_weights=LORA_INIT[method.init],
            modules_to_save=_copy(method.modules_to_save),
            # With tied input/output embeddings, adapting either one adapts the shared tensor, as in the base
            # model; an untied copy would be lost when a merged model is saved and re-tied on load.
            ensure_weight_tying=tie_embeddings,
        )
    if isinstance(method, IA3Method):
        # None lets PEFT pick the modules it knows for the architecture (Llama: k_proj, v_proj, down_proj).
        return IA3Config(
            task_type="CAUSAL_LM",
            target_modules=_copy(method.target_modules),
            feedforward_modules=_copy(method.feedforward_modules),
        )
    if isinstance(method, PromptTuningMethod):
        return _prompt_tuning_config(method, tokenizer_path)
    if isinstance(method, PrefixTuningMethod):
        return PrefixTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=method.num_virtual_tokens,
            prefix_projection=method.prefix_projection,
        )
    if isinstance(method, PTuningMethod):
        return PromptEncoderConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=method.num_virtual_tokens,
            encoder_hidden_size=method.encoder_hidden_size,
        )
    raise ConfigError(f"method '{method.name}' is not a PEFT method")


def _prompt_tuning_config(method: PromptTuningMethod, tokenizer_path: str | Path | None):
    from peft import PromptTuningConfig

    if method.init == "random":
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=method.num_virtual_tokens)
    if tokenizer_path is None:
        # PEFT tokenizes init_text itself, from a tokenizer it loads by path.
        raise ConfigError("method.init: text needs the model's tokenizer; pass tokenizer_path to apply_method")
    return PromptTuningConfig(
        task_type="CAUSAL_LM",
        num_virtual_tokens=method.num_virtual_tokens,
        prompt_tuning_init="TEXT",
        prompt_tuning_init_text=method.init_text,
        tokenizer_name_or_path=str(tokenizer_path),
    )


def _copy(value):
    return list(value) if isinstance(value, list) else value


def _adapts_tied_embeddings(model: nn.Module, method) -> bool:
    from peft.utils.constants import EMBEDDING_LAYER_NAMES

    config = getattr(model, "config", None)
    if not isinstance(method, LoraOptions) or config is None or not config.get_text_config().tie_word_embeddings:
        return False
    targets = method.target_modules if isinstance(method.target_modules, list) else []
    # The same name test PEFT applies when it ties adapters.
    return any(name.split(".")[-1] in EMBEDDING_LAYER_NAMES for name in [*targets, *(method.modules_to_save or [])])
