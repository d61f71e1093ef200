"""The `method:` section: one pydantic model per `method.name`, each accepting only its own knobs.

Cross-field rules are field validators on the later field, so an error names the key the user must change
(e.g. `method.init_text`) rather than the whole section.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError


class MethodSection(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _invalid(message: str) -> PydanticCustomError:
    # A custom error type keeps pydantic's "Value error, " prefix out of the message users read.
    return PydanticCustomError("method_option", message)


class FullMethod(MethodSection):
    name: Literal["full"]


class FreezeMethod(MethodSection):
    name: Literal["freeze"]
    layers: int = Field(2, ge=1, description="train only the last N transformer blocks")
    train_head: bool = False


# init -> LoraConfig.init_lora_weights
LORA_INIT = {"default": True, "pissa": "pissa", "olora": "olora", "gaussian": "gaussian"}
# PiSSA and OLoRA move part of each base weight into the adapter (the base becomes a residual).
MUTATING_INITS = ("pissa", "olora")


class LoraOptions(MethodSection):
    r: int = Field(16, ge=1)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: Union[Literal["all-linear"], list[str]] = "all-linear"
    rslora: bool = Field(False, description="scale by alpha/sqrt(r) instead of alpha/r")
    dora: bool = Field(False, description="weight-decomposed LoRA: also train each weight's magnitude")
    init: Literal["default", "pissa", "olora", "gaussian"] = "default"
    modules_to_save: list[str] | None = Field(None, description="modules trained in full and saved with the adapter")

    @field_validator("init")
    @classmethod
    def _init_fits_dora(cls, init: str, info: ValidationInfo) -> str:
        # The saved adapter is converted back to plain LoRA on the original base; that conversion carries
        # only the low-rank matrices, not DoRA's magnitudes.
        if init in MUTATING_INITS and info.data.get("dora"):
            raise _invalid(f"'{init}' cannot be combined with dora: true; use init: default or gaussian with DoRA")
        return init


class LoraMethod(LoraOptions):
    name: Literal["lora"] = "lora"


class QLoraMethod(LoraOptions):
    name: Literal["qlora"]
    bits: Literal[4, 8] = 4
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = Field(True, description="also quantise the quantisation constants (4-bit)")
    compute_dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="auto: the training precision")

    @field_validator("init")
    @classmethod
    def _init_fits_quantized_base(cls, init: str, info: ValidationInfo) -> str:
        if init in MUTATING_INITS:
            raise _invalid(
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
            raise _invalid("applies only to 4-bit quantisation; remove it or set bits: 4")
        return value


class IA3Method(MethodSection):
    name: Literal["ia3"]
    target_modules: list[str] | None = Field(None, description="default: PEFT's choice for the architecture")
    feedforward_modules: list[str] | None = Field(None, validate_default=True)

    @field_validator("feedforward_modules")
    @classmethod
    def _feedforward_within_targets(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        targets = info.data.get("target_modules")
        if targets is None:
            if value is not None:
                raise _invalid("needs method.target_modules too (feed-forward modules are a subset of the targets)")
            return value
        if value is None:
            raise _invalid(
                "required when target_modules is set: list which targets are feed-forward layers "
                "(e.g. [down_proj]), or [] for none"
            )
        if outside := [m for m in value if m not in targets]:
            raise _invalid(f"{', '.join(outside)} not in method.target_modules; feed-forward modules must be targets")
        return value


class PromptTuningMethod(MethodSection):
    name: Literal["prompt_tuning"]
    num_virtual_tokens: int = Field(20, ge=1)
    init: Literal["random", "text"] = "random"
    init_text: str | None = Field(None, validate_default=True, description="the text the virtual tokens start as")

    @field_validator("init_text")
    @classmethod
    def _text_matches_init(cls, text: str | None, info: ValidationInfo) -> str | None:
        init = info.data.get("init")
        if init == "text" and not (text and text.strip()):
            raise _invalid("required when init is 'text': the text whose token embeddings start the virtual tokens")
        if init == "random" and text is not None:
            raise _invalid("used only with init: text; set method.init: text or remove init_text")
        return text


class PrefixTuningMethod(MethodSection):
    name: Literal["prefix_tuning"]
    num_virtual_tokens: int = Field(20, ge=1)
    prefix_projection: bool = Field(False, description="learn the prefix through an MLP (more parameters)")


class PTuningMethod(MethodSection):
    name: Literal["p_tuning"]
    num_virtual_tokens: int = Field(20, ge=1)
    encoder_hidden_size: int = Field(128, ge=1)


PEFT_METHODS = (LoraMethod, QLoraMethod, IA3Method, PromptTuningMethod, PrefixTuningMethod, PTuningMethod)
METHOD_MODELS: dict[str, type[MethodSection]] = {
    "full": FullMethod,
    "freeze": FreezeMethod,
    "lora": LoraMethod,
    "qlora": QLoraMethod,
    "ia3": IA3Method,
    "prompt_tuning": PromptTuningMethod,
    "prefix_tuning": PrefixTuningMethod,
    "p_tuning": PTuningMethod,
}
MethodConfig = Annotated[
    Union[
        FullMethod, FreezeMethod, LoraMethod, QLoraMethod, IA3Method, PromptTuningMethod, PrefixTuningMethod,
        PTuningMethod,
    ],
    Field(discriminator="name"),
]

# Learning rates that work out of the box: adapters tolerate (and need) a much higher rate than full weights.
DEFAULT_LEARNING_RATE = {
    "full": 2e-5,
    "freeze": 5e-5,
    "lora": 2e-4,
    "qlora": 2e-4,  # the QLoRA paper's rate for 7B-33B models
    "ia3": 3e-3,  # the (IA)3 / T-Few paper
    # PEFT's task guides: prompt tuning 3e-2 (causal LM), prefix tuning 1e-2, P-tuning 1e-3 (its MLP
    # reparameterisation is a small network and diverges at prompt-tuning rates).
    "prompt_tuning": 3e-2,
    "prefix_tuning": 1e-2,
    "p_tuning": 1e-3,
}
