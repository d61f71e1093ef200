"""The evaluation report: report.json (the document), report.md and report.html rendered from it, examples.jsonl.

The document leads with the rows (zero-shot, few-shot, scratch, tuned), the differences with their intervals and
the verdicts; then fine-tuning against training from scratch, the human review, fit, forgetting, per-example changes
and ten generations side by side.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table
from rich.text import Text

from tunesmith.atomic import write_text_atomic
from tunesmith.evaluate.comparison import Comparison
from tunesmith.evaluate.report import _cell

SIDE_BY_SIDE = 10
ROW_ORDER = ("zero_shot", "few_shot", "scratch", "tuned")
# Sections whose one-line summary joins the verdicts, in this order.
NOTE_SECTIONS = ("scratch", "review", "forgetting", "fit")
_PROMPT_CHARS = 80


def number(metric: str, value) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    if metric == "n":
        return str(value)
    return f"{value:.2f}" if metric == "perplexity" else f"{value:.1f}"


def signed(metric: str, value: float) -> str:
    text = number(metric, value)
    return text if text.startswith(("-", "–")) else f"+{text}"


def interval(d: dict) -> str:
    return f"{signed(d['metric'], d['delta'])} [{signed(d['metric'], d['low'])}, {signed(d['metric'], d['high'])}]"


def outcome(d: dict) -> str:
    if not d["significant"]:
        return "no significant difference"
    return "tuned better" if d["tuned_better"] else "tuned worse"


def build_document(comparison: Comparison, questions: list[str], references: list[str], meta: dict,
                   extras: dict) -> dict:
    """report.json: rows, differences, verdicts, samples; `extras` adds test_set, fit, forgetting, changes, ...

    `questions` are what a reader sees as each example's prompt (the last user turn).
    """
    rows = {name: comparison.rows[name] for name in ROW_ORDER if name in comparison.rows}
    scores = {name: row.scores(comparison.metrics) for name, row in rows.items()}
    samples = [
        {"id": i, "prompt": questions[i], "reference": references[i],
         **{name: row.answers[i] for name, row in rows.items() if row.answers}}
        for i in range(min(SIDE_BY_SIDE, len(questions)))
    ]
    return {
        "rows": scores,
        "headline": comparison.headline,
        "verdicts": comparison.verdicts,
        "differences": [d.to_dict() for d in comparison.differences],
        "metrics": {m.name: {"lower_is_better": m.lower_is_better, "pass_fail": m.pass_fail}
                    for m in comparison.metrics},
        **extras,
        "meta": meta,
        "samples": samples,
    }


def example_rows(comparison: Comparison, questions: list[str], references: list[str]) -> list[dict]:
    """eval/examples.jsonl: one line per test example with every row's answer and per-example scores."""
    rows = {name: comparison.rows[name] for name in ROW_ORDER if name in comparison.rows}
    per_example = {name: row.per_example(comparison.metrics) for name, row in rows.items()}
    return [
        {"id": i, "prompt": questions[i], "reference": references[i],
         "answers": {name: row.answers[i] if row.answers else "" for name, row in rows.items()},
         "scores": {name: scores[i] for name, scores in per_example.items()}}
        for i in range(len(questions))
    ]


# --- Markdown -----------------------------------------------------------------------------------------------------


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _score_lines(document: dict) -> list[str]:
    metrics = list(document["metrics"])
    lines = [_row(["", "n", *metrics]), _row(["---"] + ["---:"] * (len(metrics) + 1))]
    for name, scores in document["rows"].items():
        lines.append(_row([f"**{name}**", *(number(m, scores.get(m)) for m in ("n", *metrics))]))
    return lines


def _difference_lines(document: dict) -> list[str]:
    baselines = list(dict.fromkeys(d["baseline"] for d in document["differences"]))
    if not baselines:
        return []
    lines = [_row(["metric", *(f"tuned - {b}" for b in baselines)]), _row(["---"] * (len(baselines) + 1))]
    for metric in document["metrics"]:
        cells = []
        for baseline in baselines:
            d = next(d for d in document["differences"] if d["metric"] == metric and d["baseline"] == baseline)
            cells.append(f"{interval(d)} {outcome(d)}")
        lines.append(_row([metric, *cells]))
    confidence = round(100 * document["differences"][0]["confidence"])
    return ["", f"Differences with {confidence}% paired bootstrap intervals "
                f"({document['meta'].get('bootstrap_resamples')} resamples):", "", *lines]


def _change_lines(document: dict) -> list[str]:
    changes = document.get("changes")
    if not changes:
        return []
    against, headline = document["changes_against"], document["headline"]
    lines = ["", "## Per-example changes", "",
             f"{headline} per example, {against} against tuned, most helped first:", "",
             _row(["#", "prompt", against, "tuned", "change"]), _row(["---:", "---", "---:", "---:", "---:"])]
    for change in changes:
        prompt = change["prompt"]
        short = prompt if len(prompt) <= _PROMPT_CHARS else prompt[: _PROMPT_CHARS - 1] + "…"
        lines.append(_row([str(change["id"]), _cell(short), number(headline, change[against]),
                           number(headline, change["tuned"]), signed(headline, change["improvement"])]))
    return lines


