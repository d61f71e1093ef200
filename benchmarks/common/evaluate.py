"""Completion-token perplexity on a chat test set: one function, applied the same way to every tool's model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def read_chats(path: str | Path) -> list[list[dict]]:
    """The `messages` of every line of a chat JSONL file."""
    return [json.loads(line)["messages"] for line in Path(path).read_text().splitlines() if line.strip()]


def completion_perplexity(model, tokenizer, test_path: str | Path, batch_size: int = 8) -> dict:
    """Token-mean cross-entropy, and its exp, over the final assistant reply of each test conversation.

    The prompt is the conversation before the reply rendered with the generation prompt; the targets are the
    tokens the full render adds after it (the reply and its end-of-turn tokens), which is what completion-only
    training learns. Runs in float32 with dropout off. Only target positions go through the lm_head, so no
    [batch, length, vocab] logits are built and scoring never sets the process's peak memory.
    """
    encoded = [_encode(tokenizer, messages) for messages in read_chats(test_path)]
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll, tokens = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            input_ids, attention_mask, labels = _pad(encoded[start : start + batch_size], tokenizer.pad_token_id)
            hidden = decoder(
                input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), use_cache=False
            ).last_hidden_state
            targets = labels[:, 1:].to(device)  # position i predicts token i + 1
            selected = targets != IGNORE_INDEX
            logits = head(hidden[:, :-1][selected]).float()
            nll += F.cross_entropy(logits, targets[selected], reduction="sum").item()
            tokens += int(selected.sum())
    model.train(was_training)
    loss = nll / tokens
    return {"test_loss": loss, "test_perplexity": math.exp(loss), "test_tokens": tokens, "test_examples": len(encoded)}


def _encode(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(input ids, labels) with labels only on the final assistant reply."""
    if messages[-1]["role"] != "assistant":
        raise ValueError("every test conversation must end with the assistant's reply")
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently inside the full conversation")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    return prompt_ids + completion_ids, [IGNORE_INDEX] * len(prompt_ids) + completion_ids


def _pad(batch: list[tuple[list[int], list[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    length = max(len(ids) for ids, _ in batch)
    input_ids = torch.tensor([ids + [pad_id] * (length - len(ids)) for ids, _ in batch])
    attention_mask = torch.tensor([[1] * len(ids) + [0] * (length - len(ids)) for ids, _ in batch])
    labels = torch.tensor([labels + [IGNORE_INDEX] * (length - len(labels)) for _, labels in batch])
    return input_ids, attention_mask, labels
