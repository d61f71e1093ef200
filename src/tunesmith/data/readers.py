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

Files are streamed (`iter_records`): memory stays bounded by the largest record, never the file. Hostile
input gets a message instead of a traceback or an unbounded read: a line over `max_line_bytes` is measured
and skipped without being held, JSON nested deeper than MAX_DEPTH is refused before Python's recursion
limit is reached, and invalid UTF-8 is named by line and column. A problem with one line of a JSON Lines
file leaves the other lines readable; in other files it ends the file (`ReadProblem.fatal`), because the
rows after it cannot be located reliably.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tunesmith.config.prepare import MAX_LINE_BYTES
from tunesmith.errors import DataError

SUPPORTED_EXTENSIONS = (".jsonl", ".json", ".csv", ".parquet", ".txt")
MAX_DEPTH = 100  # JSON nesting; chat records need 4 levels, Python's parser overflows near 1,000
PARQUET_BATCH_ROWS = 1024
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Record:
    source: str  # file path as the user wrote it
    line: int  # 1-based line number, or 1-based row index when unit == "row"
    data: dict
    unit: str = "line"  # "row" for JSON arrays and Parquet, where line numbers mean nothing

    @property
    def where(self) -> str:
        return location(self.source, self.line, self.unit)


@dataclass(frozen=True)
class ReadProblem:
    """A line or row that could not be read as a record; `fatal` when the rest of the file cannot be read."""

    source: str
    line: int
    message: str  # what is wrong and what would be right, without the location
    unit: str = "line"
    fatal: bool = False

    @property
    def where(self) -> str:
        return location(self.source, self.line, self.unit) if self.line else self.source

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


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


def read_records(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES) -> list[Record]:
    """Every record of a file; the first problem is an error (data prepare quarantines them instead)."""
    records = []
    for item in iter_records(path, max_line_bytes):
        if isinstance(item, ReadProblem):
            raise DataError(str(item))
        records.append(item)
    if not records:
        raise DataError(f"{path}: the file is empty; it holds no records")
    return records


def iter_records(path: str | Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Record | ReadProblem]:
    """The file's records in order, with a ReadProblem in place of each unreadable line or row.

    A missing file, a folder or an unknown extension is an error at once; an empty file yields nothing.
    """
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
    if path.stat().st_size:
        yield from reader(path, source, max_line_bytes)


# --- lines ---------------------------------------------------------------------------------------------


@dataclass
class _Line:
    number: int
    text: str | None  # None when the line was too long or not UTF-8 (problem says which)
    problem: str | None
    ended: bool  # the line had its line end; only a file's last line may lack one


def _lines(path: Path, limit: int) -> Iterator[_Line]:
    """The file's lines, decoded one at a time; a line longer than `limit` bytes is drained, never held."""
    with open(path, "rb") as handle:
        number = 0
        while chunk := handle.readline(limit + 1):
            number += 1
            if number == 1 and chunk.startswith(BOM):
                chunk = chunk[len(BOM):]
            if len(chunk) > limit and not chunk.endswith(b"\n"):
                size = len(chunk)
                while chunk and not chunk.endswith(b"\n"):
                    chunk = handle.readline(2**20)
                    size += len(chunk)
                yield _Line(number, None, _too_long(size - chunk.endswith(b"\n"), limit), True)
                continue
            try:
                yield _Line(number, chunk.decode("utf-8"), None, chunk.endswith(b"\n"))
            except UnicodeDecodeError as error:
                yield _Line(number, None, _not_utf8(chunk, error.start), chunk.endswith(b"\n"))


def _too_long(size: int, limit: int) -> str:
    return (
        f"line too long: {size:,} bytes, over the limit of {limit:,} bytes for one record; split the record, "
        "or raise data.prepare.max_line_bytes if it is meant to be this large"
    )


def _not_utf8(data: bytes, start: int) -> str:
    line_start = data.rfind(b"\n", 0, start) + 1
    column = len(data[line_start:start].decode("utf-8", errors="replace")) + 1
    return f"not valid UTF-8 text (byte 0x{data[start]:02x} at column {column}); save the file as UTF-8"


def _fatal(line: _Line, source: str) -> ReadProblem:
    return ReadProblem(source, line.number, line.problem, fatal=True)


# --- JSON ----------------------------------------------------------------------------------------------


class _TooDeep(Exception):
    pass


def _loads(text: str) -> object:
    try:
        value = json.loads(text)
    except RecursionError:
        raise _TooDeep from None
    # Nesting needs a bracket per level, so only text with more brackets than the limit is walked.
    if text.count("[") + text.count("{") > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        raise _TooDeep
    return value


def _deeper_than(value: object, limit: int) -> bool:
    # Iterative, so checking a deep value cannot itself overflow the stack.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


_TOO_DEEP = f"invalid JSON (nested more than {MAX_DEPTH} levels deep); records need only a few levels, flatten it"


def _json_error(error: json.JSONDecodeError) -> str:
    # Some of json's messages end in "at" ("Unterminated string starting at"): the column completes them.
    return f"{error.msg} {'' if error.msg.endswith(' at') else 'at '}column {error.colno}"


def _json_line(line: _Line, source: str) -> Record | ReadProblem | None:
    if line.problem:
        return ReadProblem(source, line.number, line.problem)
    if not line.text.strip():
        return None
    try:
        value = _loads(line.text.rstrip("\r\n"))
    except _TooDeep:
        return ReadProblem(source, line.number, _TOO_DEEP)
    except json.JSONDecodeError as error:
        cut = "" if line.ended else "; the last line has no line end, so the file may be cut short"
        return ReadProblem(source, line.number, f"invalid JSON ({_json_error(error)}){cut}")
    return _object_record(value, source, line.number, "line")


