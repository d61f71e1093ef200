"""Causal LM loss without full-vocabulary logits for the whole batch.

The backbone gives hidden states; only positions that are trained (shifted label != -100) go through the
lm_head, in chunks, so at most one [chunk, vocab] float32 logits tensor is alive at a time: a plain Linear head
takes the fused linear_cross_entropy, any other head is checkpointed chunk by chunk. The result is SUM(token CE) / num_label_tokens: the caller
passes the trained-token total of an accumulation window so the accumulated gradient is the exact
token mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from tunesmith.data.tokenize import IGNORE_INDEX
from tunesmith.errors import ConfigError
from tunesmith.tasks.causal_lm.linear_cross_entropy import linear_cross_entropy


# Config fields of architectures whose forward changes the logits after the lm_head (soft-capping, scaling,
# biases, trimming); the chunked path would skip that, so those models take the plain path.
_LOGIT_POSTPROCESSING_FIELDS = (
    "final_logit_softcapping",
    "softcap",
    "logit_scale",
    "logits_scaling",
    "output_multiplier",
    "unpadded_vocab_size",
)


def count_label_tokens(labels: torch.Tensor) -> int:
    """Number of positions trained after the shift (the first position is never a target)."""
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


def causal_lm_loss(
    model, batch: dict, num_label_tokens: int | None = None, chunk_size: int = 1024
) -> torch.Tensor:
    parts = _backbone_and_head(model)
    if parts is None:
        return plain_causal_lm_loss(model, batch, num_label_tokens)
    backbone, head = parts

    hidden = backbone(**_model_inputs(batch), use_cache=False).last_hidden_state
    targets, selected = _trained_targets(batch["labels"])
    hidden = hidden[:, :-1][selected]
    targets = targets[selected]

    if type(head) is torch.nn.Linear and head.bias is None:
        total = linear_cross_entropy(hidden, head.weight, targets)
    else:
        total = _checkpointed_cross_entropy(head, hidden, targets, chunk_size)
    return total / _denominator(batch["labels"], num_label_tokens)


def plain_causal_lm_loss(model, batch: dict, num_label_tokens: int | None = None) -> torch.Tensor:
    """The same loss through model(...).logits, for models whose logits cannot be split from the backbone."""
    if "position_ids" in batch and _is_prompt_learning(model):
        # PEFT drops or offsets position_ids and adds a virtual-token cache, so packed examples would attend
        # to each other.
        raise ConfigError("sample packing cannot be combined with prompt, prefix or P-tuning; turn packing off")
    labels = batch["labels"]
    logits = model(**_model_inputs(batch), use_cache=False).logits
    # Prompt tuning prepends virtual tokens; the real positions are the last ones.
    logits = logits[:, -labels.shape[1] :]
    targets, selected = _trained_targets(labels)
    loss = F.cross_entropy(logits[:, :-1][selected].float(), targets[selected], reduction="sum")
    return loss / _denominator(labels, num_label_tokens)


def _checkpointed_cross_entropy(head, hidden: torch.Tensor, targets: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Any head (LoRA-wrapped, biased): chunks under activation checkpointing, so backward recomputes each chunk's
    logits instead of keeping them."""
    # Multiplying by zero keeps the graph connected when nothing is trained, so backward still works.
    total = hidden.sum() * 0.0
    for start in range(0, targets.numel(), chunk_size):
        # Non-reentrant checkpoint keeps only the chunk's inputs. RNG state is preserved because a LoRA-wrapped
        # lm_head may apply dropout.
        total = total + checkpoint(
            _summed_cross_entropy,
            head,
            hidden[start : start + chunk_size],
            targets[start : start + chunk_size],
            use_reentrant=False,
        )
    return total


def _summed_cross_entropy(head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), targets, reduction="sum")


def _model_inputs(batch: dict) -> dict:
    return {key: batch[key] for key in ("input_ids", "attention_mask", "position_ids") if key in batch}


def _trained_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shifted labels and the mask of positions they train: position i predicts labels[i + 1]."""
    targets = labels[:, 1:]
    return targets, targets != IGNORE_INDEX


def _denominator(labels: torch.Tensor, num_label_tokens: int | None) -> int:
    count = count_label_tokens(labels) if num_label_tokens is None else num_label_tokens
    return max(count, 1)


def _is_prompt_learning(model) -> bool:
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


def _backbone_and_head(model) -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """The decoder and lm_head of an HF causal LM (unwrapping PEFT), or None where the split is not exact.

    LoRA and similar adapters are injected into the base model's modules, so calling them directly keeps
    the adapters active. Prompt-learning wrappers add virtual tokens in their own forward, and wrappers such as
    DDP synchronise gradients only through theirs (and expose no get_decoder): both take the plain path.
    """
    if _is_prompt_learning(model):
        return None
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not (hasattr(base, "get_decoder") and hasattr(base, "get_output_embeddings")):
        return None
    config = getattr(base, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return None
    configs = (config, config.get_text_config())
    if any(getattr(c, field, None) is not None for c in configs for field in _LOGIT_POSTPROCESSING_FIELDS):
        return None
    backbone, head = base.get_decoder(), base.get_output_embeddings()
    if backbone is base or head is None:
        return None
    return backbone, head
