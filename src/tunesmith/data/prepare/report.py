"""The data report: report.json (the numbers), report.md (tables) and report.html (tables and embedded plots).

The report dict is built by the pipeline (or by `report_for_file`); this module only adds the warnings and
renders it. Every example text it shows has been redacted before it got here.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from tunesmith.config.prepare import ReportSettings
from tunesmith.data.prepare.distinct import EXACT_WORDS

DUPLICATE_RATE_WARNING = 0.3
REJECTED_RATE_WARNING = 0.1


def warnings_for(report: dict, settings: ReportSettings) -> list[str]:
    """Problems with the prepared set that a person should act on, each with what to do."""
    out = []
    train = report["splits"].get("train") or report["overall"]
    if train["examples"] < settings.min_examples:
        out.append(f"only {train['examples']:,} training examples (under {settings.min_examples:,}): a model learns a "
                   "style or task reliably from a few hundred; add data, or expect the tuned model to change little")
    labels = train["labels"]
    if train["imbalance_ratio"] and train["imbalance_ratio"] > settings.max_imbalance:
        largest, smallest = next(iter(labels)), list(labels)[-1]
        out.append(f"labels are imbalanced: '{largest}' has {train['imbalance_ratio']}x the examples of '{smallest}'; "
                   "set data.prepare.augment.target_ratio (e.g. 0.5) to oversample the smaller labels, or collect more "
                   "of them")
    dedup = report["steps"].get("dedup")
    if dedup and dedup["rate"] > DUPLICATE_RATE_WARNING:
        out.append(f"{dedup['rate']:.0%} of the examples were duplicates: check how the data was collected (repeated "
                   "exports, copied greetings); the report's pairs show what was removed")
    check = report["steps"]["check"]
    if check["records"] and check["invalid"] / check["records"] > REJECTED_RATE_WARNING:
        where = f"read {check['quarantine']}" if check["quarantine"] else "tunesmith data check lists them"
        out.append(f"{check['invalid'] / check['records']:.0%} of the records were invalid: {where} for each one's "
                   "reason")
    split = report["steps"].get("split")
    if split and not split["counts"].get("validation"):
        out.append("no validation examples: training cannot report a validation loss or stop at the best step; set "
                   "data.prepare.split.validation")
    return out


def write_report(out_dir: Path, report: dict, settings: ReportSettings) -> None:
    report["warnings"] = warnings_for(report, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
    (out_dir / "report.md").write_text(render_markdown(report))
    (out_dir / "report.html").write_text(render_html(report))


# --- shared content ------------------------------------------------------------------------------------


def _sections(report: dict) -> list[tuple[str, list]]:
    """(heading, blocks) in reading order; a block is a paragraph string or a table (header, rows)."""
    unit = report["unit"]
    steps = report["steps"]
    sections = [("Overview", [
        f"Format: {report['format'] or 'unknown'}. Lengths are counted in {unit}"
        f"{' (whitespace-separated; give a model to count its tokens)' if unit == 'words' else ''}.",
        (["input", "role", "weight", "records", "kept"],
         [[i["path"], i["role"], i["weight"], i["records"], i["kept"]] for i in report["inputs"]]),
    ])]
    if report.get("warnings"):
        sections.append(("Warnings", [(["what to look at"], [[w] for w in report["warnings"]])]))
    sections.append(("Splits", [(
        ["split", "examples", unit, f"prompt {unit} (mean)", f"response {unit} (mean)", "vocabulary"],
        [[name, s["examples"], s["tokens"], s["prompt"]["mean"], s["response"]["mean"], _vocabulary(s, "")]
         for name, s in report["splits"].items()],
    )]))
    for key, title in (("check", "Check"), ("repair", "Repairs"), ("clean", "Cleaning"), ("dedup", "Duplicates"),
                       ("pii", "Personal data"), ("split", "Split"), ("augment", "Augmentation"),
                       ("feedback", "Feedback")):
        if steps.get(key) is not None:
            sections.append((title, _STEP_RENDERERS[key](steps[key])))
    sections.append(("Statistics", _statistics(report["overall"], report.get("weights", {}), unit)))
    return sections


def _samples(samples: list[dict]) -> list:
    if not samples:
        return []
    return [(["where", "reason", "example"], [[s["where"], s["reason"], s["preview"]] for s in samples])]


def _check(step: dict) -> list:
    where = f"quarantined in {step['quarantine']}" if step["quarantine"] else "listed by tunesmith data check"
    blocks = [f"{step['records']:,} records read, {step['invalid']:,} invalid ({where})."]
    if step["reasons"]:
        blocks.append((["problem", "records"], [[reason, count] for reason, count in step["reasons"].items()]))
    return blocks + _samples(step["samples"])


def _repair(step: dict) -> list:
    return [(["repair", "examples"], [["trailing user turns trimmed", step["trailing_user"]],
                                      ["consecutive turns of one role merged", step["repeated_role"]]]),
            *_samples(step["samples"])]


def _clean(step: dict) -> list:
    blocks = [(["change", "examples"], [[name.replace("_", " "), count] for name, count in step["changed"].items()])]
    if step["dropped"]:
        blocks.append((["dropped", "examples"], [[name.replace("_", " "), count]
                                                 for name, count in step["dropped"].items()]))
    return blocks + _samples(step["samples"])


def _dedup(step: dict) -> list:
    blocks = [
        f"{step['checked']:,} examples compared: {step['exact']:,} exact and {step['near']:,} near duplicates removed "
        f"(duplicate rate {step['rate']:.1%}), {step['leakage']:,} removed because they repeat a validation or test "
        f"example, {step['replaced_by_feedback']:,} replaced by a corrected feedback example. "
        f"{step['kept_together']:,} similar examples (the same answer to another prompt, or duplicates while "
        "deduplication is off) were kept in the split of the example they resemble. Near duplicates: Jaccard "
        f"similarity of {step['shingle_size']}-character shingles at least {step['threshold']}, for the whole example "
        "and for its prompt."
    ]
    if step["pairs"]:
        blocks.append((["removed", "kept", "similarity"],
                       [[f"{p['removed_where']}\n{p['removed']}", f"{p['kept_where']}\n{p['kept']}", p["similarity"]]
                        for p in step["pairs"]]))
    return blocks


def _pii(step: dict) -> list:
    if not step["enabled"]:
        return ["Redaction is off (data.prepare.pii.enabled: false)."]
    ner = ("named entities (PERSON, LOCATION) from " + step["ner_model"]) if step["ner_model"] else (
        "no named-entity model (pii.ner_model), so names and places are not detected")
    blocks = [f"Detectors that ran: {', '.join(step['detectors'])}; {ner}. {step['examples']:,} examples had "
              "something redacted." + (f" Audit: {step['audit']}." if step["audit"] else "")]
    if step["counts"]:
        blocks.append((["type", "redacted"], [[entity, count] for entity, count in step["counts"].items()]))
    return blocks


def _split(step: dict) -> list:
    blocks = [f"Seed {step['seed']}; " + (f"stratified by '{step['stratify_by']}'." if step["strata"] else
                                          "not stratified (no label field).")]
    blocks.append((["split", "examples"], [[name, count] for name, count in step["counts"].items()]))
    if step["strata"]:
        names = list(step["counts"])
        blocks.append((["label", *names], [[label, *(row.get(n, 0) for n in names)]
                                           for label, row in step["strata"].items()]))
    return blocks


def _augment(step: dict) -> list:
    rows = [[label, count] for label, count in step["added"].items()]
    return [f"Target: every label at least {step['target_ratio']} of the largest in train.",
            (["label", "copies added"], rows or [["(none needed)", 0]])]


def _feedback(step: dict) -> list:
    return [f"{step['path']}: {step['merged']:,} corrected examples merged into train, {step['rejected']:,} "
            f"quarantined, {step['replaced']:,} older training examples they duplicate removed."]


_STEP_RENDERERS = {"check": _check, "repair": _repair, "clean": _clean, "dedup": _dedup, "pii": _pii,
                   "split": _split, "augment": _augment, "feedback": _feedback}


def _statistics(stats: dict, weights: dict, unit: str) -> list:
    blocks = [(["length", "min", "median", "mean", "max"],
               [[f"prompt {unit}", stats["prompt"]["min"], stats["prompt"]["median"], stats["prompt"]["mean"],
                 stats["prompt"]["max"]],
                [f"response {unit}", stats["response"]["min"], stats["response"]["median"], stats["response"]["mean"],
                 stats["response"]["max"]]])]
    if stats["turns"]:
        blocks.append((["turns per conversation", "examples"], [[k, v] for k, v in stats["turns"].items()]))
    if stats["labels"]:
        ratio = stats["imbalance_ratio"]
        blocks.append(f"Labels (imbalance ratio {ratio if ratio else 'n/a'}: largest over smallest).")
        blocks.append((["label", "examples"], [[k, v] for k, v in stats["labels"].items()]))
    if len(stats["sources"]) > 1 or weights:
        total = sum(stats["sources"].values()) or 1
        blocks.append((["source", "examples", "weight", "share"],
                       [[source, count, weights.get(source, 1.0), f"{count / total:.1%}"]
                        for source, count in stats["sources"].items()]))
    sampled = stats["ngram_examples"] < stats["examples"]
    sample = f" over the first {stats['ngram_examples']:,} examples" if sampled else ""
    estimate = (f" (estimated: past {EXACT_WORDS:,} words the count is a HyperLogLog sketch, within about 2%)"
                if stats["vocabulary_estimated"] else "")
    blocks.append(f"Vocabulary: {_vocabulary(stats, ',')} distinct words{estimate}. Top n-grams{sample}:")
    for n, grams in stats["top_ngrams"].items():
        if grams:
            blocks.append(([f"{n}-gram", "count"], grams))
    return blocks


def _vocabulary(stats: dict, spec: str) -> str:
    return f"{'about ' if stats['vocabulary_estimated'] else ''}{stats['vocabulary']:{spec}}"


# --- Markdown ------------------------------------------------------------------------------------------


def render_markdown(report: dict) -> str:
    lines = [f"# {report['title']}", ""]
    for heading, blocks in _sections(report):
        lines += [f"## {heading}", ""]
        for block in blocks:
            lines += ([block, ""] if isinstance(block, str) else [*_md_table(*block), ""])
    return "\n".join(lines)


def _md_table(header: list, rows: list) -> list[str]:
    cell = lambda value: str(value).replace("|", "\\|").replace("\n", "<br>")  # noqa: E731
    return ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(map(cell, row)) + " |" for row in rows)]


# --- HTML ----------------------------------------------------------------------------------------------

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}"
          "table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;"
          "vertical-align:top;text-align:left;white-space:pre-wrap}th{background:#f3f3f3}img{max-width:100%}")


def render_html(report: dict) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(report['title'])}</title>"
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(report['title'])}</h1>"]
    for heading, blocks in _sections(report):
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if heading == "Statistics":
            parts += [f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
                      for alt, png in _plots(report)]
        for block in blocks:
            parts.append(f"<p>{html.escape(block)}</p>" if isinstance(block, str) else _html_table(*block))
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_table(header: list, rows: list) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _plots(report: dict) -> list[tuple[str, bytes]]:
    from tunesmith.data.prepare.plots import bars_png, histogram_png

    unit, splits, overall = report["unit"], report["splits"], report["overall"]
    plots = [
        ("prompt lengths", histogram_png({n: s["prompt"]["histogram"] for n, s in splits.items()},
                                         f"prompt length ({unit})", unit)),
        ("response lengths", histogram_png({n: s["response"]["histogram"] for n, s in splits.items()},
                                           f"response length ({unit})", unit)),
    ]
    if overall["turns"]:
        plots.append(("turns", bars_png(overall["turns"], "turns per conversation", "turns")))
    if overall["labels"]:
        plots.append(("labels", bars_png(overall["labels"], "label distribution", "label")))
    return plots
