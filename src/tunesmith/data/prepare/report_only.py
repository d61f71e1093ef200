"""`tunesmith data report`: the report alone, for a raw data file or a prepared folder.

A raw file is checked (bad records counted, not repaired) and its valid examples measured; their text is
redacted before any n-gram is counted, so the report never shows personal data. A prepared folder is
measured from its split files, keeping the step counts of the report its preparation wrote.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tunesmith.config.prepare import PiiSettings, ReportSettings
from tunesmith.data.prepare.cache import MANIFEST, read_manifest
from tunesmith.data.prepare.check import Checked, FormatTracker, Issue, check_records, problem_kind
from tunesmith.data.prepare.examples import output_format, text_fields, with_texts
from tunesmith.data.prepare.lengths import LengthCounter
from tunesmith.data.prepare.report import write_report
from tunesmith.data.prepare.split import SPLITS_IN_ORDER
from tunesmith.data.prepare.stats import SplitStats
from tunesmith.errors import DataError

LABEL_FIELD = "label"  # what a raw file's labels are read from (data.prepare.split.stratify_by's default)


def report_file(path: str | Path, out: Path, format: str = "auto", tokenizer=None,
                settings: ReportSettings | None = None, pii: PiiSettings | None = None) -> dict:
    from tunesmith.data.prepare.pii import Redactor

    settings, pii = settings or ReportSettings(), pii or PiiSettings()
    redactor = Redactor(pii) if pii.enabled else None
    counter, stats, tracker = LengthCounter(tokenizer), SplitStats(settings), FormatTracker(format)
    records, reasons = 0, Counter()
    for item in check_records(path, tracker):
        records += 1
        if isinstance(item, Issue):
            if item.fatal:
                raise DataError(str(item))
            reasons[problem_kind(item.message)] += 1
            continue
        example = item.example
        if redactor:
            example = with_texts(example, [redactor.redact(text)[0] for _, text in text_fields(example)])
        stats.add(example, counter.measure(example), item.record.data.get(LABEL_FIELD), str(path))
    if not records:
        raise DataError(f"{path}: the file is empty; it holds no records")
    summary = stats.summary()
    report = {
        "title": f"Data report: {path}", "format": output_format(tracker.format) if tracker.format else None,
        "unit": counter.unit,
        "inputs": [{"path": str(path), "role": "file", "weight": 1.0, "records": records, "kept": stats.examples}],
        "weights": {}, "steps": {"check": {"records": records, "invalid": sum(reasons.values()), "quarantine": None,
                                           "reasons": dict(reasons.most_common()), "samples": []}},
        "splits": {"all": summary}, "overall": summary,
    }
    write_report(out, report, settings)
    return report


def report_folder(folder: Path, out: Path, tokenizer=None, settings: ReportSettings | None = None) -> dict:
    manifest = read_manifest(folder)
    if manifest is None:
        raise DataError(f"{folder}: not a prepared folder (no {MANIFEST}); pass a data file, or a folder written by "
                        "tunesmith data prepare")
    settings = settings or ReportSettings()
    earlier = json.loads((folder / "report.json").read_text()) if (folder / "report.json").is_file() else {}
    counter, overall, splits = LengthCounter(tokenizer), SplitStats(settings), {}
    label_field = manifest.get("label_field")
    for split in SPLITS_IN_ORDER:
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            continue
        stats = SplitStats(settings, ngrams=False)
        for item in check_records(path, FormatTracker(manifest["format"])):
            if isinstance(item, Checked):
                label = item.record.data.get(label_field) if label_field else None
                for target in (stats, overall):
                    target.add(item.example, counter.measure(item.example), label, split)
        splits[split] = stats.summary()
    report = {
        "title": earlier.get("title", "Data preparation report"), "format": manifest["format"],
        "unit": counter.unit, "inputs": earlier.get("inputs", []), "weights": earlier.get("weights", {}),
        "steps": earlier.get("steps") or {"check": {"records": 0, "invalid": 0, "quarantine": None, "reasons": {},
                                                    "samples": []}},
        "splits": splits, "overall": overall.summary(),
    }
    write_report(out, report, settings)
    return report
