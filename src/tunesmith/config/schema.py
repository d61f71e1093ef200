"""The typed run configuration: one YAML file maps to one `RunConfig`.

Every section forbids unknown keys, so a typo is an error (with a suggestion) instead of a silently
ignored setting. Methods are a tagged union on `method.name`, so each method accepts only its own knobs.

What `method:` and `data:` accept depends on the model family of `model:` (models/family.py, from its files
alone): `method: {name: lora}` is LLM LoRA for a language model and diffusion LoRA for a Stable Diffusion
pipeline, and `data:` is a text dataset or an image folder. Both unions pick their member by a tag made from the
family, which the `model` field (validated first) sets for the sections after it.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from tunesmith.config.diffusion import DiffusionDataConfig, ValidationConfig, broken_rule
from tunesmith.config.evaluation import EvalConfig
from tunesmith.config.pipeline import DistributedConfig, RefineConfig, StageConfig
from tunesmith.config.prepare import PrepareConfig
from tunesmith.config.section import Section
from tunesmith.config.sweep import SweepConfig
from tunesmith.config.training import TrainingConfig
from tunesmith.methods import registry
from tunesmith.methods.llm.lora import LoraMethod
from tunesmith.models.family import model_family

EMBEDDED_DEFAULT = "smollm2-135m-instruct"

# The family whose sections are being validated; set by RunConfig for its `data` and `method` fields.
_FAMILY: ContextVar[str] = ContextVar("model_family", default="llm")


class DataConfig(Section):
    train: str
    validation: str | None = None
    test: str | None = None
    format: Literal["auto", "chat", "alpaca", "prompt_completion", "text"] = "auto"
    max_length: int = Field(1024, ge=8)
    validation_split: float = Field(0.1, ge=0.0, lt=1.0)
    prepare: PrepareConfig | None = None


DATA_SECTIONS: dict[str, type[Section]] = {"llm": DataConfig, "diffusion": DiffusionDataConfig}


def method_sections() -> dict[str, type[BaseModel]]:
    """Every method's options class by its union tag ("llm:lora", "diffusion:lora", ...)."""
    return {registry.tag(m): m.options for m in registry.methods(None)}


def _method_tag(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return registry.tag(registry.of(value)) if type(value) in method_sections().values() else None
    name = value.get("name") if isinstance(value, dict) else None
    return f"{_FAMILY.get()}:{name}" if isinstance(name, str) else None


def _data_tag(value: Any) -> str:
    if isinstance(value, BaseModel):
        return next((family for family, cls in DATA_SECTIONS.items() if isinstance(value, cls)), _FAMILY.get())
    return _FAMILY.get()


def _tagged_union(members: dict[str, type], tag) -> Any:
    return Annotated[Union[tuple(Annotated[cls, Tag(name)] for name, cls in members.items())], Discriminator(tag)]


# The `method:` section: every registered method's options (methods/registry.py), picked by family and `name`.
MethodConfig = _tagged_union(method_sections(), _method_tag)
DataSection = _tagged_union(DATA_SECTIONS, _data_tag)


@contextmanager
def _family_of(info: ValidationInfo):
    token = _FAMILY.set(model_family(info.data.get("model", EMBEDDED_DEFAULT)))
    try:
        yield
    finally:
        _FAMILY.reset(token)


class RunConfig(Section):
    model: str = EMBEDDED_DEFAULT
    allow_pickle: bool = False
    trust_remote_code: bool = False
    data: DataSection
    method: MethodConfig = Field(default_factory=LoraMethod)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    validation: ValidationConfig | None = Field(None, description="diffusion runs: sample grids at fixed seeds")
    output_dir: str = "runs/run"
    init_adapter: str | None = Field(None, description="start from this PEFT adapter folder (trained further)")
    stages: list[StageConfig] | None = Field(None, min_length=1)
    refine: RefineConfig | None = None
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    sweep: SweepConfig | None = Field(None, description="hyperparameter search space for `tunesmith sweep`")
    model_init: Literal["pretrained", "scratch"] = Field(
        "pretrained", description="scratch: the model's architecture with random weights (the from-scratch baseline)"
    )

    @property
    def family(self) -> str:
        """The model family: "llm" or "diffusion" (what data, method and the run are)."""
        return registry.of(self.method).family

    @model_validator(mode="before")
    @classmethod
    def _family_default_method(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "method" not in raw and model_family(raw.get("model", EMBEDDED_DEFAULT)) != "llm":
            return {**raw, "method": {"name": "lora"}}  # the LLM LoraMethod default would be the other family's
        return raw

    @field_validator("data", "method", mode="wrap")
    @classmethod
    def _in_model_family(cls, value, handler, info: ValidationInfo):
        with _family_of(info):
            return handler(value)

    @model_validator(mode="after")
    def _one_family(self) -> "RunConfig":
        family = model_family(self.model)
        method = registry.of(self.method)
        if method.family != family:  # only a config built in Python can get here: dicts are tagged by family
            raise broken_rule(f"method.name: {registry.other_family(method.name, method.family, family, self.model)}")
        if family != "llm":
            used = [key for key in ("stages", "refine", "init_adapter") if getattr(self, key)]
            if self.model_init != "pretrained":
                used.append("model_init")
            if used:
                raise broken_rule(f"{used[0]}: is for language-model runs; a {registry.FAMILIES[family]} run is "
                                  "a single run from pretrained weights")
        elif self.validation is not None:
            raise broken_rule("validation: sample grids are for diffusion runs; a language model's held-out "
                              "examples are data.validation and its scores the eval: section")
        return self

    @model_validator(mode="after")
    def _scratch_trains_everything(self) -> "RunConfig":
        if self.model_init == "scratch" and self.method.name != "full":
            raise ValueError(f"model_init: scratch trains every weight; use method.name: full, not {self.method.name}")
        return self

    @model_validator(mode="after")
    def _checkpointing_allowed(self) -> "RunConfig":
        if self.training.gradient_checkpointing is True and not registry.of(self.method).gradient_checkpointing:
            raise ValueError(f"{self.method.name} cannot train with training.gradient_checkpointing: true; turn it off")
        return self

    @model_validator(mode="after")
    def _one_pipeline(self) -> "RunConfig":
        if self.stages and self.refine:
            raise ValueError("use either stages or refine, not both (a stage list can't also be refined)")
        return self

    @model_validator(mode="after")
    def _dreambooth_data(self) -> "RunConfig":
        dreambooth = getattr(self.method, "prior_preservation", False)
        if dreambooth and not self.data.instance_prompt:
            raise broken_rule(f"data.instance_prompt: {self.method.name} trains on one subject prompt with a rare "
                              "token, e.g. 'a photo of sks dog'; set it")
        if getattr(self.data, "class_prompt", None) is not None and not dreambooth:
            with_prior = [m.name for m in registry.methods(self.family) if m.options.prior_preservation]
            raise broken_rule(f"data.class_prompt: prior preservation is part of {' and '.join(with_prior)}, not "
                              f"{self.method.name}; use one of them or remove data.class_prompt")
        return self

    @model_validator(mode="after")
    def _method_defaults(self) -> "RunConfig":
        self.training.use_method_learning_rate(registry.of(self.method).learning_rate)
        return self
