"""Padding-free sample packing: a batch's examples become one row, kept apart by their position_ids.

transformers (masking_utils.find_packed_sequence_indices) turns position_ids that restart at 0 into a
block-diagonal causal mask for sdpa, eager and flex attention, and flash-attention derives its varlen
boundaries from them. The detection only runs when attention_mask is None AND there is no KV cache, so
every forward over a packed batch must pass use_cache=False (tasks/causal_lm/loss.py does); with the default
use_cache=True the model silently attends across examples.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

from tunesmith.data.tokenize import IGNORE_INDEX


class PackingCollator:
    """Concatenates examples into input_ids/labels/position_ids of shape [1, T], with no attention_mask.

    The first label of every example is set to IGNORE_INDEX: after the shift it would be predicted from the
    previous example's last token. It is never a target in unpacked training either, so the loss is unchanged.
    With pad_to_multiple_of, a tail of pad tokens (its own "example", never trained) rounds T up so that
    shapes repeat across steps (fewer recompiles, aligned matmuls).
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        input_ids: list[int] = []
        labels: list[int] = []
        position_ids: list[int] = []
        for feature in features:
            ids = list(feature["input_ids"])
            if not ids:
                continue
            input_ids += ids
            labels += [IGNORE_INDEX, *feature["labels"][1:]]
            position_ids += range(len(ids))
        if self.pad_to_multiple_of:
            pad = -len(input_ids) % self.pad_to_multiple_of
            input_ids += [self.pad_token_id] * pad
            labels += [IGNORE_INDEX] * pad
            position_ids += range(pad)
        return {
            "input_ids": torch.tensor([input_ids], dtype=torch.long),
            "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([position_ids], dtype=torch.long),
        }


def pack_into_bins(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """First-fit-decreasing bins of example indices, each totalling <= max_tokens.

    An example longer than max_tokens gets a bin of its own. A max-segment-tree over bin capacities finds
    the first bin that fits in O(log n), so packing a large dataset stays fast. Ties break by index, so the
    result is deterministic.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = [[i] for i in order if lengths[i] > max_tokens]
    fitting = [i for i in order if lengths[i] <= max_tokens]
    if not fitting:
        return bins

    # Leaves are bins in opening order, all starting empty, so "leftmost leaf with room" is first-fit and
    # opens a new bin exactly when no open one has room.
    size = 1
    while size < len(fitting):
        size *= 2
    room = [0] * size + [max_tokens] * len(fitting) + [0] * (size - len(fitting))
    for node in range(size - 1, 0, -1):
        room[node] = max(room[2 * node], room[2 * node + 1])

    packed: list[list[int]] = []
    for index in fitting:
        length = lengths[index]
        node = 1
        while node < size:
            node = 2 * node if room[2 * node] >= length else 2 * node + 1
        leaf = node - size
        if leaf == len(packed):
            packed.append([])
        packed[leaf].append(index)
        room[node] -= length
        node //= 2
        while node:
            room[node] = max(room[2 * node], room[2 * node + 1])
            node //= 2
    return bins + packed


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Batches of example indices whose total length is <= max_tokens, for PackingCollator.

    The bins are packed once (first-fit-decreasing, so __len__ is fixed and known to the LR schedule) and
    their order is shuffled per epoch; the same (seed, epoch) always gives the same batches, which resume
    relies on.
    """

    def __init__(self, lengths: list[int], max_tokens: int, seed: int, shuffle: bool = True):
        self.bins = pack_into_bins(lengths, max_tokens)
        self.seed, self.shuffle = seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(len(self.bins), generator=generator).tolist()
        else:
            order = range(len(self.bins))
        for position in order:
            yield list(self.bins[position])

    def __len__(self) -> int:
        return len(self.bins)