def _read_jsonl(path: Path, source: str, limit: int) -> Iterator[Record | ReadProblem]:
    # Lines end at "\n" only: str.splitlines would also split on U+2028, which JSON strings may hold raw.
    for line in _lines(path, limit):
        item = _json_line(line, source)
        if item is not None:
            yield item


def _read_json(path: Path, source: str, limit: int) -> Iterator[Record | ReadProblem]:
    with open(path, "rb") as handle:
        head = handle.read(64).removeprefix(BOM).lstrip()
    size = path.stat().st_size
    if head.startswith(b"[") and size > limit:
        yield ReadProblem(
            source, 0, f"a JSON array of {size:,} bytes is over the limit of {limit:,} bytes that is read at once; "
            "save the records as JSON Lines (.jsonl), one object per line, which is read line by line (or raise "
            "data.prepare.max_line_bytes)", fatal=True)
        return
    if head.startswith(b"[") or size <= limit:
        document = _json_document(path, source)
        if document is not None:
            yield from document
            return
    yield from _read_jsonl(path, source, limit)


def _json_document(path: Path, source: str) -> list[Record | ReadProblem] | None:
    """The records of a whole-file JSON array or object, or None for JSON lines saved as .json."""
    data = path.read_bytes().removeprefix(BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return [ReadProblem(source, data.count(b"\n", 0, error.start) + 1, _not_utf8(data, error.start), fatal=True)]
    try:
        value = _loads(text)
    except _TooDeep:
        return [ReadProblem(source, 1, _TOO_DEEP, fatal=True)]
    except json.JSONDecodeError as error:
        if not text.lstrip().startswith("["):
            return None
        cut = "; the file ends before the array is closed, so it may be cut short" if error.pos >= len(
            text.rstrip()) else ""
        return [ReadProblem(source, error.lineno, f"invalid JSON ({_json_error(error)}){cut}", fatal=True)]
    if isinstance(value, list):
        return [_object_record(item, source, row, "row") for row, item in enumerate(value, start=1)]
    return [_object_record(value, source, 1, "line")]


def _object_record(value: object, source: str, line: int, unit: str) -> Record | ReadProblem:
    if not isinstance(value, dict):
        return ReadProblem(source, line, f"expected a JSON object ({{...}}) for each record, got {json_type(value)}",
                           unit)
    return Record(source, line, value, unit)


# --- CSV -----------------------------------------------------------------------------------------------


class _Stop(Exception):
    def __init__(self, problem: ReadProblem):
        self.problem = problem


def _csv_lines(path: Path, source: str, limit: int) -> Iterator[str]:
    for line in _lines(path, limit):
        if line.problem:
            raise _Stop(_fatal(line, source))
        yield line.text


def _read_csv(path: Path, source: str, limit: int) -> Iterator[Record | ReadProblem]:
    # strict: a quote left open (a cut-off file) or a stray quote is an error, not a silently merged row.
    csv.field_size_limit(max(limit, csv.field_size_limit()))  # a long text value is fine up to the record limit
    reader = csv.reader(_csv_lines(path, source, limit), strict=True)
    start = 1
    try:
        header = [name.strip() for name in next(reader, [])]
        duplicate = _duplicate(header)
        if duplicate:
            yield ReadProblem(source, 1, f"duplicate column '{duplicate}' in the header; column names must be unique",
                              fatal=True)
            return
        start = reader.line_num + 1  # a quoted value may span lines; report the line its row starts on
        for row in reader:
            if row:  # csv yields [] for blank lines
                if len(row) != len(header):
                    yield ReadProblem(source, start,
                                      f"this row has {len(row)} values but the header has {len(header)} columns")
                else:
                    yield Record(source, start, dict(zip(header, row)))
            start = reader.line_num + 1
    except _Stop as stop:
        yield stop.problem
    except csv.Error as error:
        if str(error) == "unexpected end of data":
            yield ReadProblem(source, start, "invalid CSV (a quoted value that starts in this row is never closed; "
                              "the file may be cut short, or a closing quote is missing)", fatal=True)
        else:
            yield ReadProblem(source, reader.line_num, f"invalid CSV ({error})", fatal=True)


def _duplicate(header: list[str]) -> str | None:
    seen = set()
    for name in header:
        if name in seen:
            return name
        seen.add(name)
    return None


# --- Parquet -------------------------------------------------------------------------------------------


def _read_parquet(path: Path, source: str, limit: int) -> Iterator[Record | ReadProblem]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for data in batch.to_pylist():
                row += 1
                yield Record(source, row, data, "row")
    except (pa.ArrowException, OSError) as error:
        yield ReadProblem(source, 0, f"not a readable Parquet file ({error})", fatal=True)


# --- plain text ----------------------------------------------------------------------------------------


def _read_txt(path: Path, source: str, limit: int) -> Iterator[Record | ReadProblem]:
    paragraph: list[str] = []
    first = 0
    for line in _lines(path, limit):
        if line.problem:
            yield _fatal(line, source)
            return
        if line.text.strip():
            first = first or line.number
            paragraph.append(line.text.removesuffix("\n").removesuffix("\r"))
        elif paragraph:
            yield Record(source, first, {"text": "\n".join(paragraph).rstrip()})
            paragraph, first = [], 0
    if paragraph:
        yield Record(source, first, {"text": "\n".join(paragraph).rstrip()})


_READERS = {
    ".jsonl": _read_jsonl,
    ".json": _read_json,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
    ".txt": _read_txt,
}
