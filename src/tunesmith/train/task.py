"""What the loop trains: a *task* batches its examples and turns a batch into a loss.

The loop (train/loop.py) owns accumulation, clipping, scheduling, mixed precision, evaluation, checkpointing,
resume, stop signals and events, for every model family. A task owns everything that depends on what the examples
are: how they become batches, what a batch holds (tokens, images), the loss, and what validation reports. The
loss is the forward of an nn.Module (`loss_module`), so DDP, FSDP and DeepSpeed wrap the whole computation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from torch import nn


@dataclass(frozen=True)
class BatchCounts:
    loss_units: int  # what the loss is averaged over: trained tokens, images
    throughput: int  # what throughput counts: real input tokens, images


class Task(ABC):
    unit: str = "examples"  # what throughput counts, in events and the progress line ("tokens/s", "images/s")
    # What needs less memory, in this task's config keys: the advice when one example per micro-batch does not fit.
    memory_advice: str = ("turn on training.gradient_checkpointing, train in bf16, or use a lighter method or a "
                          "smaller model")
    train_set: Sequence
    val_set: Sequence
    model: nn.Module  # what trains; checkpoints hold its trainable tensors by name

    @abstractmethod
    def loss_module(self) -> nn.Module:
        """An nn.Module holding `self.model` as `.model`, whose forward(batch, normaliser) is the loss summed over the
        batch's loss units and divided by `normaliser` (the loss units of the whole accumulation window, all ranks),
        so accumulation and data parallelism give the exact mean of one big batch."""

    @abstractmethod
    def train_batches(self, cfg) -> tuple:
        """(batch sampler, collator) for training. The sampler yields lists of indices into train_set, has
        set_epoch(epoch) and len(), and gives the same batches for the same (seed, epoch): resume relies on it.

        `cfg.batch_size` is always an int here: the examples per drawn batch. Under `batch_size: auto` the loop cuts
        a drawn batch into consecutive pieces after an out-of-memory error, so the collator must accept any subset
        of a batch (draws that depend on the whole batch change when it is cut)."""

    @abstractmethod
    def eval_collator(self):
        """Collator for validation batches (in order, batch_size examples each)."""

    @abstractmethod
    def counts(self, batch) -> BatchCounts:
        """Counted on the CPU batch, so the step never waits on the device."""

    @abstractmethod
    def blank(self, batch):
        """A copy of `batch` that adds nothing to the loss or the gradients: ranks left without examples by a small
        global batch still run forward and backward, because every rank must join each gradient reduction."""

    def validation_metrics(self, mean_loss: float) -> dict:
        """Metrics derived from the mean validation loss, logged next to it."""
        return {}

    def param_groups(self, weight_decay: float, learning_rate: float) -> list[dict]:
        """Optimizer groups; a group may carry its own "lr" (DreamBooth trains UNet and text encoder at two rates).
        Default: decay matrices only (decaying biases and norm gains hurts and is not what users expect)."""
        decay, no_decay = [], []
        for p in self.model.parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        # No empty groups: DeepSpeed drops them from the optimizer, leaving the scheduler with one lr too many.
        return [group for group in groups if group["params"]]


class Companion(Protocol):
    """What trains beside the weights and must survive a resume with them (full DreamBooth's weight average): the
    loop steps it after every applied optimizer step and writes its state into each checkpoint, under the
    checkpoint's manifest, so a resumed run continues it exactly."""

    def after_step(self, step: int) -> None: ...

    def state_dict(self) -> dict:
        """A tree of tensors and JSON values."""

    def load_state_dict(self, state: dict, folder: Path) -> None:
        """`state` as state_dict gave it, read from the checkpoint `folder` (named in errors)."""
