"""Tuned against each baseline on the same examples: every metric's difference with a paired bootstrap interval, and
a verdict line per baseline on the headline metric."""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.config.eval_metrics import ComparisonSettings
from tunesmith.errors import ConfigError
from tunesmith.evaluate.bootstrap import Difference, paired_difference, resample_counts, verdict
from tunesmith.evaluate.metrics import Metric
from tunesmith.evaluate.row_names import BASELINES, ROW_LABELS
from tunesmith.evaluate.rows import Row

# Without eval.comparison.headline, the verdict uses the first of these that was computed, else the first metric.
_HEADLINE_PREFERENCE = ("label_accuracy", "json_fields", "format", "exact_match")


@dataclass
class Comparison:
    metrics: list[Metric]
    rows: dict[str, Row]
    differences: list[Difference]
    headline: str
    verdicts: list[str]

    def scores(self) -> dict[str, dict]:
        return {name: row.scores(self.metrics) for name, row in self.rows.items()}

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)


def headline_metric(metrics: list[Metric], requested: str | None) -> str:
    names = [m.name for m in metrics]
    if requested is not None:
        if requested not in names:
            raise ConfigError(f"eval.comparison.headline: '{requested}' is not among the computed metrics "
                              f"({', '.join(names)}); pick one of them or add it to eval.metrics / eval.task")
        return requested
    if not names:
        raise ConfigError("eval.metrics is empty: nothing to compare; list at least one metric, e.g. [perplexity]")
    return next((name for name in _HEADLINE_PREFERENCE if name in names), names[0])


def baseline_label(name: str, few_shot_k: int | None = None) -> str:
    return f"few-shot prompting (k={few_shot_k})" if name == "few_shot" and few_shot_k else ROW_LABELS[name]


def compare_rows(rows: dict[str, Row], metrics: list[Metric], settings: ComparisonSettings) -> Comparison:
    """`rows` holds "tuned" and any of the baselines, all scored on the same examples in the same order."""
    tuned = rows["tuned"]
    # A metric a row could not compute (e.g. generation metrics on raw text) is dropped for every row.
    metrics = [m for m in metrics if all(m.name in row.stats for row in rows.values())]
    headline = headline_metric(metrics, settings.headline)
    n = len(tuned.stats[headline])
    counts = resample_counts(n, settings.bootstrap_resamples, settings.bootstrap_seed)
    differences, verdicts = [], []
    for name in (b for b in BASELINES if b in rows):
        for metric in metrics:
            difference = paired_difference(metric, tuned.stats[metric.name], rows[name].stats[metric.name], name,
                                           counts, settings.confidence)
            differences.append(difference)
            if metric.name == headline:
                verdicts.append(verdict(difference, baseline_label(name, settings.few_shot_k)))
    return Comparison(metrics, rows, differences, headline, verdicts)
