"""What the data checks say about an uploaded file: every problem with its line, and the data report (an image
archive: what it holds, or why it was refused; it has no data report).

The report is the one `tunesmith data report` writes (personal data redacted before anything is counted), made on
first view and kept beside the other reports until the file is deleted. The storage path in both is replaced by the
file's name, so a page never shows where files live.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import uuid
from dataclasses import dataclass
from html import escape
from pathlib import Path

from tunesmith.errors import DataError
from tunesmith.serve.archives import count_images
from tunesmith.serve.files import data_report_path, file_path, images_path, is_image_archive
from tunesmith.serve.settings import ServeSettings
from tunesmith.serve.tables import StoredFile

# One report at a time: each takes seconds of CPU, and a second request for the same file waits for the first.
_building = threading.Lock()


@dataclass(frozen=True)
class FileCheck:
    summary: str
    problems: list[str]


def check(settings: ServeSettings, row: StoredFile) -> FileCheck:
    if is_image_archive(row):
        return _archive_check(settings, row)
    from tunesmith.data.prepare.check import check_file

    source = str(file_path(settings, row))
    try:
        result = check_file(source)
    except DataError as error:  # unreadable as a whole (e.g. a broken parquet file)
        return FileCheck(str(error).replace(source, row.filename), [])
    return FileCheck(result.summary().replace(source, row.filename),
                     [line.replace(source, row.filename) for line in result.problems.lines()])


def _archive_check(settings: ServeSettings, row: StoredFile) -> FileCheck:
    """An image archive was checked as it was unpacked: what it holds, or what was wrong with it."""
    if row.status == "error":
        return FileCheck(row.status_details or f"{row.filename}: not usable", [])
    return FileCheck(count_images(images_path(settings, row)).summary(row.filename), [])


def report_html(settings: ServeSettings, row: StoredFile) -> str:
    target = data_report_path(settings, row)
    with _building:
        if not target.is_file():
            try:
                _build(settings, row, target)
            except DataError as error:  # nothing to measure: say why instead of a report
                shown = str(error).replace(str(file_path(settings, row)), row.filename)
                return f"<!doctype html><p>{escape(shown)}</p>"
    return target.read_text(encoding="utf-8")


def _build(settings: ServeSettings, row: StoredFile, target: Path) -> None:
    from tunesmith.data.prepare.report import render_html
    from tunesmith.data.prepare.report_only import report_file

    source = file_path(settings, row)
    with tempfile.TemporaryDirectory(dir=settings.reports_dir) as scratch:
        report = report_file(source, Path(scratch))
    shown = json.loads(json.dumps(report).replace(json.dumps(str(source))[1:-1], json.dumps(row.filename)[1:-1]))
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    temp.write_text(render_html(shown), encoding="utf-8")
    os.replace(temp, target)  # a reader never sees half a report
