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


# --- the numpy versions give what the list versions gave --------------------------------------------------------


def list_assign_splits(groups, strata, settings, validation=True, test=True):
    """assign_splits as it was written over Python lists (a dict of lists per group), kept as the oracle."""
    import random
    from collections import defaultdict

    from tunesmith.data.prepare.split import _largest_remainder, _name

    n = len(groups)
    wanted = {"test": held_out_count(settings.test, n) if test else 0,
              "validation": held_out_count(settings.validation, n) if validation else 0}
    if n and sum(wanted.values()) >= n:
        raise DataError("too few examples for a split")
    members, by_stratum = defaultdict(list), defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    for group, indexes in members.items():
        by_stratum[_name(strata[indexes[0]])].append(group)
    sizes = {stratum: sum(len(members[g]) for g in gs) for stratum, gs in by_stratum.items()}
    held_out = _largest_remainder(wanted["test"] + wanted["validation"], sizes)
    test_share = _largest_remainder(wanted["test"], held_out)
    quotas = {"test": test_share, "validation": {s: held_out[s] - test_share.get(s, 0) for s in held_out}}
    out = ["train"] * n
    for stratum in sorted(by_stratum):
        order = sorted(by_stratum[stratum])
        random.Random(f"{settings.seed}/{stratum}").shuffle(order)
        filled = {"test": 0, "validation": 0}
        for group in order:
            split = next((s for s in ("test", "validation") if filled[s] < quotas[s][stratum]), "train")
            for index in members[group]:
                out[index] = split
            if split != "train":
                filled[split] += len(members[group])
    return out


def random_pool(rng, n):
    groups = [rng.randrange(max(1, n // rng.choice((1, 2, 5)))) for _ in range(n)]  # groups of one or several
    strata = [rng.choice((None, "", "pos", "neg", "neutral", "rare")) for _ in range(n)]  # None and "" share one
    return groups, strata


def test_the_array_split_equals_the_list_split_it_replaced():
    import random

    rng = random.Random(0)
    for case in range(60):
        n = rng.choice((3, 10, 57, 400))
        groups, strata = random_pool(rng, n)
        settings = SplitSettings(validation=rng.choice((0, 0.1, 0.25, 1, 3)), test=rng.choice((0, 0.1, 2)),
                                 seed=case)
        flags = {"validation": rng.random() < 0.8, "test": rng.random() < 0.8}
        try:
            expected = list_assign_splits(groups, strata, settings, **flags)
        except DataError:
            with pytest.raises(DataError, match="too few examples for a split"):
                assign_splits(groups, strata, settings, **flags)
            continue
        assert assign_splits(groups, strata, settings, **flags) == expected, case


def test_label_ids_become_strata_with_no_label_and_an_empty_label_as_one():
    import numpy as np

    from tunesmith.data.prepare.split import stratum_codes

    codes, names = stratum_codes(np.array([-1, 0, 1, 2, 1, -1]), ["pos", "", "neg"])
    assert names == ["", "neg", "pos"]
    assert codes.tolist() == [0, 2, 0, 1, 0, 0]


def list_weighted_copies(sources, weights, seed):
    import random
    from collections import defaultdict

    copies, members = [1] * len(sources), defaultdict(list)
    for index, source in enumerate(sources):
        members[source].append(index)
    for source, indexes in members.items():
        weight = weights.get(source, 1.0)
        if weight != 1.0:
            lucky = set(random.Random(f"{seed}/source/{source}").sample(range(len(indexes)),
                                                                        round(weight * len(indexes)) % len(indexes)))
            base = round(weight * len(indexes)) // len(indexes)
            for i, index in enumerate(indexes):
                copies[index] = base + (i in lucky)
    return copies


def list_oversample(copies, labels, target_ratio, seed):
    import math
    import random
    from collections import defaultdict

    counts, members = Counter(), defaultdict(list)
    for index, (label, count) in enumerate(zip(labels, copies)):
        if label is not None and count:
            counts[label] += count
            members[label].append(index)
    if len(counts) < 2:
        return {}
    floor, added = math.ceil(target_ratio * max(counts.values())), {}
    for label in sorted(counts):
        need = floor - counts[label]
        if need > 0:
            indexes = members[label]
            base, extra = divmod(need, len(indexes))
            lucky = set(random.Random(f"{seed}/label/{label}").sample(range(len(indexes)), extra))
            for i, index in enumerate(indexes):
                copies[index] += base + (i in lucky)
            added[label] = need
    return added


def test_the_array_resampling_equals_the_list_resampling_it_replaced():
    import random

    import numpy as np

    rng = random.Random(1)
    for case in range(40):
        n = rng.choice((5, 40, 300))
        sources = [rng.randrange(3) for _ in range(n)]
        weights = {source: rng.choice((0.5, 2.5, 1.0, 0.1)) for source in range(3)}
        assert weighted_copies(sources, weights, case) == list_weighted_copies(sources, weights, case), case
        labels = [rng.choice((None, "big", "big", "big", "mid", "small")) for _ in range(n)]
        copies = list_weighted_copies(sources, weights, case)
        expected_copies = list(copies)
        expected = list_oversample(expected_copies, labels, 0.6, case)
        as_array = np.array(copies)  # the pipeline passes arrays; tests and callers may pass lists
        assert oversample(copies, labels, 0.6, case) == expected
        assert oversample(as_array, np.array(labels, object), 0.6, case) == expected
        assert copies == expected_copies == as_array.tolist(), case
