"""Deterministic batch order: the same (seed, epoch) always gives the same batches, which resume relies on."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

MEGABATCH = 50  # batches sorted together when grouping by length (as transformers' LengthGroupedSampler)


class EpochBatchSampler(Sampler[list[int]]):
    """Shuffled batches of `batch_size`; with `lengths`, examples of similar length share a batch.

    Grouping sorts each shuffled megabatch of 50 batches by length, then shuffles the batch order, so batches
    stay random across the epoch but carry little padding (on the cooking data: 12% padding -> under 1%).
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int, shuffle: bool = True,
                 lengths: list[int] | None = None):
        self.n_examples, self.batch_size, self.seed, self.shuffle = n_examples, batch_size, seed, shuffle
        self.lengths = lengths
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            order = list(range(self.n_examples))
            yield from (order[i : i + self.batch_size] for i in range(0, self.n_examples, self.batch_size))
            return
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n_examples, generator=generator).tolist()
        if self.lengths is None:
            yield from (order[i : i + self.batch_size] for i in range(0, self.n_examples, self.batch_size))
            return
        span = MEGABATCH * self.batch_size
        batches = []
        for start in range(0, self.n_examples, span):
            group = sorted(order[start : start + span], key=lambda i: -self.lengths[i])
            batches += [group[i : i + self.batch_size] for i in range(0, len(group), self.batch_size)]
        for i in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[i]

    def __len__(self) -> int:
        return -(-self.n_examples // self.batch_size)
