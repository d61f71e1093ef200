"""The `training:` section: how long, how fast and how carefully the one loop trains (train/loop.py reads it)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PrivateAttr

from tunesmith.config.section import Section, one_error

AUTO = "auto"
# Under batch_size: auto the sampler draws batches of this many examples (the default batch_size, so switching a
# config to auto changes nothing until memory runs out); the loop cuts them into smaller micro-batches on OOM.
AUTO_BATCH_SIZE = 8


BatchSize = Annotated[
    Annotated[int, Field(ge=1)] | Literal["auto"],
    one_error("Input should be a valid integer (1 or more) or 'auto' (halved on out-of-memory errors)"),
]
LearningRate = Annotated[
    Annotated[float, Field(gt=0)] | Literal["auto"] | None,
    one_error("Input should be a number above 0, or 'auto' (a short learning-rate range test picks it)"),
]


class TrainingConfig(Section):
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="overrides epochs when set")
    batch_size: BatchSize = Field(
        8, description=f"examples per micro-batch; auto: {AUTO_BATCH_SIZE}, cut into smaller micro-batches (with "
                       "more accumulation, so the same step) when a step runs out of memory"
    )
    gradient_accumulation: int = Field(1, ge=1)
    learning_rate: LearningRate = Field(
        None, description="default depends on the method; auto: chosen by a learning-rate range test before training"
    )
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    optimizer: Literal["adamw", "adamw_8bit"] = Field(
        "adamw", description="adamw (fused where torch has a kernel) | adamw_8bit (bitsandbytes; ~4x less "
                             "optimizer state)"
    )
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
    # The method's default rate (set by RunConfig): learning_rate: auto centres its range test on it and falls back
    # to it when the test cannot decide. Not a key: it follows from method.name.
    _method_learning_rate: float | None = PrivateAttr(None)

    @property
    def examples_per_batch(self) -> int:
        """Examples per batch the sampler draws (batch_size, or AUTO_BATCH_SIZE under auto)."""
        return AUTO_BATCH_SIZE if self.batch_size == AUTO else self.batch_size

    @property
    def method_learning_rate(self) -> float | None:
        return self._method_learning_rate

    def use_method_learning_rate(self, rate: float) -> None:
        """The method's default: learning_rate when none is set; under auto the range test's centre and fallback."""
        self._method_learning_rate = rate
        if self.learning_rate is None:
            self.learning_rate = rate
