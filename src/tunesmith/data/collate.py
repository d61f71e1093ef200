"""Batch encoded examples with dynamic padding."""

from __future__ import annotations

import torch

from tunesmith.data.tokenize import IGNORE_INDEX


class PaddingCollator:
    """Right-pads each batch to its own longest sequence, never to max_length, so short batches stay cheap."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        if pad_token_id is None:
            raise ValueError("pad_token_id is None; give the tokenizer a pad token (e.g. its eos token)")
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be at least 1, got {pad_to_multiple_of}")
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        length = max(len(feature["input_ids"]) for feature in features)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = [list(feature["input_ids"]) for feature in features]
        batch = {
            "input_ids": _pad(input_ids, self.pad_token_id, length),
            "attention_mask": _pad([[1] * len(ids) for ids in input_ids], 0, length),
        }
        if "labels" in features[0]:
            batch["labels"] = _pad([list(feature["labels"]) for feature in features], IGNORE_INDEX, length)
        return batch


def _pad(sequences: list[list[int]], value: int, length: int) -> torch.Tensor:
    return torch.tensor([seq + [value] * (length - len(seq)) for seq in sequences], dtype=torch.long)
