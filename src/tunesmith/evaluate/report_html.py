"""report.html: the evaluation report as one self-contained page (charts embedded as base64 PNG, no scripts)."""

from __future__ import annotations

from html import escape

from tunesmith.evaluate.eval_report import ROW_ORDER, case_study_rows, interval, note_lines, number, outcome, signed
from tunesmith.evaluate.plots import data_uri

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem; color: #1f2328; }
table { border-collapse: collapse; margin: 0.8rem 0; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.6rem; vertical-align: top; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
td.text { white-space: pre-wrap; min-width: 12rem; }
.better { color: #1a7f37; } .worse { color: #cf222e; } .unclear { color: #6e7781; }
.verdict { font-size: 1.1rem; font-weight: 600; }
blockquote { border-left: 4px solid #d0d7de; margin: 0.5rem 0; padding: 0.2rem 0.8rem; white-space: pre-wrap; }
"""
_CLASS = {"tuned better": "better", "tuned worse": "worse", "no significant difference": "unclear"}


def _table(headers: list[str], rows: list[list[str]], text_columns: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="text">{c}</td>' if i in text_columns else f"<td>{c}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _scores(document: dict) -> str:
    metrics = list(document["metrics"])
    rows = [[escape(name), *(number(m, scores.get(m)) for m in ("n", *metrics))]
            for name, scores in document["rows"].items()]
    return _table(["", "n", *metrics], rows)


def _differences(document: dict) -> str:
    baselines = list(dict.fromkeys(d["baseline"] for d in document["differences"]))
    rows = []
    for metric in document["metrics"]:
        cells = [escape(metric)]
        for baseline in baselines:
            d = next(d for d in document["differences"] if d["metric"] == metric and d["baseline"] == baseline)
            cells.append(f'<span class="{_CLASS[outcome(d)]}">{escape(interval(d))}</span>')
        rows.append(cells)
    return _table(["metric", *(f"tuned - {b}" for b in baselines)], rows) if baselines else ""


def _changes(document: dict) -> str:
    changes, headline = document.get("changes"), document["headline"]
    if not changes:
        return ""
    against = document["changes_against"]
    rows = [[str(c["id"]), escape(c["prompt"]), number(headline, c[against]), number(headline, c["tuned"]),
             signed(headline, c["improvement"])] for c in changes]
    return (f"<h2>Per-example changes</h2><p>{escape(headline)} per example, {escape(against)} against tuned, "
            f"most helped first.</p>" + _table(["#", "prompt", against, "tuned", "change"], rows, {1}))


def _samples(document: dict) -> str:
    if not document["samples"]:
        return ""
    columns = [c for c in ("prompt", "reference", *ROW_ORDER) if c in document["samples"][0]]
    rows = [[escape(sample.get(c, "")) for c in columns] for sample in document["samples"]]
    return "<h2>Generations side by side</h2>" + _table(columns, rows, set(range(len(columns))))


def _scratch(document: dict) -> str:
    section = document.get("scratch")
    if not section:
        return ""
    header, *rows = case_study_rows(document)
    return ("<h2>Fine-tuning vs training from scratch</h2>" + _table(header, [[escape(c) for c in r] for r in rows])
            + f"<p>{escape(section['line'])}</p><p>scratch run: {escape(section['run_dir'])} "
              f"({escape(section['learning_rate_reason'])}); FLOPs: {escape(section['flops_rule'])}</p>")


def _review(document: dict) -> str:
    from tunesmith.review.summary import agreement_line, headline

    section = document.get("review")
    if not section:
        return ""
    parts = []
    for against, summary in section["summaries"].items():
        parts += [f"<h2>Human review: tuned vs {escape(against)}</h2>", f"<p>{escape(headline(summary))}</p>"]
        if summary["win_rate"] is not None:
            outcomes = summary["outcomes"]
            parts.append(f"<p>votes: tuned better {outcomes['tuned']}, {escape(against)} better "
                         f"{outcomes['baseline']}, tie {outcomes['tie']}; {escape(agreement_line(summary['agreement']))}"
                         f"</p><p>{escape(summary['method'])}</p>")
        if summary["stale_votes"]:
            parts.append(f"<p>not counted: {summary['stale_votes']} vote(s) on answers the run no longer has</p>")
        reviewers = [[escape(name), *(str(row[k]) for k in ("votes", "tuned", "baseline", "tie"))]
                     for name, row in summary["reviewers"].items()]
        if reviewers:
            parts.append(_table(["reviewer", "votes", "tuned better", "baseline better", "tie"], reviewers))
    return "".join(parts)


def _image(png: bytes | None, alt: str) -> str:
    return f'<p><img alt="{escape(alt)}" src="{data_uri(png)}"></p>' if png else ""


def html_report(document: dict, charts: dict[str, bytes]) -> str:
    """`charts`: PNG bytes by name ("differences", "loss_curves"); missing ones are left out."""
    meta = document["meta"]
    title = f"Was fine-tuning worth it? {meta.get('model', '')} + {meta.get('method', '')}"
    meta_rows = [[escape(str(k)), escape(str(v))] for k, v in meta.items() if not isinstance(v, (dict, list))]
    verdicts = "".join(f'<p class="verdict">{escape(line)}</p>' for line in document["verdicts"])
    notes = "".join(f"<p>{escape(line)}</p>" for line in note_lines(document))
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>",
        f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>",
        "<h2>Verdict</h2>", verdicts, notes,
        "<h2>Scores</h2>", _scores(document), _differences(document),
        _image(charts.get("differences"), "tuned minus baseline with confidence intervals"),
        _scratch(document), _review(document),
    ]
    if charts.get("loss_curves"):
        parts += ["<h2>Loss curves</h2>", _image(charts["loss_curves"], "training and validation loss")]
    parts += [_changes(document), _samples(document), "<h2>Run</h2>", _table(["", ""], meta_rows, {1}),
              "</body></html>"]
    return "".join(parts) + "\n"
