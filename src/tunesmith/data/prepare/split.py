"""Split: train/validation/test by fraction or count, seeded, stratified by a label, never splitting a group.

A group is an example and the duplicates kept beside it (when deduplication is off): a group goes to one
split whole, so no example has a copy on the other side. Each stratum (label value) gives each held-out
split its share of the total by largest remainder, so the proportions hold and the totals are exact for
groups of one. The work is done on numpy arrays (a few bytes per example), so a million examples split in
bounded memory; `assign_splits` is the same over plain lists.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from tunesmith.config.prepare import SplitSettings
from tunesmith.errors import DataError

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS_IN_ORDER = (TRAIN, VALIDATION, TEST)


def held_out_count(share: float, n: int) -> int:
    """A fraction of n (at least one when the fraction is above zero) or a count."""
    if share <= 0:
        return 0
    return int(share) if share >= 1 else max(1, round(share * n))


def assign_splits(groups: Sequence[int], strata: Sequence[str | None], settings: SplitSettings,
                  validation: bool = True, test: bool = True) -> list[str]:
    """The split of each example of the pool; `validation`/`test` False when a file already provides that split."""
    names = sorted({_name(stratum) for stratum in strata})
    code = {name: index for index, name in enumerate(names)}
    codes = np.fromiter((code[_name(stratum)] for stratum in strata), np.int64, len(strata))
    splits = split_codes(np.asarray(groups, np.int64), codes, names, settings, validation, test)
    return [SPLITS_IN_ORDER[split] for split in splits.tolist()]


def split_codes(groups: np.ndarray, strata: np.ndarray, names: Sequence[str], settings: SplitSettings,
                validation: bool = True, test: bool = True) -> np.ndarray:
    """assign_splits on arrays: each example's group id and stratum code (an index into `names`, the distinct
    stratum names); returns each example's split as an index into SPLITS_IN_ORDER."""
    n = len(groups)
    wanted = {TEST: held_out_count(settings.test, n) if test else 0,
              VALIDATION: held_out_count(settings.validation, n) if validation else 0}
    if n and sum(wanted.values()) >= n:
        raise DataError(
            f"too few examples for a split: {n} to split, and validation ({wanted[VALIDATION]}) plus test "
            f"({wanted[TEST]}) would leave none to train on; lower data.prepare.split.validation or .test, or add data"
        )
    # Distinct groups in ascending order, each with its size and the stratum of its first example.
    _, first, members_of, sizes = np.unique(groups, return_index=True, return_inverse=True, return_counts=True)
    group_strata = strata[first]
    present = np.unique(group_strata).tolist()
    totals = np.bincount(group_strata, weights=sizes, minlength=len(names))
    stratum_sizes = {names[code]: int(totals[code]) for code in present}
    # The held-out total first, then its test part: training keeps the proportions as exactly as whole numbers can.
    held_out = _largest_remainder(wanted[TEST] + wanted[VALIDATION], stratum_sizes)
    test_share = _largest_remainder(wanted[TEST], held_out)
    group_split = np.full(len(first), SPLITS_IN_ORDER.index(TRAIN), np.int8)
    for code in present:
        name = names[code]
        order = np.flatnonzero(group_strata == code).tolist()  # ascending group ids, as the seeded shuffle expects
        random.Random(f"{settings.seed}/{name}").shuffle(order)
        order = np.asarray(order, np.int64)
        quotas = ((TEST, test_share[name]), (VALIDATION, held_out[name] - test_share[name]))
        start = 0
        for split, quota in quotas:
            # Groups join this split, in shuffled order, while it holds fewer examples than its quota.
            before = np.cumsum(sizes[order[start:]]) - sizes[order[start:]]
            taken = int(np.searchsorted(before, quota, "left"))
            group_split[order[start: start + taken]] = SPLITS_IN_ORDER.index(split)
            start += taken
    return group_split[members_of.reshape(-1)]


def stratum_codes(labels: np.ndarray, label_names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Stratum codes for label ids (indexes into label_names; -1 for none) and the stratum names they index."""
    stratum_of = [_name(None), *map(_name, label_names)]  # by label id + 1
    names = sorted(set(stratum_of))
    code = {name: index for index, name in enumerate(names)}
    return np.array([code[name] for name in stratum_of], np.int64)[labels + 1], names


def _name(stratum: str | None) -> str:
    return "" if stratum is None else str(stratum)


def _largest_remainder(total: int, sizes: dict[str, int]) -> dict[str, int]:
    """`total` shared among strata in proportion to their sizes, in whole numbers that sum to `total`."""
    n = sum(sizes.values())
    if not n:
        return dict.fromkeys(sizes, 0)
    exact = {stratum: total * size / n for stratum, size in sizes.items()}
    shares = {stratum: int(value) for stratum, value in exact.items()}
    left = total - sum(shares.values())
    for stratum in sorted(exact, key=lambda s: (shares[s] - exact[s], s))[:left]:
        shares[stratum] += 1
    return shares
