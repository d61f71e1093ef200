"""`ia3`: learned scaling vectors on chosen activations (PEFT's IA3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from tunesmith.config.section import Section, invalid
from tunesmith.methods.llm.peft_wrap import copy, wrap
from tunesmith.methods.registry import Method, always, register


class IA3Method(Section):
    name: Literal["ia3"]
    target_modules: list[str] | None = Field(None, description="default: PEFT's choice for the architecture")
    feedforward_modules: list[str] | None = Field(None, validate_default=True)

    @field_validator("feedforward_modules")
    @classmethod
    def _feedforward_within_targets(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        targets = info.data.get("target_modules")
        if targets is None:
            if value is not None:
                raise invalid("needs method.target_modules too (feed-forward modules are a subset of the targets)")
            return value
        if value is None:
            raise invalid(
                "required when target_modules is set: list which targets are feed-forward layers "
                "(e.g. [down_proj]), or [] for none"
            )
        if outside := [m for m in value if m not in targets]:
            raise invalid(f"{', '.join(outside)} not in method.target_modules; feed-forward modules must be targets")
        return value


def apply(model, options: IA3Method, tokenizer_path=None):
    from peft import IA3Config

    # None lets PEFT pick the modules it knows for the architecture (Llama: k_proj, v_proj, down_proj).
    return wrap(model, IA3Config(task_type="CAUSAL_LM", target_modules=copy(options.target_modules),
                                 feedforward_modules=copy(options.feedforward_modules)))


METHOD = register(Method(
    name="ia3", family="llm", options=IA3Method, learning_rate=3e-3,  # the (IA)3 / T-Few paper
    summary="IA3 scaling vectors", apply=apply, saves="adapter", fast_frozen_weights=always,
))
