"""Completion-token perplexity on a chat test set: tunesmith's own scoring, applied the same way to every tool's model."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tunesmith.data.collate import PaddingCollator
from tunesmith.data.formats import load_examples
from tunesmith.data.tokenize import IGNORE_INDEX, encode_dataset
from tunesmith.evaluate.compare import mean_token_loss

NO_TRUNCATION = 2**31 - 1


def read_chats(path: str | Path) -> list[list[dict]]:
    """The `messages` of every line of a chat JSONL file."""
    return [json.loads(line)["messages"] for line in Path(path).read_text().splitlines() if line.strip()]


def completion_perplexity(model, tokenizer, test_path: str | Path, batch_size: int = 8) -> dict:
    """Token-mean cross-entropy, and its exp, over the assistant replies of each test conversation (what completion-
    only training learns), in float32 with dropout off, through the same function tunesmith scores runs with. Only
    target positions go through the lm_head, so no [batch, length, vocab] logits are built."""
    examples, _ = load_examples(str(test_path), "chat")
    encoded, _ = encode_dataset(examples, tokenizer, NO_TRUNCATION, "completions")
    loss = mean_token_loss(model, encoded, PaddingCollator(tokenizer.pad_token_id), batch_size)
    tokens = sum(sum(label != IGNORE_INDEX for label in e["labels"][1:]) for e in encoded)
    return {"test_loss": loss, "test_perplexity": math.exp(loss), "test_tokens": tokens, "test_examples": len(encoded)}
