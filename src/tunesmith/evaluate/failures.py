"""Error analysis that feeds the data back: which examples fine-tuning helped or hurt, and what it still gets wrong.

The failures file is training data in the run's own format (chat or prompt/completion JSONL) with the reference
answer as the reply, so it loads as is; a "review" object beside it holds the tuned model's answer and scores for
the person correcting it. These are test examples: moving them into training means fresh test data is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunesmith.data.formats import Example
from tunesmith.errors import ConfigError
from tunesmith.evaluate.comparison import Comparison
from tunesmith.evaluate.metrics import Metric


def improvement(metric: Metric, baseline: float, tuned: float) -> float:
    """How much better tuned is than the baseline on one example (negative: worse)."""
    return baseline - tuned if metric.lower_is_better else tuned - baseline


def changes(comparison: Comparison, against: str) -> list[dict]:
    """Per example, the headline score of `against` and of tuned, most helped first, most hurt last."""
    metric = comparison.metric(comparison.headline)
    baseline = metric.per_example(comparison.rows[against].stats[metric.name])
    tuned = metric.per_example(comparison.rows["tuned"].stats[metric.name])
    rows = [{"id": i, against: b, "tuned": t, "improvement": improvement(metric, b, t)}
            for i, (b, t) in enumerate(zip(baseline, tuned))]
    return sorted(rows, key=lambda row: (-row["improvement"], row["id"]))


def failed(comparison: Comparison) -> list[int]:
    """Indexes of the examples the tuned model gets wrong on the headline metric (which must be pass/fail)."""
    metric = comparison.metric(comparison.headline)
    if not metric.pass_fail:
        pass_fail = [m.name for m in comparison.metrics if m.pass_fail]
        raise ConfigError(f"--export-failures needs a pass/fail headline metric to tell a failure, and "
                          f"'{metric.name}' is a graded score; set eval.comparison.headline to one of "
                          f"{', '.join(pass_fail) or 'exact_match or a task metric (eval.task)'}")
    scores = metric.per_example(comparison.rows["tuned"].stats[metric.name])
    return [i for i, score in enumerate(scores) if score < 100.0]


def _record(example: Example) -> dict:
    if example.messages is not None:
        return {"messages": example.messages}
    return {"prompt": example.prompt, "completion": example.completion}


def export_failures(path: Path, comparison: Comparison, examples: list[Example]) -> int:
    """Write the tuned model's failures to `path`; returns how many."""
    indexes = failed(comparison)
    tuned = comparison.rows["tuned"]
    per_example = tuned.per_example(comparison.metrics)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for i in indexes:
            review = {"source": examples[i].where, "tuned_answer": tuned.answers[i], "scores": per_example[i],
                      "failed_on": comparison.headline}
            handle.write(json.dumps({**_record(examples[i]), "review": review}, ensure_ascii=False) + "\n")
    return len(indexes)
