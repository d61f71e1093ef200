"""Activation memory of a training step, measured, and whether gradient checkpointing is needed for it.

Activations depend on the architecture, the method, the precision and the attention path, so instead of a
formula the plan runs forward passes of a short probe batch and of its first half, adds up the tensors autograd
saves for backward (parameters excluded), and extrapolates the fixed and per-token parts to the largest
micro-batch. Gradient checkpointing costs speed (SmolLM2 LoRA on CPU: 394 instead of 589 tokens/s), so
`training.gradient_checkpointing: auto` turns it on only when weights + training state + activations would not
fit in the device's memory.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

from tunesmith.errors import TunesmithError
from tunesmith.methods.memory import HEADROOM
from tunesmith.tasks.causal_lm.cpu_attention import cpu_attention
from tunesmith.tasks.causal_lm.loss import causal_lm_loss
from tunesmith.train.saved_activations import saved_bytes as measure_saved_bytes

PROBE_TOKENS = 256


@dataclass
class CheckpointingChoice:
    enabled: bool
    activation_bytes: int  # for the largest micro-batch without checkpointing
    reason: str


def saved_bytes(model, batch: dict, autocast=nullcontext) -> int:
    """Bytes autograd keeps for backward after one training forward of `batch` (parameters not counted)."""
    device = next(model.parameters()).device
    batch = {key: value.to(device) for key, value in batch.items()}
    # Training runs under cpu_attention (it keeps attention probabilities on CPU), so the probe does too.
    with cpu_attention(model, device):
        saved = measure_saved_bytes(model, lambda: causal_lm_loss(model, batch), autocast)
    if saved is None:
        raise TunesmithError(f"measuring activations: one training forward of {batch['input_ids'].shape[1]} tokens "
                             f"ran out of memory on {device}; this model does not train on this device: try qlora "
                             "or a smaller model")
    return saved


def estimate_saved_bytes(model, probe: dict, tokens: int, autocast=nullcontext) -> float:
    """Saved bytes for a batch of `tokens`, from the probe and its first half: a fixed part (e.g. the lm_head
    gradient the fused loss keeps when the head trains) plus a per-token part."""
    length = probe["input_ids"].shape[1]
    half_probe = {key: value[:, : length // 2] for key, value in probe.items()}
    # One forward first, not counted: layers that learn as they run (LoRA layers finding which of them share an
    # input, methods/lora_folded_scales.py) keep less from their second forward on, as in training.
    saved_bytes(model, half_probe if length >= 2 else probe, autocast)
    full = saved_bytes(model, probe, autocast)
    if length < 2:
        return full * tokens / max(length, 1)
    half = saved_bytes(model, half_probe, autocast)
    per_token = max(full - half, 0) / (length - length // 2)
    return max(full - per_token * length, 0) + per_token * tokens


def choose_gradient_checkpointing(setting, model, probe: dict, micro_batch_tokens: int, fixed_bytes: int,
                                  available_bytes: int, allowed: bool, autocast=nullcontext) -> CheckpointingChoice:
    """`setting` is training.gradient_checkpointing (True, False or "auto"); `fixed_bytes` the weights, gradients
    and optimizer state; `allowed` False where the method cannot checkpoint (prefix tuning)."""
    activations = round(estimate_saved_bytes(model, probe, micro_batch_tokens, autocast))
    if setting != "auto":
        return CheckpointingChoice(bool(setting), activations, "set in the config")
    needed = fixed_bytes + activations
    if needed <= HEADROOM * available_bytes:
        return CheckpointingChoice(False, activations, "auto: fits without it")
    if not allowed:
        return CheckpointingChoice(False, activations, "auto: needed, but this method cannot checkpoint")
    return CheckpointingChoice(True, activations, "auto: activations would not fit")


def probe_batch(train_set: list[dict], collate) -> dict:
    """The longest training example, cut to PROBE_TOKENS, as a one-row batch."""
    longest = max(train_set, key=lambda example: len(example["input_ids"]))
    return collate([{key: value[:PROBE_TOKENS] for key, value in longest.items()
                     if key in ("input_ids", "labels")}])
