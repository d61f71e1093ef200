"""The arithmetic of the tally: a proportion's confidence interval and chance-corrected agreement between reviewers."""

from __future__ import annotations

import math
from collections import Counter
from statistics import NormalDist


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion successes/n (successes may be fractional: ties count half)."""
    if n <= 0:
        raise ValueError("the Wilson interval needs at least one observation")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def cohen_kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa for two raters, one (rating_1, rating_2) pair per item; None when chance agreement is certain."""
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[label] * second[label] for label in first) / (n * n)
    return None if expected == 1 else (observed - expected) / (1 - expected)


def item_agreement(counts: list[int]) -> float:
    """The share of rater pairs on one item that agree, from how many raters chose each category."""
    raters = sum(counts)
    return (sum(c * c for c in counts) - raters) / (raters * (raters - 1))


def fleiss_kappa(table: list[list[int]]) -> float | None:
    """Fleiss' kappa from one row per item of counts per category (rows may have different numbers of raters, >= 2).

    With a varying number of raters the observed agreement is the mean of the per-item agreements and the chance
    agreement uses the category shares over all ratings, which equals Fleiss (1971) when every item has the same count.
    """
    observed = sum(item_agreement(row) for row in table) / len(table)
    totals = [sum(column) for column in zip(*table)]
    ratings = sum(totals)
    expected = sum((total / ratings) ** 2 for total in totals)
    return None if expected == 1 else (observed - expected) / (1 - expected)
