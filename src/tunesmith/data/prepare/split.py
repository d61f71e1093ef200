"""Split: train/validation/test by fraction or count, seeded, stratified by a label, never splitting a group.

A group is an example and the duplicates kept beside it (when deduplication is off): a group goes to one
split whole, so no example has a copy on the other side. Each stratum (label value) gives each held-out
split its share of the total by largest remainder, so the proportions hold and the totals are exact for
groups of one.
"""

from __future__ import annotations

import random
from collections import defaultdict

from tunesmith.config.prepare import SplitSettings
from tunesmith.errors import DataError

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS_IN_ORDER = (TRAIN, VALIDATION, TEST)


def held_out_count(share: float, n: int) -> int:
    """A fraction of n (at least one when the fraction is above zero) or a count."""
    if share <= 0:
        return 0
    return int(share) if share >= 1 else max(1, round(share * n))


def assign_splits(groups: list[int], strata: list[str | None], settings: SplitSettings,
                  validation: bool = True, test: bool = True) -> list[str]:
    """The split of each example of the pool; `validation`/`test` False when a file already provides that split."""
    n = len(groups)
    wanted = {TEST: held_out_count(settings.test, n) if test else 0,
              VALIDATION: held_out_count(settings.validation, n) if validation else 0}
    if n and sum(wanted.values()) >= n:
        raise DataError(
            f"too few examples for a split: {n} to split, and validation ({wanted[VALIDATION]}) plus test "
            f"({wanted[TEST]}) would leave none to train on; lower data.prepare.split.validation or .test, or add data"
        )
    members: dict[int, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    by_stratum: dict[str, list[int]] = defaultdict(list)
    for group, indexes in members.items():
        by_stratum[_name(strata[indexes[0]])].append(group)
    sizes = {stratum: sum(len(members[g]) for g in gs) for stratum, gs in by_stratum.items()}
    # The held-out total first, then its test part: training keeps the proportions as exactly as whole numbers can.
    held_out = _largest_remainder(wanted[TEST] + wanted[VALIDATION], sizes)
    test_share = _largest_remainder(wanted[TEST], held_out)
    quotas = {TEST: test_share, VALIDATION: {s: held_out[s] - test_share.get(s, 0) for s in held_out}}
    out = [TRAIN] * n
    for stratum in sorted(by_stratum):
        order = sorted(by_stratum[stratum])
        random.Random(f"{settings.seed}/{stratum}").shuffle(order)
        filled = {TEST: 0, VALIDATION: 0}
        for group in order:
            split = next((s for s in (TEST, VALIDATION) if filled[s] < quotas[s][stratum]), TRAIN)
            for index in members[group]:
                out[index] = split
            if split != TRAIN:
                filled[split] += len(members[group])
    return out


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
