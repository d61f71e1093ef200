"""The end of an evaluation, shared by `tunesmith eval` and the end of training: rows in, eval/ folder out.

Scored rows are compared (intervals, verdicts), then joined by forgetting, fit, error analysis, the from-scratch
case study and the human review's tally (when RUN_DIR/review/ has votes), written as RUN_DIR/eval/report.json,
report.md, report.html, examples.jsonl and loss_curves.png, and printed.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console

from tunesmith.config.eval_metrics import ComparisonSettings, TaskMetrics
from tunesmith.config.schema import RunConfig
from tunesmith.data.formats import Example
from tunesmith.evaluate.bootstrap import paired_difference, resample_counts
from tunesmith.evaluate.compare import question_of
from tunesmith.evaluate.comparison import Comparison, compare_rows
from tunesmith.evaluate.eval_report import (
    build_document, example_rows, note_lines, rows_table, write_eval_report, write_examples,
)
from tunesmith.evaluate.failures import changes, export_failures
from tunesmith.evaluate.fingerprint import test_set_info
from tunesmith.evaluate.fit import diagnose, plot_curves, read_curves
from tunesmith.evaluate.forgetting import forgetting
from tunesmith.evaluate.losses import model_context
from tunesmith.evaluate.metrics import PERPLEXITY
from tunesmith.evaluate.plots import differences_png
from tunesmith.evaluate.report_html import html_report
from tunesmith.evaluate.review_section import review_section
from tunesmith.evaluate.row_names import BASELINES
from tunesmith.evaluate.rows import Row, Scorer, chosen_metrics, references_of

EVAL_DIR = "eval"


@dataclass
class EvalResult:
    out_dir: Path
    document: dict
    comparison: Comparison
    failures_written: int | None = None


def eval_settings(config: RunConfig) -> tuple[TaskMetrics, ComparisonSettings]:
    return config.eval.task, config.eval.comparison


def scorer_for(config: RunConfig, model, tokenizer, autocast=nullcontext, task: TaskMetrics | None = None,
               raw_text: bool = False) -> Scorer:
    """The scorer a run's config asks for (metrics, eval.task, max_new_tokens, batch size)."""
    task = task or eval_settings(config)[0]
    metrics = chosen_metrics(list(config.eval.metrics), task, raw_text)
    return Scorer(tokenizer, metrics, config.eval.max_new_tokens, config.eval.batch_size, model_context(model), autocast)


@dataclass(frozen=True)
class GeneralText:
    """The forgetting check's inputs: where the passages came from and both models' token-loss statistics."""

    source: str
    base: np.ndarray
    tuned: np.ndarray


def write_evaluation(run_dir: Path, config: RunConfig, scorer: Scorer, rows: dict[str, Row], examples: list[Example],
                     test_name: str, settings: ComparisonSettings, *, shots: list[Example] = (),
                     general: GeneralText | None = None, export_failures_to: Path | None = None,
                     meta: dict | None = None, console: Console | None = None,
                     sections: dict | None = None) -> EvalResult:
    """Compare the scored rows, then write RUN_DIR/eval/ (report.json, .md, .html, examples.jsonl, loss_curves.png)
    and print the table and the verdicts. `rows` holds "tuned" and any baselines, scored on `examples`;
    `sections` adds report sections by name (e.g. "scratch", the from-scratch case study)."""
    console = console or Console()
    result = compare_rows(rows, scorer.metrics, settings)
    out_dir = run_dir / EVAL_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    charts: dict[str, bytes] = {"differences": differences_png(result.differences)} if result.differences else {}
    extras: dict = {"test_set": test_set_info(examples, test_name), **(sections or {})}
    if general is not None:
        counts = resample_counts(len(general.base), settings.bootstrap_resamples, settings.bootstrap_seed)
        drift = paired_difference(PERPLEXITY, general.tuned, general.base, "base", counts, settings.confidence)
        forgot = forgetting(general.source, general.base, general.tuned, drift, settings.forgetting_threshold)
        extras["forgetting"] = forgot.to_dict()
    curves = read_curves(run_dir / "metrics.jsonl")
    if curves is not None:
        diagnosis = diagnose(curves)
        charts["loss_curves"] = plot_curves(curves, diagnosis, out_dir / "loss_curves.png").read_bytes()
        extras |= {"fit": diagnosis.to_dict(), "loss_curves": "loss_curves.png"}
    if shots:
        extras["few_shot"] = {"k": len(shots), "seed": settings.few_shot_seed, "shots": [shot.where for shot in shots]}
    references = references_of(examples, scorer.tokenizer)
    questions = [question_of(example) or reference[:200] for example, reference in zip(examples, references)]
    against = next((b for b in BASELINES if b in rows), None)
    if against:
        table = changes(result, against)
        extras |= {"changes_against": against, "changes": [{**c, "prompt": questions[c["id"]]} for c in table]}
    written = None
    if export_failures_to:
        written = export_failures(Path(export_failures_to), result, examples)
        extras["failures"] = {"path": str(export_failures_to), "count": written}
    meta = {"run_dir": str(run_dir), "model": config.model, "method": config.method.name, "test_set": test_name,
            "rows": ", ".join(rows), "max_new_tokens": scorer.max_new_tokens,
            "bootstrap_resamples": settings.bootstrap_resamples, "confidence": settings.confidence, **(meta or {})}
    write_examples(out_dir, example_rows(result, questions, references))
    review = review_section(run_dir)  # after examples.jsonl: the votes are matched to the answers in it
    if review:
        extras["review"] = review
    document = build_document(result, questions, references, meta, extras)
    paths = write_eval_report(out_dir, document, html_report(document, charts))
    console.print(rows_table(document))
    for line in [*document["verdicts"], *note_lines(document)]:
        console.print(line, highlight=False, soft_wrap=True)
    if written is not None:
        console.print(f"{written} failure(s) written to {export_failures_to} (test examples: hold out fresh ones "
                      "before training on these)")
    console.print(f"report: {paths['report.md']} and {paths['report.html']}")
    return EvalResult(out_dir, document, result, written)
