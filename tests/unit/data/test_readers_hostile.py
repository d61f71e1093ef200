"""Hostile data files: each is refused or handled with one clear message, in bounded memory and time.

The huge cases are small but equivalent: a line over a lowered max_line_bytes stands for a 1 GB line, since
the reader treats both alike (it measures the line while draining it and never holds more than the limit).
"""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunesmith.data.formats import load_examples
from tunesmith.data.prepare.check import check_file
from tunesmith.data.readers import iter_records, read_records
from tunesmith.errors import DataError


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def error(path, **kwargs) -> str:
    with pytest.raises(DataError) as caught:
        read_records(path, **kwargs)
    return str(caught.value)


def test_a_jsonl_file_cut_in_the_middle_of_its_last_line(workdir):
    (workdir / "train.jsonl").write_text('{"text": "a"}\n{"text": "b"}\n{"text": "cut he')
    assert error("train.jsonl") == (
        "train.jsonl:3: invalid JSON (Unterminated string starting at column 10); the last line has "
        "no line end, so the file may be cut short"
    )


def test_a_json_array_cut_short(workdir):
    (workdir / "data.json").write_text('[\n  {"text": "a"},\n  {"text": "b"')
    assert error("data.json") == (
        "data.json:3: invalid JSON (Expecting ',' delimiter at column 15); the file ends before the array is "
        "closed, so it may be cut short"
    )


def test_a_csv_cut_inside_a_quoted_value(workdir):
    (workdir / "data.csv").write_text('prompt,completion\na,b\n"c,multi\nline value never closed\n')
    assert error("data.csv") == (
        "data.csv:3: invalid CSV (a quoted value that starts in this row is never closed; the file may be cut "
        "short, or a closing quote is missing)"
    )


