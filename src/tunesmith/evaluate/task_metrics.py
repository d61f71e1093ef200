"""Metrics a user sets in `eval.task`: label accuracy and macro-F1, JSON validity and field accuracy, format adherence.

All are on a 0-100 scale and built as per-example statistics (see metrics.py), so they get confidence intervals
like every other metric.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import numpy as np

from tunesmith.config.eval_metrics import FormatMetric, JsonMetric, LabelMetric, TaskMetrics
from tunesmith.errors import DataError
from tunesmith.evaluate.metrics import Metric, mean_of, mean_statistics

# Decoration around a label that does not change it: quotes, Markdown emphasis, closing punctuation.
_LABEL_DECORATION = " \t\"'`*_.,;:!?"
_MISSING = object()


def task_metrics(settings: TaskMetrics) -> list[Metric]:
    metrics: list[Metric] = []
    if settings.label:
        metrics += label_metrics(settings.label)
    if settings.json_output:
        metrics += json_metrics(settings.json_output)
    if settings.format:
        metrics.append(format_metric(settings.format))
    return metrics


# --- labels -------------------------------------------------------------------------------------------------------


def label_parser(settings: LabelMetric) -> Callable[[str], str | None]:
    """The rule that reads a label from a text; None when the text holds none."""
    pattern = re.compile(settings.pattern, re.MULTILINE) if settings.pattern else None

    def raw(text: str) -> str | None:
        if settings.parse == "whole":
            return text
        if settings.parse == "first_line":
            return next((line for line in text.splitlines() if line.strip()), None)
        found = pattern.search(text)
        return None if found is None else found.group(1) if pattern.groups else found.group(0)

    def parse(text: str) -> str | None:
        label = raw(text)
        label = " ".join(label.split()).strip(_LABEL_DECORATION) if label is not None else ""
        if not label:
            return None
        return label if settings.case_sensitive else label.casefold()

    return parse


def _reference_labels(settings: LabelMetric, references: list[str]) -> tuple[list[str | None], list[str]]:
    """(label of each reference, the classes), with a clear error for a reference the rule cannot read."""
    parse = label_parser(settings)
    labels = [parse(reference) for reference in references]
    for number, (reference, label) in enumerate(zip(references, labels), start=1):
        if label is None:
            raise DataError(f"reference answer {number} ({reference[:60]!r}): the label rule (parse: "
                            f"{settings.parse}{', pattern: ' + repr(settings.pattern) if settings.pattern else ''}) "
                            "finds no label in it; fix the rule or the reference")
    if settings.labels is None:
        return labels, sorted(set(labels))
    classes = [parse(label) or label for label in settings.labels]
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise DataError(f"reference labels {unknown} are not in eval.task.label.labels ({settings.labels}); "
                        "add them or fix the references")
    return labels, classes


def label_metrics(settings: LabelMetric) -> list[Metric]:
    parse = label_parser(settings)

    def accuracy(answers: list[str], references: list[str]) -> np.ndarray:
        truth, _ = _reference_labels(settings, references)
        return mean_statistics(100.0 * (parse(answer) == label) for answer, label in zip(answers, truth))

    def confusion(answers: list[str], references: list[str]) -> np.ndarray:
        """Per example, for each class: (true positive, false positive, false negative) counts."""
        truth, classes = _reference_labels(settings, references)
        index = {label: i for i, label in enumerate(classes)}
        stats = np.zeros((len(answers), len(classes), 3))
        for row, (answer, label) in enumerate(zip(answers, truth)):
            guess = parse(answer)
            if guess == label:
                stats[row, index[label], 0] = 1
                continue
            stats[row, index[label], 2] = 1
            if guess in index:  # an answer outside the classes is a miss, not a vote for another class
                stats[row, index[guess], 1] = 1
        return stats.reshape(len(answers), -1)

    return [
        Metric("label_accuracy", mean_of, accuracy, pass_fail=True),
        Metric("label_macro_f1", _macro_f1, confusion),
    ]


def _macro_f1(stats: np.ndarray) -> float:
    """Mean F1 over the classes that occur (as truth or guess) in these examples; 0-100."""
    tp, fp, fn = stats.reshape(-1, 3).T
    denominator = 2 * tp + fp + fn
    present = denominator > 0
    return float(100.0 * np.mean(2 * tp[present] / denominator[present])) if present.any() else float("nan")


# --- JSON ---------------------------------------------------------------------------------------------------------


def parse_json(text: str):
    """The answer as JSON (surrounding whitespace ignored), or _MISSING when it is not one valid JSON document."""
    try:
        return json.loads(text.strip())
    except ValueError:
        return _MISSING


def _reference_object(reference: str, number: int) -> dict:
    value = parse_json(reference)
    if not isinstance(value, dict):
        raise DataError(f"reference answer {number} ({reference[:60]!r}) is not a JSON object, so JSON field "
                        "accuracy has nothing to compare with; fix the reference or drop eval.task.json_output.fields")
    return value


def json_metrics(settings: JsonMetric) -> list[Metric]:
    def valid(answers: list[str], references: list[str]) -> np.ndarray:
        return mean_statistics(100.0 * (parse_json(answer) is not _MISSING) for answer in answers)

    def field_statistics(fields: list[str] | None) -> Callable[[list[str], list[str]], np.ndarray]:
        def statistics(answers: list[str], references: list[str]) -> np.ndarray:
            rows = []
            for number, (answer, reference) in enumerate(zip(answers, references), start=1):
                expected = _reference_object(reference, number)
                got = parse_json(answer)
                got = got if isinstance(got, dict) else {}
                keys = fields if fields is not None else list(expected)
                rows.append([100.0 * sum(got.get(k, _MISSING) == expected.get(k, _MISSING) for k in keys), len(keys)])
            return np.array(rows, dtype=np.float64).reshape(-1, 2)

        return statistics

    metrics = [
        Metric("json_valid", mean_of, valid, pass_fail=True),
        Metric("json_fields", mean_of, field_statistics(settings.fields), pass_fail=True),
    ]
    return metrics + [Metric(f"json:{field}", mean_of, field_statistics([field]), pass_fail=True)
                      for field in settings.fields or []]


# --- format -------------------------------------------------------------------------------------------------------


def format_checker(settings: FormatMetric) -> Callable[[str], list[int]]:
    """The indexes of the patterns an answer fails (empty when it adheres)."""
    patterns = [re.compile(pattern, re.MULTILINE) for pattern in settings.patterns]
    return lambda answer: [i for i, pattern in enumerate(patterns) if not pattern.search(answer)]


def format_metric(settings: FormatMetric) -> Metric:
    failures = format_checker(settings)

    def statistics(answers: list[str], references: list[str]) -> np.ndarray:
        return mean_statistics(100.0 * (not failures(answer)) for answer in answers)

    return Metric("format", mean_of, statistics, pass_fail=True)
