"""What a sweep leaves in its folder: trials.md and trials.json (one row per trial), importance.png (Optuna's
parameter-importance evaluator over the complete trials) and best.yaml (the best trial as a runnable config)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from rich.table import Table

from tunesmith.config.schema import RunConfig
from tunesmith.pipelines.sweep_space import trial_config
from tunesmith.provenance import config_text

TRIALS_MD, TRIALS_JSON, IMPORTANCE_PNG, BEST_YAML = "trials.md", "trials.json", "importance.png", "best.yaml"
MIN_TRIALS_FOR_IMPORTANCE = 2  # PED-ANOVA returns equal shares below this; a plot of them would mislead


def trial_rows(study) -> list[dict]:
    """One JSON-ready row per trial: number, state, params, metric, seconds, run folder and what happened."""
    continued_by = {t.user_attrs["continues"]: t.number for t in study.trials if "continues" in t.user_attrs}
    rows = []
    for t in study.trials:
        rows.append({
            "number": t.number, "state": t.state.name.lower(), "params": t.params, "metric": t.value,
            "seconds": round(t.duration.total_seconds(), 1) if t.duration else None,
            "run_dir": t.user_attrs.get("run_dir"), "note": _note(t, continued_by.get(t.number)),
        })
    return rows


def _note(trial, continued_by: int | None) -> str:
    attrs, notes = trial.user_attrs, []
    if "continues" in attrs:
        notes.append(f"continues trial {attrs['continues']}")
    if "pruned_at_step" in attrs:
        notes.append(f"pruned at step {attrs['pruned_at_step']} (val_loss {attrs['pruned_val_loss']:.4g})")
    if "stopped_at_step" in attrs:
        notes.append(f"stopped at step {attrs['stopped_at_step']}")
    if "error" in attrs:
        notes.append(attrs["error"])
    if continued_by is not None:
        notes.append(f"continued by trial {continued_by}")
    return "; ".join(notes)


def write_tables(sweep_dir: Path, rows: list[dict], summary: dict, keys: list[str]) -> tuple[Path, Path]:
    json_path, md_path = sweep_dir / TRIALS_JSON, sweep_dir / TRIALS_MD
    json_path.write_text(json.dumps({**summary, "trials": rows}, indent=2) + "\n")
    metric = summary["metric"]
    lines = [f"# Sweep `{summary['study']}`: {summary['direction']} {metric}", ""]
    if summary["best"] is not None:
        lines += [f"Best: trial {summary['best']} ({metric} {_number(summary['best_value'])}), config "
                  f"`{summary['best_config']}`.", ""]
    header = ["trial", "state", *keys, metric, "seconds", "run", "note"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cells(row, keys)) + " |")
    if summary.get("importance"):
        shares = ", ".join(f"{k} {v:.2f}" for k, v in summary["importance"].items())
        lines += ["", f"Parameter importance (PED-ANOVA over complete trials): {shares}. ![importance]({IMPORTANCE_PNG})"]
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, json_path


def _number(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else "-" if value is None else str(value)


def _cells(row: dict, keys: list[str]) -> list[str]:
    params = [_number(row["params"].get(k)) for k in keys]
    return [str(row["number"]), row["state"], *params, _number(row["metric"]), _number(row["seconds"]),
            Path(row["run_dir"]).name if row["run_dir"] else "-", row["note"] or ""]


def trials_table(rows: list[dict], keys: list[str], metric: str, best: int | None) -> Table:
    table = Table(title="sweep trials")
    for column in ["trial", "state", *keys, metric, "seconds", "run", "note"]:
        table.add_column(column)
    for row in rows:
        table.add_row(*_cells(row, keys), style="bold green" if row["number"] == best else None)
    return table


def importances(study) -> dict[str, float] | None:
    """Each parameter's share of the metric's variation among the complete trials; None with too few of them."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna flags its evaluators experimental
        return dict(optuna.importance.get_param_importances(study))


def write_importance_plot(path: Path, shares: dict[str, float], metric: str) -> Path:
    from matplotlib.figure import Figure

    names = list(shares)[::-1]  # the most important on top
    figure = Figure(figsize=(6, 1 + 0.4 * len(names)), dpi=100)
    axes = figure.subplots()
    axes.barh(names, [shares[n] for n in names], color="#0969da")
    axes.set_xlim(0, 1)
    axes.set_xlabel(f"importance for {metric} (share, PED-ANOVA)")
    axes.tick_params(labelsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def write_best_config(sweep_dir: Path, config: RunConfig, trial, metric: str, study: str) -> Path:
    """The best trial's full config, without `sweep:`, training into <sweep>/best; it loads with load_config."""
    best = trial_config(config, trial.params, sweep_dir / "best", source=f"best trial {trial.number}",
                        compare_base=config.eval.compare_base)
    path = sweep_dir / BEST_YAML
    header = (f"# best trial {trial.number} of sweep study '{study}': {metric} = {trial.value:.6g}\n"
              f"# train it: tunesmith train {path}\n")
    path.write_text(header + config_text(best))
    return path
