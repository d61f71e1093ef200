"""Split and resampling: seeded, stratified, groups whole, no example on two sides; weights and oversampling."""

from collections import Counter

import pytest

from tunesmith.config.prepare import SplitSettings
from tunesmith.data.prepare.augment import oversample, weighted_copies
from tunesmith.data.prepare.split import assign_splits, held_out_count
from tunesmith.errors import DataError


def by_split(splits, labels):
    return {name: Counter(label for s, label in zip(splits, labels) if s == name) for name in set(splits)}


def test_fractions_hold_in_every_stratum():
    labels = ["pos"] * 60 + ["neg"] * 30 + ["neutral"] * 10
    splits = assign_splits(list(range(100)), labels, SplitSettings(validation=0.1, test=0.2, seed=3))
    assert Counter(splits) == {"train": 70, "validation": 10, "test": 20}
    assert by_split(splits, labels) == {
        "train": {"pos": 42, "neg": 21, "neutral": 7},
        "validation": {"pos": 6, "neg": 3, "neutral": 1},
        "test": {"pos": 12, "neg": 6, "neutral": 2},
    }


def test_counts_are_shared_by_largest_remainder():
    labels = ["a"] * 5 + ["b"] * 3 + ["c"] * 2
    splits = assign_splits(list(range(10)), labels, SplitSettings(validation=0, test=3))
    # Shares 1.5, 0.9 and 0.6: one whole unit for a, and the two units left go to the largest remainders, b and c.
    assert by_split(splits, labels)["test"] == {"a": 1, "b": 1, "c": 1}


def test_the_split_is_seeded():
    settings = SplitSettings(seed=7)
    first = assign_splits(list(range(50)), [None] * 50, settings)
    assert first == assign_splits(list(range(50)), [None] * 50, settings)
    assert first != assign_splits(list(range(50)), [None] * 50, SplitSettings(seed=8))


def test_a_group_lands_in_one_split_whole():
    groups = [i // 4 for i in range(40)]  # ten groups of four near-identical examples
    splits = assign_splits(groups, [None] * 40, SplitSettings(validation=0.1, test=0.1))
    sides = {group: {split for g, split in zip(groups, splits) if g == group} for group in set(groups)}
    assert all(len(side) == 1 for side in sides.values())
    assert Counter(splits) == {"train": 32, "validation": 4, "test": 4}


def test_a_split_a_file_already_gives_is_not_carved():
    splits = assign_splits(list(range(10)), [None] * 10, SplitSettings(), test=False)
    assert Counter(splits) == {"train": 9, "validation": 1}


def test_too_few_examples_to_split():
    with pytest.raises(DataError) as caught:
        assign_splits([0, 1], [None, None], SplitSettings())
    assert str(caught.value) == (
        "too few examples for a split: 2 to split, and validation (1) plus test (1) would leave none to train on; "
        "lower data.prepare.split.validation or .test, or add data"
    )


def test_held_out_count_takes_fractions_or_counts():
    assert [held_out_count(share, 50) for share in (0, 0.1, 0.001, 5)] == [0, 5, 1, 5]


def test_mixing_weights_repeat_or_thin_a_source():
    sources = [0] * 10 + [1] * 4
    copies = weighted_copies(sources, {0: 0.5, 1: 2.5}, seed=0)
    assert sum(copies[:10]) == 5 and set(copies[:10]) == {0, 1}
    assert sum(copies[10:]) == 10 and set(copies[10:]) == {2, 3}
    assert copies == weighted_copies(sources, {0: 0.5, 1: 2.5}, seed=0)


def test_oversampling_lifts_minority_labels_to_the_target_ratio():
    labels = ["big"] * 10 + ["small"] * 2 + ["mid"] * 6 + [None]
    copies = [1] * len(labels)
    added = oversample(copies, labels, 0.5, seed=0)
    assert added == {"small": 3}
    assert sum(copies[10:12]) == 5 and copies[:10] == [1] * 10 and copies[12:] == [1] * 7
