"""Read data files into records that remember where they came from, so later errors can name file and line.

Supported files (chosen by extension, case-insensitive):
- .jsonl   one JSON object per line; blank lines are skipped; located by line number.
- .json    a JSON array of objects (located by 1-based row), a single object, or JSON lines saved as .json.
- .csv     a header row, then one record per row; every value is a string; located by the line the row
           starts on (the header is line 1).
- .parquet one record per row (nested columns keep their structure); located by 1-based row.
- .txt     plain text for continued pre-training: one {"text": ...} record per paragraph (paragraphs are
           separated by blank lines), located by the paragraph's first line. Whole files are never one
           record, so a long book does not become a single example that truncation would mostly discard.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from tunesmith.errors import DataError

SUPPORTED_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet", ".txt")

_PARAGRAPH = re.compile(r"(?:^[ \t]*\S.*(?:\n|$))+", re.MULTILINE)


@dataclass(frozen=True)
class Record:
    source: str  # file path as the user wrote it
    line: int  # 1-based line number, or 1-based row index when unit == "row"
    data: dict
    unit: str = "line"  # "row" for JSON arrays and Parquet, where line numbers mean nothing

    @property
    def where(self) -> str:
        return location(self.source, self.line, self.unit)


def location(source: str, line: int, unit: str = "line") -> str:
    """How messages point at a record: 'train.jsonl:12' for lines, 'train.parquet row 12' for rows."""
    if not source:
        return "example"
    return f"{source}:{line}" if unit == "line" else f"{source} row {line}"


def json_type(value: object) -> str:
    """A value's type in JSON words, for messages people read ('a list', 'null')."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def read_records(path: str | Path) -> list[Record]:
    source = str(path)
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {source}")
    if path.is_dir():
        raise DataError(f"{source}: is a directory; expected a data file")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        suffix = path.suffix or "(no extension)"
        raise DataError(
            f"{source}: unsupported data file type '{suffix}'; supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    records = reader(path, source) if path.stat().st_size else []
    if not records:
        raise DataError(f"{source}: the file is empty; it holds no records")
    return records


def _read_text(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{source}: not valid UTF-8 text (byte {error.start}); save the file as UTF-8") from None


def _read_jsonl(path: Path, source: str) -> list[Record]:
    return _parse_json_lines(_read_text(path, source), source)


def _parse_json_lines(text: str, source: str) -> list[Record]:
    # Split on "\n" only: str.splitlines would also split on U+2028, which JSON strings may hold raw.
    records = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{source}:{number}: invalid JSON ({error.msg} at column {error.colno})") from None
        records.append(_object_record(value, source, number, "line"))
    return records


def _read_json(path: Path, source: str) -> list[Record]:
    text = _read_text(path, source)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        if text.lstrip().startswith("["):
            raise DataError(f"{source}:{error.lineno}: invalid JSON ({error.msg} at column {error.colno})") from None
        return _parse_json_lines(text, source)
    if isinstance(value, list):
        return [_object_record(item, source, row, "row") for row, item in enumerate(value, start=1)]
    return [_object_record(value, source, 1, "line")]


def _object_record(value: object, source: str, line: int, unit: str) -> Record:
    if not isinstance(value, dict):
        where = location(source, line, unit)
        raise DataError(f"{where}: expected a JSON object ({{...}}) for each record, got {json_type(value)}")
    return Record(source, line, value, unit)


def _read_csv(path: Path, source: str) -> list[Record]:
    reader = csv.reader(io.StringIO(_read_text(path, source)))
    try:
        header = [name.strip() for name in next(reader, [])]
        _check_header(header, source)
        records = []
        start = reader.line_num + 1  # a quoted value may span lines; report the line its row starts on
        for row in reader:
            if row:  # csv yields [] for blank lines
                if len(row) != len(header):
                    raise DataError(
                        f"{source}:{start}: this row has {len(row)} values but the header has {len(header)} columns"
                    )
                records.append(Record(source, start, dict(zip(header, row))))
            start = reader.line_num + 1
    except csv.Error as error:
        raise DataError(f"{source}:{reader.line_num}: invalid CSV ({error})") from None
    return records


def _check_header(header: list[str], source: str) -> None:
    seen = set()
    for name in header:
        if name in seen:
            raise DataError(f"{source}:1: duplicate column '{name}' in the header; column names must be unique")
        seen.add(name)


def _read_parquet(path: Path, source: str) -> list[Record]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"{source}: not a readable Parquet file ({error})") from None
    return [Record(source, row, data, "row") for row, data in enumerate(rows, start=1)]


def _read_txt(path: Path, source: str) -> list[Record]:
    text = _read_text(path, source)
    return [
        Record(source, text.count("\n", 0, match.start()) + 1, {"text": match.group().rstrip()})
        for match in _PARAGRAPH.finditer(text)
    ]


_READERS = {
    ".jsonl": _read_jsonl,
    ".json": _read_json,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
    ".txt": _read_txt,
}
