"""Readers: every file type, record locations, and the errors people see for bad files."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunesmith.data.readers import Record, read_records
from tunesmith.errors import DataError


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    # Run in tmp_path so paths in messages read as users write them: "train.jsonl:12".
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(name: str, text: str) -> str:
    with open(name, "w", encoding="utf-8") as f:
        f.write(text)
    return name


def error(path) -> str:
    with pytest.raises(DataError) as caught:
        read_records(path)
    return str(caught.value)


def test_jsonl_records_keep_their_line_numbers_and_skip_blank_lines():
    write("train.jsonl", '{"text": "a"}\n\n{"text": "b"}\n')
    assert read_records("train.jsonl") == [
        Record("train.jsonl", 1, {"text": "a"}),
        Record("train.jsonl", 3, {"text": "b"}),
    ]


def test_jsonl_keeps_raw_line_separator_characters_inside_strings():
    write("train.jsonl", '{"text": "a\u2028b"}\n')
    assert read_records("train.jsonl")[0].data == {"text": "a\u2028b"}


def test_jsonl_invalid_json_names_line_and_column():
    write("train.jsonl", '{"text": "a"}\n{"a": 1 "b": 2}\n')
    assert error("train.jsonl") == "train.jsonl:2: invalid JSON (Expecting ',' delimiter at column 9)"


def test_jsonl_record_must_be_an_object():
    write("train.jsonl", '{"text": "a"}\n["text", "b"]\n')
    assert error("train.jsonl") == "train.jsonl:2: expected a JSON object ({...}) for each record, got a list"


def test_json_array_records_are_located_by_row():
    write("data.json", json.dumps([{"text": "a"}, {"text": "b"}], indent=2))
    records = read_records("data.json")
    assert [(r.line, r.unit, r.data) for r in records] == [(1, "row", {"text": "a"}), (2, "row", {"text": "b"})]
    assert records[1].where == "data.json row 2"


def test_json_array_element_must_be_an_object():
    write("data.json", '[{"text": "a"}, "b"]')
    assert error("data.json") == "data.json row 2: expected a JSON object ({...}) for each record, got a string"


def test_invalid_json_array_names_line_and_column():
    write("data.json", '[\n  {"text": "a"},\n  {"text" "b"}\n]')
    assert error("data.json") == "data.json:3: invalid JSON (Expecting ':' delimiter at column 11)"


def test_json_file_may_hold_json_lines_or_one_object():
    write("lines.json", '{"text": "a"}\n{"text": "b"}\n')
    assert [(r.line, r.unit) for r in read_records("lines.json")] == [(1, "line"), (2, "line")]
    write("one.json", '{\n  "text": "a"\n}')
    assert read_records("one.json") == [Record("one.json", 1, {"text": "a"})]


def test_csv_lines_count_the_header_and_multiline_values():
    write("data.csv", 'prompt, completion\n"two\nlines",x\n\nq,"a, b"\n')
    records = read_records("data.csv")
    assert [(r.line, r.data) for r in records] == [
        (2, {"prompt": "two\nlines", "completion": "x"}),
        (5, {"prompt": "q", "completion": "a, b"}),
    ]


def test_csv_row_with_wrong_number_of_values():
    write("data.csv", "prompt,completion\na,b\nc,d,e\n")
    assert error("data.csv") == "data.csv:3: this row has 3 values but the header has 2 columns"


def test_csv_duplicate_header_column():
    write("data.csv", "text,text\na,b\n")
    assert error("data.csv") == "data.csv:1: duplicate column 'text' in the header; column names must be unique"


def test_parquet_rows_keep_nested_columns():
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    pq.write_table(pa.Table.from_pylist([{"messages": messages, "id": 7}, {"messages": messages, "id": 8}]),
                   "data.parquet")
    records = read_records("data.parquet")
    assert records[1] == Record("data.parquet", 2, {"messages": messages, "id": 8}, "row")
    assert records[1].where == "data.parquet row 2"


def test_unreadable_parquet():
    write("data.parquet", "not parquet at all")
    assert error("data.parquet").startswith("data.parquet: not a readable Parquet file (")


def test_txt_gives_one_record_per_paragraph_at_its_first_line():
    write("book.txt", "First para\ncontinues.\n\n  \nSecond.\n\n\nThird  \n")
    assert [(r.line, r.data["text"]) for r in read_records("book.txt")] == [
        (1, "First para\ncontinues."),
        (5, "Second."),
        (8, "Third"),
    ]


def test_missing_file():
    assert error("nope.jsonl") == "data file not found: nope.jsonl"


def test_directory_is_not_a_data_file(workdir):
    (workdir / "folder.jsonl").mkdir()
    assert error("folder.jsonl") == "folder.jsonl: is a directory; expected a data file"


def test_unsupported_extension():
    write("data.xlsx", "x")
    assert error("data.xlsx") == (
        "data.xlsx: unsupported data file type '.xlsx'; supported: .jsonl, .json, .csv, .parquet, .txt"
    )


@pytest.mark.parametrize(
    "name, text",
    [("a.jsonl", ""), ("b.jsonl", "\n  \n"), ("c.json", "[]"), ("d.csv", "text\n"), ("e.txt", "\n\n"),
     ("f.parquet", "")],
)
def test_empty_files(name, text):
    write(name, text)
    assert error(name) == f"{name}: the file is empty; it holds no records"


def test_invalid_utf8(workdir):
    (workdir / "train.jsonl").write_bytes(b'{"text": "a"}\n{"text": "caf\xe9"}\n')
    assert error("train.jsonl") == (
        "train.jsonl:2: not valid UTF-8 text (byte 0xe9 at column 14); save the file as UTF-8"
    )


def test_utf8_byte_order_mark_is_ignored(workdir):
    (workdir / "data.csv").write_bytes("\ufefftext\nhello\n".encode())
    assert read_records("data.csv")[0].data == {"text": "hello"}
