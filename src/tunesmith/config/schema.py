"""The typed run configuration: one YAML file maps to one `RunConfig`.

Every section forbids unknown keys, so a typo is an error (with a suggestion) instead of a silently
ignored setting. Methods are a tagged union on `method.name`, so each method accepts only its own knobs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tunesmith.config.evaluation import EvalConfig
from tunesmith.config.pipeline import DistributedConfig, RefineConfig, StageConfig
from tunesmith.config.prepare import PrepareConfig
from tunesmith.config.section import Section
from tunesmith.config.sweep import SweepConfig
from tunesmith.config.training import TrainingConfig
from tunesmith.methods import registry
from tunesmith.methods.llm.lora import LoraMethod

# The `method:` section: every registered method's options, tagged by `name` (methods/registry.py).
MethodConfig = registry.options_union()

EMBEDDED_DEFAULT = "smollm2-135m-instruct"


class DataConfig(Section):
    train: str
    validation: str | None = None
    test: str | None = None
    format: Literal["auto", "chat", "alpaca", "prompt_completion", "text"] = "auto"
    max_length: int = Field(1024, ge=8)
    validation_split: float = Field(0.1, ge=0.0, lt=1.0)
    prepare: PrepareConfig | None = None


class RunConfig(Section):
    model: str = EMBEDDED_DEFAULT
    allow_pickle: bool = False
    trust_remote_code: bool = False
    data: DataConfig
    method: MethodConfig = Field(default_factory=LoraMethod)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output_dir: str = "runs/run"
    init_adapter: str | None = Field(None, description="start from this PEFT adapter folder (trained further)")
    stages: list[StageConfig] | None = Field(None, min_length=1)
    refine: RefineConfig | None = None
    distributed: DistributedConfig = Field(default_factory=DistributedConfig)
    sweep: SweepConfig | None = Field(None, description="hyperparameter search space for `tunesmith sweep`")
    model_init: Literal["pretrained", "scratch"] = Field(
        "pretrained", description="scratch: the model's architecture with random weights (the from-scratch baseline)"
    )

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
    def _method_defaults(self) -> "RunConfig":
        if self.training.learning_rate is None:
            self.training.learning_rate = registry.of(self.method).learning_rate
        return self
