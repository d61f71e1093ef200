"""Activation memory of a diffusion training step, measured, and whether gradient checkpointing is needed for it.

As for language models (tasks/causal_lm/activation_memory.py), the plan runs one training forward of a probe batch
and adds up the tensors autograd saves for backward (parameters excluded), on the run's device and precision, so
the attention path, LoRA and trained text encoders are all in the number. The probe is one training example at
the largest bucket, with its class image under prior preservation, exactly as the collator builds it. Every tensor
a UNet step saves has the batch dimension, so a micro-batch of n examples saves n times as much.
`training.gradient_checkpointing: auto` turns checkpointing on only when weights + training state + activations
would not fit; methods/memory.py refuses a run that does not fit even then.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from tunesmith.config.training import AUTO
from tunesmith.methods.memory import HEADROOM, Activations
from tunesmith.train.saved_activations import saved_bytes as measure_saved_bytes


def saved_bytes(loss_module, batch: dict, autocast=nullcontext) -> int | None:
    """Bytes autograd keeps for backward after one training forward of `batch`; None when it runs out of memory."""
    device = next(loss_module.model.parameters()).device
    batch = {key: value.to(device) if torch.is_tensor(value) else value for key, value in batch.items()}
    return measure_saved_bytes(loss_module.model, lambda: loss_module(batch, 1), autocast)


def probe_batch(task, cfg) -> dict:
    """One training example at the largest bucket (and its class image), collated as training collates it."""
    dataset = task.train_set
    largest = max(range(len(dataset)), key=lambda i: dataset.buckets[i][0] * dataset.buckets[i][1])
    _, collator = task.train_batches(cfg.model_copy(update={"batch_size": cfg.examples_per_batch}))
    return collator([dataset.item(largest, epoch=0)])


def plan_activations(setting, task, cfg, fixed_bytes: int, available_bytes: int, enable_checkpointing,
                     autocast=nullcontext) -> Activations:
    """`setting`: training.gradient_checkpointing (True, False or "auto"); `cfg`: the training section;
    `fixed_bytes`: weights + gradients + optimizer state; `enable_checkpointing()` turns it on for the pipeline."""
    examples = min(cfg.examples_per_batch, len(task.train_set))
    smallest = 1 if cfg.batch_size == AUTO else examples  # batch_size: auto falls back to smaller micro-batches
    probe = probe_batch(task, cfg)
    resolution = task.train_set.settings.resolution

    def measured(checkpointing: bool, reason: str) -> Activations:
        return Activations(saved_bytes(task.loss_module(), probe, autocast), examples, smallest, checkpointing,
                           resolution, reason)

    if setting is True:
        enable_checkpointing()
        return measured(True, "set in the config")
    if setting is False:
        return measured(False, "set in the config")
    plain = measured(False, "auto: fits without it")
    if plain.per_example is not None and fixed_bytes + plain.total <= HEADROOM * available_bytes:
        return plain
    enable_checkpointing()
    return measured(True, "auto: activations would not fit without it")
