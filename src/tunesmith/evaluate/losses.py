"""Per-example token loss on reference answers and on plain text: the statistics perplexity is computed from.

Each example is scored on its final answer only (a few-shot prompt's example answers are context, not scored), so
the zero-shot, few-shot and tuned rows score exactly the same tokens. A sequence longer than the model's context
loses tokens from the left, keeping the answer. Examples go through the training loss one at a time: it is the same
loss for every model family the loop trains (prompt learning included), and one forward per example costs little
next to generating its answer.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch

from tunesmith.data.formats import Example
from tunesmith.data.tokenize import IGNORE_INDEX, encode_example
from tunesmith.tasks.causal_lm.loss import count_label_tokens
from tunesmith.tasks.causal_lm.task import CausalLMLoss
from tunesmith.train.evaluation import summed_loss

NO_TRUNCATION = 2**31 - 1


def model_context(model, default: int = 2048) -> int:
    return int(getattr(model.config, "max_position_embeddings", None) or default)


def answer_encoding(example: Example, tokenizer, context: int) -> dict:
    """Input ids with labels on the final answer only, cut from the left to `context` tokens."""
    encoded = encode_example(example, tokenizer, NO_TRUNCATION, "completions")
    labels = encoded["labels"]
    end = max(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    start = end
    while start > 0 and labels[start - 1] != IGNORE_INDEX:
        start -= 1
    labels = [IGNORE_INDEX] * start + labels[start:]
    cut = max(0, len(labels) - context)
    return {"input_ids": encoded["input_ids"][cut:], "labels": labels[cut:]}


def text_encoding(text: str, tokenizer, context: int) -> dict:
    """A passage of plain text with every token scored, cut from the right to `context` tokens."""
    return encode_example(Example(text=text), tokenizer, context, "all")


def token_losses(model, encoded: list[dict], autocast=nullcontext) -> np.ndarray:
    """[n, 2]: each example's summed token cross-entropy and its number of scored tokens."""
    device = next(model.parameters()).device
    loss = CausalLMLoss(model)
    was_training = model.training
    model.eval()
    rows = []
    try:
        for item in encoded:
            ids = torch.tensor([item["input_ids"]])
            batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([item["labels"]])}
            total, tokens = summed_loss(loss, [(batch, count_label_tokens(batch["labels"]))], device, autocast)
            rows.append([float(total), tokens])
    finally:
        model.train(was_training)
    return np.array(rows, dtype=np.float64).reshape(-1, 2)
