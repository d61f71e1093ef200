"""`tunesmith compare`: several runs' reports in one table, refused unless they scored the same test set.

A report says which examples it scored by a fingerprint of the test set (fingerprint.py). Baseline rows of runs on
the same base model are the same rows, so each is shown once; every run then adds its tuned row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from tunesmith.errors import DataError, TunesmithError
from tunesmith.evaluate.eval_report import number
from tunesmith.evaluate.row_names import BASELINES

REPORTS = (Path("eval") / "report.json", Path("report.json"))


@dataclass(frozen=True)
class ScoredRun:
    name: str
    report: Path
    rows: dict[str, dict]
    meta: dict
    test_set: dict | None
    lower_is_better: frozenset[str]


def _report_path(run: Path) -> Path:
    if run.is_file():
        return run
    found = next((run / candidate for candidate in REPORTS if (run / candidate).is_file()), None)
    if found is None:
        raise TunesmithError(f"{run}: no eval/report.json or report.json; score it first with: tunesmith eval {run}")
    return found


def load_scored_run(run: Path) -> ScoredRun:
    path = _report_path(Path(run))
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if not isinstance(document, dict):
        raise DataError(f"{path}: expected a report object")
    if "rows" in document:
        rows = document["rows"]
        lower = frozenset(name for name, m in document.get("metrics", {}).items() if m.get("lower_is_better"))
    else:  # the end-of-training report: base (zero-shot) and tuned at the top level
        rows = {name: document[key] for name, key in (("zero_shot", "base"), ("tuned", "tuned"))
                if isinstance(document.get(key), dict)}
        lower = frozenset({"perplexity"})
    if "tuned" not in rows:
        raise DataError(f"{path}: holds no tuned scores; run: tunesmith eval {run}")
    name = path.parent.parent.name if path.parent.name == "eval" else path.parent.name
    return ScoredRun(name, path, rows, document.get("meta", {}), document.get("test_set"), lower)


def _describe(run: ScoredRun) -> str:
    t = run.test_set
    return f"{run.name} ({t['name']}, {t['n']} examples, fingerprint {t['fingerprint']})"


def load_scored_runs(runs: list[Path]) -> list[ScoredRun]:
    if len(runs) < 2:
        raise TunesmithError("tunesmith compare needs at least two runs, e.g. tunesmith compare runs/lora runs/full")
    scored = [load_scored_run(run) for run in runs]
    unmarked = [run for run in scored if not run.test_set]
    if unmarked:
        raise TunesmithError(f"{unmarked[0].report}: does not record which test set it scored; rescore the run "
                             f"with: tunesmith eval {unmarked[0].report.parent}")
    prints = {run.test_set["fingerprint"] for run in scored}
    if len(prints) > 1:
        raise TunesmithError("these runs were scored on different test sets, so their numbers do not compare: "
                             + "; ".join(_describe(run) for run in scored)
                             + ". Score them on one with: tunesmith eval RUN --test FILE")
    return scored


def comparison_table(runs: list[ScoredRun]) -> Table:
    """Each baseline once per base model, then every run's tuned row; the best tuned value per metric in bold."""
    entries: list[tuple[str, str, dict]] = []
    seen = set()
    for run in runs:
        for baseline in (b for b in BASELINES if b in run.rows):
            key = (run.meta.get("model"), baseline)
            if key not in seen:
                seen.add(key)
                entries.append((baseline, str(run.meta.get("model", "")), run.rows[baseline]))
    tuned = [(run.name, f"{run.meta.get('method', '')}", run.rows["tuned"]) for run in runs]
    metrics = list(dict.fromkeys(m for _, _, row in entries + tuned for m in row if m != "n"))
    lower = frozenset().union(*(run.lower_is_better for run in runs))
    best = {}
    for metric in metrics:
        values = [row[metric] for _, _, row in tuned if isinstance(row.get(metric), (int, float))]
        if values:
            best[metric] = min(values) if metric in lower else max(values)
    t = runs[0].test_set
    table = Table(title=f"{len(runs)} runs on {t['name']} ({t['n']} examples, fingerprint {t['fingerprint']})")
    for header in ("row", "model / method", "n", *metrics):
        table.add_column(header, justify="left" if header in ("row", "model / method") else "right")
    for name, what, row in entries:
        table.add_row(name, what, number("n", row.get("n")), *(number(m, row.get(m)) for m in metrics), style="dim")
    table.add_section()
    for name, what, row in tuned:
        cells = [f"[bold]{number(m, row.get(m))}[/]" if row.get(m) == best.get(m) else number(m, row.get(m))
                 for m in metrics]
        table.add_row(name, what, number("n", row.get("n")), *cells)
    return table
