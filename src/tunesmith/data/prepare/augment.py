"""How many times each training example is written: mixing weights per source, then oversampled minority labels.

Only the training split is resampled; validation and test stay one copy each, so scores are never inflated
by repeats. Every choice is seeded. The counting runs on numpy arrays, so a million examples take a few
megabytes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

import numpy as np


def weighted_copies(sources: Sequence[int], weights: dict[int, float], seed: int) -> list[int]:
    """Copies per example so each source contributes round(weight x its size) examples."""
    sources = np.asarray(sources)
    copies = np.ones(len(sources), np.int64)
    for source, weight in weights.items():
        members = np.flatnonzero(sources == source)
        if weight != 1.0 and len(members):
            target = round(weight * len(members))
            copies[members] = _spread(target, len(members), random.Random(f"{seed}/source/{source}"))
    return copies.tolist()


def oversample(copies: list[int] | np.ndarray, labels: Sequence[str | None], target_ratio: float,
               seed: int) -> dict[str, int]:
    """Add copies in place until every label has at least target_ratio x the largest label's count.

    Returns the copies added per label. Examples without a label are left alone.
    """
    names = sorted({label for label in labels if label is not None})
    code = {name: index for index, name in enumerate(names)}
    codes = np.fromiter((-1 if label is None else code[label] for label in labels), np.int64, len(labels))
    counts = np.asarray(copies, np.int64)
    counted = (codes >= 0) & (counts > 0)
    totals = np.bincount(codes[counted], weights=counts[counted], minlength=len(names)).astype(np.int64)
    present = np.unique(codes[counted]).tolist()
    if len(present) < 2:
        return {}
    floor = math.ceil(target_ratio * max(int(totals[index]) for index in present))
    added = {}
    for index in present:  # names are sorted, so codes come in label order
        label, need = names[index], floor - int(totals[index])
        if need > 0:
            members = np.flatnonzero(counted & (codes == index))
            extras = _spread(need, len(members), random.Random(f"{seed}/label/{label}"))
            for member, extra in zip(members.tolist(), extras.tolist()):
                copies[member] += extra
            added[label] = need
    return added


def _spread(total: int, n: int, rng: random.Random) -> np.ndarray:
    """`total` copies over n examples as evenly as possible; which ones get the extra copy is drawn by rng."""
    base, extra = divmod(total, n)
    out = np.full(n, base, np.int64)
    out[rng.sample(range(n), extra)] += 1
    return out
