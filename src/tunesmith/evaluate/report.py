"""Before/after evaluation report: report.json for programs, report.md for people, a rich table for the terminal.

`scores` maps a row name ("base", "tuned", and optional extras such as "few_shot") to its metric dict.
Rows are shown base, extras, tuned, then a "change" row (tuned - base) that says whether each change is better.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from rich.table import Table
from rich.text import Text

from tunesmith.atomic import write_text_atomic

# Known metrics keep a stable column order; any other numeric metric follows in first-seen order.
_METRIC_ORDER = ("perplexity", "bleu", "chrf", "rouge_l", "exact_match")
_LOWER_IS_BETTER = frozenset({"perplexity", "loss", "val_loss"})
_SAMPLES_SHOWN = 3
_MISSING = "–"
_VERDICT_STYLE = {"better": "green", "worse": "red", "same": "dim"}


def lower_is_better(metric: str) -> bool:
    return metric in _LOWER_IS_BETTER


def better(metric: str, base: float, tuned: float) -> bool:
    """Whether `tuned` improves on `base`: lower is better for perplexity (and loss), higher for the rest."""
    return tuned < base if metric in _LOWER_IS_BETTER else tuned > base


def _rows(scores: dict) -> dict[str, dict]:
    extras = {name: row for name, row in scores.items() if name not in ("base", "tuned") and isinstance(row, dict)}
    ordered = {"base": scores.get("base"), **extras, "tuned": scores.get("tuned")}
    return {name: row for name, row in ordered.items() if row is not None}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _metric_columns(rows: dict[str, dict]) -> list[str]:
    present = [key for row in rows.values() for key, value in row.items() if key != "n" and _is_number(value)]
    known = [name for name in _METRIC_ORDER if name in present]
    return known + [name for name in dict.fromkeys(present) if name not in known]


def _format(metric: str, value) -> str:
    if not _is_number(value):
        return _MISSING
    if metric == "n":
        return str(value)
    return f"{value:.2f}" if metric in _LOWER_IS_BETTER else f"{value:.1f}"


def _change(metric: str, base: dict, tuned: dict) -> tuple[str, str] | None:
    """(signed tuned - base, verdict) for one metric, or None when either side lacks it."""
    before, after = base.get(metric), tuned.get(metric)
    if not (_is_number(before) and _is_number(after)):
        return None
    verdict = "same" if after == before else "better" if better(metric, before, after) else "worse"
    delta = _format(metric, after - before)
    return (delta if delta.startswith("-") else f"+{delta}"), verdict


def _change_row(rows: dict[str, dict], metrics: list[str]) -> list[tuple[str, str] | None] | None:
    if "base" not in rows or "tuned" not in rows:
        return None
    return [_change(metric, rows["base"], rows["tuned"]) for metric in metrics]


def scores_table(scores: dict) -> Table:
    """The scores as a rich table for the terminal, with the change row coloured by verdict."""
    rows = _rows(scores)
    metrics = _metric_columns(rows)
    table = Table(title="Evaluation")
    for header in ("", "n", *metrics):
        table.add_column(header, justify="left" if header == "" else "right")
    for name, row in rows.items():
        table.add_row(name, *(_format(key, row.get(key)) for key in ("n", *metrics)))
    change = _change_row(rows, metrics)
    if change is not None:
        cells = [Text(f"{c[0]} {c[1]}", style=_VERDICT_STYLE[c[1]]) if c else _MISSING for c in change]
        table.add_section()
        table.add_row("change", "", *cells)
    return table


def _cell(text) -> str:
    """Make text safe on one Markdown line or table cell: no raw HTML, no column breaks, no line breaks."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\r\n", "\n").replace("\n", "<br>")


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _markdown_scores(scores: dict) -> list[str]:
    rows = _rows(scores)
    metrics = _metric_columns(rows)
    lines = [_markdown_row(["", "n", *metrics]), _markdown_row(["---"] + ["---:"] * (len(metrics) + 1))]
    for name, row in rows.items():
        lines.append(_markdown_row([f"**{name}**", *(_format(key, row.get(key)) for key in ("n", *metrics))]))
    change = _change_row(rows, metrics)
    if change is not None:
        lines.append(_markdown_row(["**change**", "", *(f"{c[0]} ({c[1]})" if c else _MISSING for c in change)]))
    return lines


def _markdown_meta(meta: dict) -> list[str]:
    def show(value) -> str:
        if not isinstance(value, float):
            return str(value)
        return f"{value:.2f}" if value == 0 or abs(value) >= 0.01 else f"{value:.2e}"  # a learning rate is not 0.00

    return [f"- **{key}**: {show(value)}" for key, value in meta.items()]


def _markdown_samples(samples: list[dict], answer_columns: list[str]) -> list[str]:
    lines: list[str] = []
    for number, sample in enumerate(samples[:_SAMPLES_SHOWN], start=1):
        columns = [name for name in ("reference", *answer_columns) if name in sample]
        lines += ["", f"### Sample {number}", "", f"> {_cell(sample.get('prompt', ''))}", ""]
        lines += [_markdown_row(columns), _markdown_row(["---"] * len(columns))]
        lines.append(_markdown_row([_cell(sample[name]) for name in columns]))
    return lines


def _markdown(scores: dict, samples: list[dict], meta: dict) -> str:
    title = f"# Evaluation report: {meta['model']}" if "model" in meta else "# Evaluation report"
    lines = [title, "", *_markdown_meta(meta), "", "## Scores", "", *_markdown_scores(scores)]
    if samples:
        lines += ["", "## Samples", *_markdown_samples(samples, list(_rows(scores)))]
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, scores: dict, samples: list[dict], meta: dict) -> tuple[Path, Path]:
    """Write report.json and report.md into run_dir; return their paths (json, md)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = run_dir / "report.json", run_dir / "report.md"
    document = {**scores, "meta": meta, "samples": samples}
    write_text_atomic(json_path, json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
    write_text_atomic(md_path, _markdown(scores, samples, meta))
    return json_path, md_path
