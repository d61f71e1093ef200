"""Deterministic batch order: the same (seed, epoch) always gives the same batches, which resume relies on."""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochBatchSampler(Sampler[list[int]]):
    def __init__(self, n_examples: int, batch_size: int, seed: int, shuffle: bool = True):
        self.n_examples, self.batch_size, self.seed, self.shuffle = n_examples, batch_size, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n_examples, generator=generator).tolist()
        else:
            order = list(range(self.n_examples))
        for start in range(0, self.n_examples, self.batch_size):
            yield order[start : start + self.batch_size]

    def __len__(self) -> int:
        return -(-self.n_examples // self.batch_size)
