"""Multi-stage sections of a config: `stages:` (transfer learning) and `refine:` (iterative refinement)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageConfig(_Section):
    """One stage: overrides of the top-level sections, starting from the previous stage's result."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    data: dict[str, Any] | None = None
    method: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None
    # How the previous stage's result becomes this stage's start:
    #   adapter: keep training the previous adapter; merge: fold it into the base, new adapter on top;
    #   weights: start from the previous stage's full weights (full/freeze); auto: adapter or weights.
    carry: Literal["auto", "adapter", "merge", "weights"] = "auto"


class RefineConfig(_Section):
    rounds: int = Field(3, ge=1)
    lr_decay: float = Field(0.5, gt=0, le=1)
    stop_when_no_gain: bool = True
    metric: str = Field("val_loss", description="val_loss or a test metric: perplexity, bleu, rouge_l, ...")
    min_gain: float = Field(0.0, ge=0, description="a round must improve the metric by more than this")


class DistributedConfig(_Section):
    """Data-parallel strategy when launched on several processes (--nproc, torchrun, accelerate launch)."""

    strategy: Literal["ddp", "fsdp", "deepspeed"] = "ddp"
    fsdp_sharding: Literal["full_shard", "shard_grad_op", "hybrid_shard"] = "full_shard"
    fsdp_cpu_offload: bool = False
    zero_stage: Literal[1, 2, 3] = 2
