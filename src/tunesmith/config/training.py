"""The `training:` section: how long, how fast and how carefully the one loop trains (train/loop.py reads it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunesmith.config.section import Section


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
