"""Prompt learning: `prompt_tuning` (virtual tokens), `prefix_tuning` (per-layer prefixes), `p_tuning` (a prompt
encoder). Rates from PEFT's task guides: prompt tuning 3e-2 (causal LM), prefix tuning 1e-2, P-tuning 1e-3 (its MLP
reparameterisation is a small network and diverges at prompt-tuning rates)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from tunesmith.config.section import Section, invalid
from tunesmith.errors import ConfigError
from tunesmith.methods.llm.peft_wrap import wrap
from tunesmith.methods.registry import Method, always, register


class PromptTuningMethod(Section):
    name: Literal["prompt_tuning"]
    num_virtual_tokens: int = Field(20, ge=1)
    init: Literal["random", "text"] = "random"
    init_text: str | None = Field(None, validate_default=True, description="the text the virtual tokens start as")

    @field_validator("init_text")
    @classmethod
    def _text_matches_init(cls, text: str | None, info: ValidationInfo) -> str | None:
        init = info.data.get("init")
        if init == "text" and not (text and text.strip()):
            raise invalid("required when init is 'text': the text whose token embeddings start the virtual tokens")
        if init == "random" and text is not None:
            raise invalid("used only with init: text; set method.init: text or remove init_text")
        return text


class PrefixTuningMethod(Section):
    name: Literal["prefix_tuning"]
    num_virtual_tokens: int = Field(20, ge=1)
    prefix_projection: bool = Field(False, description="learn the prefix through an MLP (more parameters)")


class PTuningMethod(Section):
    name: Literal["p_tuning"]
    num_virtual_tokens: int = Field(20, ge=1)
    encoder_hidden_size: int = Field(128, ge=1)


def apply_prompt_tuning(model, options: PromptTuningMethod, tokenizer_path: str | Path | None = None):
    from peft import PromptTuningConfig

    if options.init == "random":
        return wrap(model, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=options.num_virtual_tokens))
    if tokenizer_path is None:
        # PEFT tokenizes init_text itself, from a tokenizer it loads by path.
        raise ConfigError("method.init: text needs the model's tokenizer; pass tokenizer_path to apply_method")
    return wrap(model, PromptTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=options.num_virtual_tokens, prompt_tuning_init="TEXT",
        prompt_tuning_init_text=options.init_text, tokenizer_name_or_path=str(tokenizer_path),
    ))


def apply_prefix_tuning(model, options: PrefixTuningMethod, tokenizer_path=None):
    from peft import PrefixTuningConfig

    return wrap(model, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=options.num_virtual_tokens,
                                          prefix_projection=options.prefix_projection))


def apply_p_tuning(model, options: PTuningMethod, tokenizer_path=None):
    from peft import PromptEncoderConfig

    return wrap(model, PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=options.num_virtual_tokens,
                                           encoder_hidden_size=options.encoder_hidden_size))


register(Method(
    name="prompt_tuning", family="llm", options=PromptTuningMethod, learning_rate=3e-2,
    summary="virtual tokens (random or text init)", apply=apply_prompt_tuning, saves="adapter",
    fast_frozen_weights=always,
))
register(Method(
    name="prefix_tuning", family="llm", options=PrefixTuningMethod, learning_rate=1e-2, summary="per-layer prefixes",
    apply=apply_prefix_tuning, saves="adapter", fast_frozen_weights=always,
    # transformers drops the prefix key/value cache under gradient checkpointing, so attention shapes break.
    gradient_checkpointing=False,
))
register(Method(
    name="p_tuning", family="llm", options=PTuningMethod, learning_rate=1e-3, summary="prompt encoder",
    apply=apply_p_tuning, saves="adapter", fast_frozen_weights=always,
))
