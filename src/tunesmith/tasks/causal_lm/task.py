"""The causal language-model task: token batches, token-mean cross-entropy over trained tokens, perplexity."""

from __future__ import annotations

import math

import torch
from torch import nn

from tunesmith.data.collate import PaddingCollator
from tunesmith.data.packing import PackingCollator, TokenBudgetBatchSampler
from tunesmith.data.tokenize import IGNORE_INDEX
from tunesmith.tasks.causal_lm.loss import causal_lm_loss, count_label_tokens
from tunesmith.train.batching import EpochBatchSampler
from tunesmith.train.task import BatchCounts, Task


class CausalLMLoss(nn.Module):
    """Batch -> summed cross-entropy over trained tokens / the caller's token count."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        # accelerate's FSDP wraps the classes named here, one shard unit per transformer block (works through PEFT).
        self._no_split_modules = getattr(model, "_no_split_modules", None)

    def forward(self, batch: dict, num_label_tokens: int) -> torch.Tensor:
        return causal_lm_loss(self.model, batch, num_label_tokens)


class CausalLMTask(Task):
    unit = "tokens"
    memory_advice = ("lower data.max_length, turn on training.gradient_checkpointing, train in bf16, or use a lighter "
                     "method (method.name: lora or qlora) or a smaller model")

    def __init__(self, model: nn.Module, train_set: list[dict], val_set: list[dict], pad_token_id: int):
        self.model, self.train_set, self.val_set, self.pad_token_id = model, train_set, val_set, pad_token_id

    def loss_module(self) -> nn.Module:
        return CausalLMLoss(self.model)

    def train_batches(self, cfg):
        return batch_plan(self.train_set, cfg, self.pad_token_id)

    def eval_collator(self):
        return PaddingCollator(self.pad_token_id)

    def counts(self, batch: dict) -> BatchCounts:
        return BatchCounts(count_label_tokens(batch["labels"]), real_tokens(batch))

    def blank(self, batch: dict) -> dict:
        batch["labels"].fill_(IGNORE_INDEX)
        return batch

    def validation_metrics(self, mean_loss: float) -> dict:
        return {"val_perplexity": perplexity(mean_loss)}


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else float("inf")


def real_tokens(batch: dict) -> int:
    """Input tokens that are not padding (packed batches have none)."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else batch["input_ids"].numel()


def batch_plan(train_set: list[dict], cfg, pad_token_id: int):
    """(batch sampler, collator) for training: padded batches of batch_size, or packed token budgets."""
    lengths = [len(example["input_ids"]) for example in train_set]
    if not cfg.packing:
        sampler = EpochBatchSampler(len(train_set), cfg.batch_size, cfg.seed,
                                    lengths=lengths if cfg.group_by_length else None)
        return sampler, PaddingCollator(pad_token_id)
    return TokenBudgetBatchSampler(lengths, _packing_budget(lengths, cfg), cfg.seed), PackingCollator(pad_token_id)


def largest_micro_batch_tokens(train_set: list[dict], cfg) -> int:
    """Token positions (padding included) of the largest micro-batch training can draw (under batch_size: auto, the
    first it tries)."""
    lengths = [len(example["input_ids"]) for example in train_set]
    if cfg.packing:
        return max(max(lengths), _packing_budget(lengths, cfg))
    return min(cfg.examples_per_batch, len(lengths)) * max(lengths)


def _packing_budget(lengths: list[int], cfg) -> int:
    # By default a packed micro-batch holds as many tokens as an average padded batch holds real tokens,
    # so an epoch has about as many optimizer steps as without packing and the same hyperparameters work.
    return cfg.batch_tokens or max(max(lengths), round(cfg.examples_per_batch * sum(lengths) / len(lengths)))
