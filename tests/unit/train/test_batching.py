"""Batch order is a pure function of (seed, epoch); length grouping cuts padding without losing examples."""

import random

from tunesmith.train.batching import EpochBatchSampler


def padding_share(batches, lengths):
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return 1 - sum(lengths) / padded


def test_same_seed_and_epoch_same_batches_other_epoch_other_order():
    sampler = EpochBatchSampler(100, 8, seed=3)
    sampler.set_epoch(1)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(2)
    assert list(sampler) != first
    assert sorted(i for b in first for i in b) == list(range(100))
    assert len(sampler) == len(first) == 13


def test_length_grouping_covers_every_example_once_and_cuts_padding():
    rng = random.Random(0)
    lengths = [rng.randint(20, 200) for _ in range(1000)]
    grouped = list(EpochBatchSampler(1000, 8, seed=0, lengths=lengths))
    plain = list(EpochBatchSampler(1000, 8, seed=0))
    assert sorted(i for b in grouped for i in b) == list(range(1000))
    assert len(grouped) == len(plain)
    assert padding_share(grouped, lengths) < 0.05 < padding_share(plain, lengths)