def test_a_parquet_file_cut_short(workdir):
    pq.write_table(pa.Table.from_pylist([{"text": f"row {i}"} for i in range(100)]), "data.parquet")
    data = (workdir / "data.parquet").read_bytes()
    (workdir / "data.parquet").write_bytes(data[: len(data) // 2])
    assert error("data.parquet").startswith("data.parquet: not a readable Parquet file (")


@pytest.mark.parametrize("name, content, expected", [
    ("train.jsonl", b'{"text": "ok"}\n{"text": "na\xefve"}\n',
     "train.jsonl:2: not valid UTF-8 text (byte 0xef at column 13); save the file as UTF-8"),
    ("data.csv", b"text\nfine\ncaf\xe9 au lait\n",
     "data.csv:3: not valid UTF-8 text (byte 0xe9 at column 4); save the file as UTF-8"),
    ("book.txt", b"First paragraph.\n\nSecond \xff paragraph.\n",
     "book.txt:3: not valid UTF-8 text (byte 0xff at column 8); save the file as UTF-8"),
    ("data.json", b'[\n {"text": "a"},\n {"text": "\xc3"}\n]',
     "data.json:3: not valid UTF-8 text (byte 0xc3 at column 12); save the file as UTF-8"),
])
def test_invalid_utf8_is_named_by_line_and_column(workdir, name, content, expected):
    (workdir / name).write_bytes(content)
    assert error(name) == expected


def test_latin1_text_after_a_utf8_byte_order_mark(workdir):
    (workdir / "train.jsonl").write_bytes(b'\xef\xbb\xbf{"text": "a"}\n{"text": "\xe9t\xe9"}\n')
    assert error("train.jsonl") == (
        "train.jsonl:2: not valid UTF-8 text (byte 0xe9 at column 11); save the file as UTF-8"
    )


def test_a_line_over_the_limit_is_measured_skipped_and_named(workdir):
    # Stands for a 1 GB single line: the reader drains it in 1 MiB reads and keeps only its size.
    with open("train.jsonl", "w") as handle:
        handle.write('{"text": "before"}\n{"text": "' + "x" * 5000 + '"}\n{"text": "after"}\n')
    items = list(iter_records("train.jsonl", max_line_bytes=1024))
    assert [getattr(item, "data", None) for item in items] == [{"text": "before"}, None, {"text": "after"}]
    assert str(items[1]) == (
        "train.jsonl:2: line too long: 5,012 bytes, over the limit of 1,024 bytes for one record; split the record, "
        "or raise data.prepare.max_line_bytes if it is meant to be this large"
    )


def test_a_huge_line_in_a_csv_or_text_file_stops_the_file(workdir):
    (workdir / "book.txt").write_text("intro\n\n" + "y" * 3000 + "\n")
    assert error("book.txt", max_line_bytes=1024) == (
        "book.txt:3: line too long: 3,000 bytes, over the limit of 1,024 bytes for one record; split the record, "
        "or raise data.prepare.max_line_bytes if it is meant to be this large"
    )


def test_a_json_array_over_the_limit_is_not_loaded(workdir):
    (workdir / "data.json").write_text(json.dumps([{"text": "z" * 100} for _ in range(30)]))
    assert error("data.json", max_line_bytes=1024) == (
        "data.json: a JSON array of 3,420 bytes is over the limit of 1,024 bytes that is read at once; save the "
        "records as JSON Lines (.jsonl), one object per line, which is read line by line (or raise "
        "data.prepare.max_line_bytes)"
    )


@pytest.mark.parametrize("depth", [5000, 150])
def test_deeply_nested_json_is_refused_without_a_recursion_error(workdir, depth):
    (workdir / "train.jsonl").write_text('{"text": "a"}\n{"text": ' + "[" * depth + "]" * depth + "}\n")
    assert error("train.jsonl") == (
        "train.jsonl:2: invalid JSON (nested more than 100 levels deep); records need only a few levels, flatten it"
    )
    (workdir / "data.json").write_text("[" * depth + "]" * depth)
    assert error("data.json") == (
        "data.json:1: invalid JSON (nested more than 100 levels deep); records need only a few levels, flatten it"
    )


def test_a_hundred_thousand_tiny_rows(workdir):
    (workdir / "train.jsonl").write_text('{"text": "a"}\n' * 100_000)
    examples, fmt = load_examples("train.jsonl")
    assert fmt == "text" and len(examples) == 100_000 and examples[-1].where == "train.jsonl:100000"


def test_csv_with_embedded_newlines_quotes_and_delimiters(workdir):
    (workdir / "data.csv").write_bytes(
        b'prompt,completion\r\n"Say ""hi""\r\nto her","ok, then\nbye"\r\nplain,"a ""quoted"" word"\r\n')
    records = read_records("data.csv")
    assert [(r.line, r.data) for r in records] == [
        (2, {"prompt": 'Say "hi"\r\nto her', "completion": "ok, then\nbye"}),
        (5, {"prompt": "plain", "completion": 'a "quoted" word'}),
    ]


def test_a_stray_quote_in_csv(workdir):
    (workdir / "data.csv").write_text('prompt,completion\n"a"b,c\n')
    assert error("data.csv") == "data.csv:2: invalid CSV (',' expected after '\"')"


def test_parquet_with_wrong_column_types_gets_one_message_per_kind_of_mistake(workdir):
    pq.write_table(pa.Table.from_pylist([{"prompt": i, "completion": f"answer {i}"} for i in range(10_000)]),
                   "data.parquet")
    result = check_file("data.parquet", format="prompt_completion")
    assert result.problems.lines() == [
        "data.parquet row 1: prompt: expected a string, got a number",
        "data.parquet row 2: prompt: expected a string, got a number",
        "data.parquet row 3: prompt: expected a string, got a number",
        "  ... and 9,997 more records with this problem",
        "data.parquet: only 0 valid examples; a split into train, validation and test needs at least 3",
    ]
    with pytest.raises(DataError) as caught:
        load_examples("data.parquet")
    assert str(caught.value) == (
        "data.parquet row 1: prompt: expected a string, got a number\n(9999 more invalid records in this file)"
    )


def test_parquet_with_nested_messages_of_the_wrong_type(workdir):
    rows = [{"messages": [{"role": "user", "content": 1}, {"role": "assistant", "content": 2}]}]
    pq.write_table(pa.Table.from_pylist(rows), "chat.parquet")
    with pytest.raises(DataError) as caught:
        load_examples("chat.parquet")
    assert str(caught.value) == "chat.parquet row 1: messages[0].content: expected a string, got a number"
