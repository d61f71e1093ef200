"""How many times each training example is written: mixing weights per source, then oversampled minority labels.

Only the training split is resampled; validation and test stay one copy each, so scores are never inflated
by repeats. Every choice is seeded.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict


def weighted_copies(sources: list[int], weights: dict[int, float], seed: int) -> list[int]:
    """Copies per example so each source contributes round(weight x its size) examples."""
    copies = [1] * len(sources)
    members: dict[int, list[int]] = defaultdict(list)
    for index, source in enumerate(sources):
        members[source].append(index)
    for source, indexes in members.items():
        weight = weights.get(source, 1.0)
        if weight != 1.0:
            target = round(weight * len(indexes))
            for index, count in zip(indexes, _spread(target, len(indexes), random.Random(f"{seed}/source/{source}"))):
                copies[index] = count
    return copies


def oversample(copies: list[int], labels: list[str | None], target_ratio: float, seed: int) -> dict[str, int]:
    """Add copies in place until every label has at least target_ratio x the largest label's count.

    Returns the copies added per label. Examples without a label are left alone.
    """
    counts = Counter()
    members: dict[str, list[int]] = defaultdict(list)
    for index, (label, count) in enumerate(zip(labels, copies)):
        if label is not None and count:
            counts[label] += count
            members[label].append(index)
    if len(counts) < 2:
        return {}
    floor = math.ceil(target_ratio * max(counts.values()))
    added = {}
    for label in sorted(counts):
        need = floor - counts[label]
        if need > 0:
            indexes = members[label]
            for index, extra in zip(indexes, _spread(need, len(indexes), random.Random(f"{seed}/label/{label}"))):
                copies[index] += extra
            added[label] = need
    return added


def _spread(total: int, n: int, rng: random.Random) -> list[int]:
    """`total` copies over n examples as evenly as possible; which ones get the extra copy is drawn by rng."""
    base, extra = divmod(total, n)
    lucky = set(rng.sample(range(n), extra))
    return [base + (i in lucky) for i in range(n)]
