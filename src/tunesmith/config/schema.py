"""The typed run configuration: one YAML file maps to one `RunConfig`.

Every section forbids unknown keys, so a typo is an error (with a suggestion) instead of a silently
ignored setting. Methods are a tagged union on `method.name`, so each method accepts only its own knobs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tunesmith.config.eval_metrics import ComparisonSettings, TaskMetrics
from tunesmith.config.pipeline import DistributedConfig, RefineConfig, StageConfig
from tunesmith.config.prepare import PrepareConfig
from tunesmith.config.section import Section
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


class TrainingConfig(Section):
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="overrides epochs when set")
    batch_size: int = Field(8, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    learning_rate: float | None = Field(None, gt=0, description="default depends on the method")
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    max_grad_norm: float | None = Field(1.0, gt=0)
    max_bad_steps: int = Field(3, ge=1, description="stop after this many steps with a non-finite loss or gradient")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    gradient_checkpointing: bool | Literal["auto"] = Field(
        "auto", description="auto: on only when the measured activations would not fit in the device's memory"
    )
    seed: int = 0
    eval_every: int = Field(50, ge=1)
    save_every: int = Field(100, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(10, ge=1)
    report_to: Literal["none", "tensorboard"] = Field("none", description="also log to TensorBoard (run_dir/tensorboard)")
    train_on: Literal["completions", "all"] = "completions"
    group_by_length: bool = Field(True, description="batch examples of similar length together (less padding)")
    packing: bool = Field(False, description="padding-free packing of examples into one row per micro-batch")
    batch_tokens: int | None = Field(
        None, ge=8, description="token budget per packed micro-batch; default batch_size x mean example length"
    )


class EvalConfig(Section):
    metrics: list[Literal["perplexity", "bleu", "chrf", "rouge_1", "rouge_2", "rouge_l", "exact_match"]] = [
        "perplexity",
        "bleu",
        "rouge_l",
        "exact_match",
    ]
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(8, ge=1)
    max_examples: int | None = Field(None, ge=1, description="score only the first N test examples")
    compare_base: bool = True
    task: TaskMetrics = Field(default_factory=TaskMetrics, description="label, JSON and format-adherence metrics")
    comparison: ComparisonSettings = Field(default_factory=ComparisonSettings,
                                           description="few-shot k, bootstrap resamples, forgetting threshold")


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
