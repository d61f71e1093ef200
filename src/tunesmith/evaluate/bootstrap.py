"""Paired bootstrap confidence intervals for tuned-minus-baseline differences, and the verdict they support.

Both rows score the same examples, so each resample draws example indexes once and scores both rows on them: the
interval reflects how much the difference depends on which examples happen to be in the test set. Resamples are
drawn as multinomial counts, so a resample's statistics are one matrix product away. Percentile intervals from
a handful of examples are far too narrow, so below MIN_EXAMPLES no difference is called significant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from tunesmith.evaluate.metrics import Metric

MIN_EXAMPLES = 10


@dataclass(frozen=True)
class Difference:
    metric: str
    baseline: str
    delta: float  # tuned - baseline
    low: float
    high: float
    confidence: float
    n: int
    lower_is_better: bool = False

    @property
    def significant(self) -> bool:
        return self.n >= MIN_EXAMPLES and (self.low > 0 or self.high < 0)

    @property
    def tuned_better(self) -> bool:
        return (self.delta < 0) if self.lower_is_better else (self.delta > 0)

    def to_dict(self) -> dict:
        return {**asdict(self), "significant": self.significant, "tuned_better": self.tuned_better}


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n]: how often each example is drawn in each resample (with replacement, n draws)."""
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def paired_difference(metric: Metric, tuned: np.ndarray, baseline: np.ndarray, baseline_name: str, counts: np.ndarray,
                      confidence: float) -> Difference:
    if tuned.shape != baseline.shape:
        raise ValueError(f"{metric.name}: the rows scored different examples ({tuned.shape} vs {baseline.shape})")
    delta = metric.score(tuned) - metric.score(baseline)
    tuned_sums, baseline_sums = counts @ tuned, counts @ baseline
    spread = np.array([metric.corpus(t) - metric.corpus(b) for t, b in zip(tuned_sums, baseline_sums)])
    tail = 100 * (1 - confidence) / 2
    low, high = (np.nanpercentile(spread, [tail, 100 - tail]) if np.isfinite(spread).any() else (np.nan, np.nan))
    return Difference(metric.name, baseline_name, float(delta), float(low), float(high), confidence, len(tuned),
                      metric.lower_is_better)


def _number(metric: str, value: float) -> str:
    return f"{value:+.2f}" if metric == "perplexity" else f"{value:+.1f}"


def verdict(difference: Difference, baseline_label: str) -> str:
    """One line a reader can act on, e.g. 'fine-tuning beats few-shot prompting (k=3) by +31.0 exact match, ...'."""
    d = difference
    name = d.metric.replace("_", " ")
    show = lambda value: _number(d.metric, value)  # noqa: E731
    interval = f"{round(100 * d.confidence)}% CI [{show(d.low)}, {show(d.high)}]"
    if d.n < MIN_EXAMPLES:
        return (f"too few test examples to compare fine-tuning with {baseline_label} on {name}: {show(d.delta)} "
                f"over n={d.n}; a confidence interval needs at least {MIN_EXAMPLES}")
    if not d.significant:
        return (f"no significant difference between fine-tuning and {baseline_label} on {name}: {show(d.delta)}, "
                f"{interval} spans zero (n={d.n})")
    relation = "beats" if d.tuned_better else "is worse than"
    return f"fine-tuning {relation} {baseline_label} by {show(d.delta)} {name}, {interval} (n={d.n})"
