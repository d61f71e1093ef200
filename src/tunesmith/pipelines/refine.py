"""Iterative refinement: train round after round (each continuing the last, with a decayed learning rate),
evaluate between rounds, stop when a round stops helping, and keep the best round."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from tunesmith import events as ev
from tunesmith.config.load import build_config
from tunesmith.config.schema import RefineConfig, RunConfig
from tunesmith.errors import ConfigError, TunesmithError
from tunesmith.evaluate.report import lower_is_better, write_report
from tunesmith.methods.apply import is_adapter
from tunesmith.pipelines.stages import base_raw, run_or_reuse
from tunesmith.run import RunResult
from tunesmith.train.distributed import is_main_process


def round_metric(result: RunResult, metric: str) -> float:
    if metric == "val_loss":
        if result.val_loss is None:
            raise ConfigError("refine.metric: val_loss needs validation data (data.validation or validation_split > 0)")
        return result.val_loss
    tuned = result.scores.get("tuned", {})
    if metric not in tuned:
        raise ConfigError(f"refine.metric: '{metric}' was not scored; add it to eval.metrics and give data.test")
    return tuned[metric]


def should_stop(history: list[float], refine: RefineConfig) -> bool:
    """True when the latest round did not improve on the best earlier round by more than min_gain."""
    if not refine.stop_when_no_gain or len(history) < 2:
        return False
    lower = lower_is_better(refine.metric)
    best_before = min(history[:-1]) if lower else max(history[:-1])
    gain = best_before - history[-1] if lower else history[-1] - best_before
    return gain <= refine.min_gain


def best_round(history: list[float], metric: str) -> int:
    lower = lower_is_better(metric)
    return min(range(len(history)), key=lambda i: history[i] if lower else -history[i])


def run_refine(config: RunConfig, *, resume: bool = False, overwrite: bool = False, console: Console,
               events: ev.EventStream, cancel=None) -> RunResult:
    refine, root = config.refine, Path(config.output_dir)
    results: list[RunResult] = []
    history: list[float] = []
    for index in range(refine.rounds):
        raw = base_raw(config)
        raw["output_dir"] = str(root / f"round-{index + 1}")
        raw["training"]["learning_rate"] = _round_rate(config.training.learning_rate, root, index, refine.lr_decay)
        if results:
            previous = results[-1]
            raw.update({"init_adapter": str(previous.output)} if is_adapter(config.method) else {"model": str(previous.output)})
        events.emit(ev.RoundStarted(index=index + 1, total=refine.rounds))
        result = run_or_reuse(build_config(raw), resume, overwrite, console, events, cancel)
        results.append(result)
        history.append(round_metric(result, refine.metric))
        events.emit(ev.RoundFinished(index=index + 1, total=refine.rounds, metric=refine.metric, value=history[-1]))
        console.print(f"[bold]round {index + 1}[/]: {refine.metric} = {history[-1]:.4f}")
        if should_stop(history, refine):
            console.print(f"round {index + 1} did not improve {refine.metric}; stopping")
            break
    best = best_round(history, refine.metric)
    report = _write_refine_report(root, config, results, history, best, console)
    return RunResult(root, results[best].scores, results[best].output, results[best].val_loss, report)


def _round_rate(first, root: Path, index: int, decay: float):
    """Round 1 trains at the configured rate (under auto: the range test's choice); each later round decays it."""
    if first == "auto":
        if index == 0:
            return first
        from tunesmith.train import lr_range

        chosen = lr_range.saved(root / "round-1")
        if chosen is None:
            raise TunesmithError(f"{root / 'round-1'}: round 1's learning-rate choice (lr_range.json) is missing; "
                                 "start the refinement again with --overwrite")
        first = chosen.rate
    return first * decay**index


def _write_refine_report(root: Path, config: RunConfig, summaries, history, best: int, console: Console):
    scores: dict = {}
    if summaries[0].scores.get("base"):
        scores["base"] = summaries[0].scores["base"]
    for i, summary in enumerate(summaries):
        row = dict(summary.scores.get("tuned") or {})
        row[config.refine.metric] = history[i]
        scores[f"round {i + 1}"] = row
    scores["tuned"] = scores.pop(f"round {best + 1}")
    meta = {"pipeline": "refine", "metric": config.refine.metric, "rounds_run": len(summaries),
            "best_round": best + 1, "best": str(summaries[best].output)}
    report = write_report(root, scores, [], meta)[1] if is_main_process() else None
    table = Table(title="refinement rounds")
    for column in ("round", config.refine.metric, "best"):
        table.add_column(column)
    for i, value in enumerate(history):
        table.add_row(str(i + 1), f"{value:.4f}", "*" if i == best else "")
    console.print(table)
    return report