def _sample_lines(document: dict) -> list[str]:
    lines = ["", "## Generations side by side"]
    for sample in document["samples"]:
        columns = [c for c in ("reference", *ROW_ORDER) if c in sample]
        lines += ["", f"### Example {sample['id']}", "", f"> {_cell(sample['prompt'])}", "",
                  _row(columns), _row(["---"] * len(columns)), _row([_cell(sample[c]) for c in columns])]
    return lines


def note_lines(document: dict) -> list[str]:
    """The one-line summaries of the sections present (from scratch, human review, forgetting, fit)."""
    return [line for key in NOTE_SECTIONS if document.get(key) for line in _lines_of(document[key])]


def _lines_of(section: dict) -> list[str]:
    return section["lines"] if "lines" in section else [section["line"]]


def seconds(value) -> str:
    return "–" if value is None else f"{value:,.1f} s"


def case_study_rows(document: dict) -> list[list[str]]:
    """Fine-tuning against training from scratch: one row per model, quality (the headline metric and
    perplexity where computed), training time, training tokens, training FLOPs."""
    training, headline = document["scratch"]["training"], document["headline"]
    quality = [m for m in dict.fromkeys((headline, "perplexity")) if m in document["metrics"]]
    rows = []
    for name in ("tuned", "scratch"):
        scores, spent = document["rows"].get(name, {}), training[name]
        rows.append([name, *(number(m, scores.get(m)) for m in quality), seconds(spent["seconds"]),
                     f"{spent['tokens']:,}", f"{spent['parameters']:,}", f"{spent['flops']:.2e}"])
    return [["", *quality, "training time", "training tokens", "parameters", "training FLOPs"], *rows]


def _scratch_lines(document: dict) -> list[str]:
    section = document.get("scratch")
    if not section:
        return []
    header, *rows = case_study_rows(document)
    return ["", "## Fine-tuning vs training from scratch", "", _row(header),
            _row(["---"] + ["---:"] * (len(header) - 1)), *(_row([f"**{r[0]}**", *r[1:]]) for r in rows), "",
            f"- {section['line']}", f"- scratch run: {section['run_dir']} ({section['learning_rate_reason']})",
            f"- FLOPs: {section['flops_rule']}"]


def _review_lines(document: dict) -> list[str]:
    from tunesmith.review.summary import summary_markdown

    section = document.get("review")
    if not section:
        return []
    return [line for summary in section["summaries"].values() for line in ("", summary_markdown(summary).rstrip())]


def markdown(document: dict) -> str:
    meta = document["meta"]
    lines = [f"# Was fine-tuning worth it? {meta.get('model', '')} + {meta.get('method', '')}", ""]
    lines += [f"- **{key}**: {value}" for key, value in meta.items() if not isinstance(value, (dict, list))]
    lines += ["", "## Verdict", "", *(f"- {line}" for line in document["verdicts"])]
    lines += [f"- {line}" for line in note_lines(document)]
    lines += ["", "## Scores", "", *_score_lines(document), *_difference_lines(document)]
    lines += _scratch_lines(document) + _review_lines(document)
    if document.get("fit") and document.get("loss_curves"):
        lines += ["", "## Loss curves", "", f"![training and validation loss]({document['loss_curves']})", "",
                  document["fit"]["line"]]
    if document.get("forgetting"):
        lines += ["", "## Forgetting", "", document["forgetting"]["line"]]
    lines += _change_lines(document)
    if document["samples"]:
        lines += _sample_lines(document)
    return "\n".join(lines) + "\n"


# --- files and terminal -------------------------------------------------------------------------------------------


def write_examples(out_dir: Path, examples: list[dict]) -> Path:
    """eval/examples.jsonl: written before the reports, since the human review's tally reads the answers from it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "examples.jsonl"
    write_text_atomic(path, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in examples))
    return path


def write_eval_report(out_dir: Path, document: dict, html: str) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("report.json", "report.md", "report.html")}
    write_text_atomic(paths["report.json"], json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
    write_text_atomic(paths["report.md"], markdown(document))
    write_text_atomic(paths["report.html"], html)
    return paths


_STYLE = {"tuned better": "green", "tuned worse": "red", "no significant difference": "dim"}


def rows_table(document: dict) -> Table:
    """Rows, then one line per baseline with each difference and its interval, coloured by what it shows."""
    metrics = list(document["metrics"])
    table = Table(title=f"Evaluation on {document['meta'].get('test_set', 'the test set')}")
    for header in ("", "n", *metrics):
        table.add_column(header, justify="left" if header == "" else "right")
    for name, scores in document["rows"].items():
        table.add_row(name, *(number(m, scores.get(m)) for m in ("n", *metrics)))
    baselines = list(dict.fromkeys(d["baseline"] for d in document["differences"]))
    if baselines:
        table.add_section()
    for baseline in baselines:
        cells = []
        for metric in metrics:
            d = next(d for d in document["differences"] if d["metric"] == metric and d["baseline"] == baseline)
            cells.append(Text(interval(d), style=_STYLE[outcome(d)]))
        table.add_row(f"tuned - {baseline}", "", *cells)
    return table
