"""Dynamic right padding."""

import pytest
import torch

from tunesmith.data.collate import PaddingCollator

FEATURES = [
    {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
    {"input_ids": [8], "labels": [8]},
]


def test_pads_to_the_longest_in_the_batch_on_the_right():
    batch = PaddingCollator(pad_token_id=0)(FEATURES)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert all(t.dtype == torch.long for t in batch.values())


def test_pad_to_multiple_of():
    batch = PaddingCollator(pad_token_id=2, pad_to_multiple_of=4)(FEATURES)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, 4)
    assert batch["input_ids"][0].tolist() == [5, 6, 7, 2]
    assert PaddingCollator(2, pad_to_multiple_of=3)(FEATURES)["input_ids"].shape == (2, 3)


def test_features_without_labels():
    batch = PaddingCollator(pad_token_id=0)([{"input_ids": [1, 2]}, {"input_ids": [3]}])
    assert set(batch) == {"input_ids", "attention_mask"}


def test_bad_arguments():
    with pytest.raises(ValueError, match="pad_token_id is None"):
        PaddingCollator(None)
    with pytest.raises(ValueError, match="pad_to_multiple_of must be at least 1, got 0"):
        PaddingCollator(0, pad_to_multiple_of=0)
    with pytest.raises(ValueError, match="cannot collate an empty batch"):
        PaddingCollator(0)([])
