"""Format detection, conversion to Examples, and the validation errors people read, word for word."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunesmith.data.formats import Example, detect_format, load_examples
from tunesmith.data.readers import Record
from tunesmith.errors import DataError

USER = {"role": "user", "content": "How long do I boil an egg?"}
ASSISTANT = {"role": "assistant", "content": "Nine minutes for hard-boiled."}


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def write_jsonl(name: str, *records) -> str:
    with open(name, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(record) + "\n" for record in records)
    return name


def chat(*messages) -> dict:
    return {"messages": list(messages)}


def error(*records, format="auto", name="train.jsonl") -> str:
    write_jsonl(name, *records)
    with pytest.raises(DataError) as caught:
        load_examples(name, format)
    return str(caught.value)


def records(*datas) -> list[Record]:
    return [Record("val.jsonl", i, data) for i, data in enumerate(datas, start=1)]


@pytest.mark.parametrize(
    "data, expected",
    [
        (chat(USER, ASSISTANT), "chat"),
        ({"instruction": "a", "input": "", "output": "b"}, "alpaca"),
        ({"prompt": "a", "completion": "b"}, "prompt_completion"),
        ({"text": "a"}, "text"),
        ({"messages": [], "text": "a"}, "chat"),  # messages wins over text
    ],
)
def test_detect_format_by_keys(data, expected):
    assert detect_format(records(data)) == expected


def test_detect_format_rejects_mixed_formats():
    with pytest.raises(DataError) as caught:
        detect_format(records(*[chat(USER, ASSISTANT)] * 6, {"instruction": "a", "output": "b"}))
    assert str(caught.value) == (
        "val.jsonl:7: this record looks like alpaca (instruction/output) but earlier records are chat (messages); "
        "one file must use one format"
    )


def test_detect_format_rejects_unknown_first_record():
    with pytest.raises(DataError) as caught:
        detect_format(records({"question": "a", "answer": "b"}))
    assert str(caught.value) == (
        "val.jsonl:1: cannot tell the data format from this record's fields (answer, question); expected "
        "messages (chat), instruction + output (alpaca), prompt + completion (prompt_completion) or text (text)"
    )


def test_chat_examples_keep_role_and_content_and_their_location():
    system = {"role": "system", "content": "You are a chef."}
    write_jsonl("train.jsonl", chat(system, USER, dict(ASSISTANT, weight=1)), {"messages": [USER, ASSISTANT]})
    examples, fmt = load_examples("train.jsonl")
    assert fmt == "chat"
    assert examples[0] == Example(messages=[system, USER, ASSISTANT], source="train.jsonl", line=1)
    assert examples[1].where == "train.jsonl:2"


def test_alpaca_becomes_chat():
    write_jsonl(
        "train.jsonl",
        {"instruction": "Translate.", "input": "oeuf", "output": "egg", "system": "Be terse."},
        {"instruction": "Say hi.", "input": "  ", "output": "hi"},
        {"instruction": "Say hi.", "output": "hi"},
    )
    examples, fmt = load_examples("train.jsonl")
    assert fmt == "alpaca"
    assert examples[0].messages == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Translate.\n\noeuf"},
        {"role": "assistant", "content": "egg"},
    ]
    expected = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}]
    assert examples[1].messages == examples[2].messages == expected


def test_alpaca_from_parquet_accepts_null_optional_fields():
    rows = [{"instruction": "Say hi.", "input": None, "output": "hi", "system": None}]
    pq.write_table(pa.Table.from_pylist(rows), "data.parquet")
    examples, _ = load_examples("data.parquet")
    assert examples[0].messages == [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}]
    assert examples[0].where == "data.parquet row 1"


def test_prompt_completion_and_text_examples():
    write_jsonl("pc.jsonl", {"prompt": "2+2=", "completion": " 4"})
    write_jsonl("raw.jsonl", {"text": "Eggs are laid by hens."})
    assert load_examples("pc.jsonl") == ([Example(prompt="2+2=", completion=" 4", source="pc.jsonl", line=1)],
                                         "prompt_completion")
    assert load_examples("raw.jsonl")[0][0].text == "Eggs are laid by hens."


def test_csv_prompt_completion_reports_csv_line():
    with open("data.csv", "w") as f:
        f.write("prompt,completion\n2+2=,4\n3+3=,\n")
    with pytest.raises(DataError) as caught:
        load_examples("data.csv")
    assert str(caught.value) == "data.csv:3: completion: empty; it needs some text (whitespace only counts as empty)"


def test_unknown_role():
    bot = {"role": "bot", "content": "hi"}
    assert error(chat(USER, ASSISTANT), chat(USER, ASSISTANT), chat(USER, ASSISTANT, bot, ASSISTANT)) == (
        "train.jsonl:3: messages[2].role: unknown role 'bot'; expected one of system, user, assistant"
    )


def test_empty_content_counts_whitespace_as_empty():
    assert error(chat(USER, {"role": "assistant", "content": " \n\t"})) == (
        "train.jsonl:1: messages[1].content: empty content; user and assistant messages need some text"
    )


def test_empty_system_message_is_allowed():
    write_jsonl("train.jsonl", chat({"role": "system", "content": ""}, USER, ASSISTANT))
    assert len(load_examples("train.jsonl")[0][0].messages) == 3


def test_no_assistant_turn():
    assert error(chat(USER)) == (
        "train.jsonl:1: messages: no assistant turn; each chat example needs at least one assistant message to "
        "learn from"
    )
    assert error(chat()) == error(chat(USER))


def test_last_message_must_be_assistant():
    assert error(chat(USER, ASSISTANT, USER)) == (
        "train.jsonl: 1 of 1 examples needs a repair before training (ending on a user turn: 1); "
        "`tunesmith data prepare train.jsonl --out DIR` repairs them (trailing user turns trimmed, consecutive "
        "turns of one role merged), or set data.prepare in the config to prepare the data on every run\n"
        "first: train.jsonl:1: messages[2].role: the conversation ends with a user message; a chat example must end "
        "with an assistant message (add the reply or drop the trailing messages)"
    )


def test_repairable_chats_are_counted_instead_of_failing_on_the_first():
    good, trailing = chat(USER, ASSISTANT), chat(USER, ASSISTANT, USER)
    repeated, both = chat(USER, USER, ASSISTANT), chat(USER, ASSISTANT, ASSISTANT, USER)
    message = error(good, trailing, repeated, trailing, both)
    assert message == (
        "train.jsonl: 4 of 5 examples need a repair before training (ending on a user turn: 3; two turns of one "
        "role in a row: 2); `tunesmith data prepare train.jsonl --out DIR` repairs them (trailing user turns "
        "trimmed, consecutive turns of one role merged), or set data.prepare in the config to prepare the data on "
        "every run\n"
        "first: train.jsonl:2: messages[2].role: the conversation ends with a user message; a chat example must end "
        "with an assistant message (add the reply or drop the trailing messages)"
    )


def test_repeated_speaker():
    assert error(chat(USER, USER, ASSISTANT)).endswith(
        "first: train.jsonl:1: messages[1].role: two user messages in a row (messages[0] and messages[1]); user and "
        "assistant turns must alternate (merge them into one message)"
    )


def test_a_problem_a_person_must_fix_comes_first_and_repairs_are_still_counted():
    assert error(chat(USER, ASSISTANT, USER), chat(USER)) == (
        "train.jsonl:2: messages: no assistant turn; each chat example needs at least one assistant message to "
        "learn from\n"
        "train.jsonl: 1 of 2 examples needs a repair before training (ending on a user turn: 1); "
        "`tunesmith data prepare train.jsonl --out DIR` repairs them (trailing user turns trimmed, consecutive "
        "turns of one role merged), or set data.prepare in the config to prepare the data on every run"
    )


def test_conversation_cannot_start_with_assistant():
    assert error(chat(ASSISTANT, USER, ASSISTANT)) == (
        "train.jsonl:1: messages[0].role: a conversation cannot start with an assistant message; start with user"
    )


def test_system_message_must_come_first():
    assert error(chat(USER, {"role": "system", "content": "x"}, ASSISTANT)) == (
        "train.jsonl:1: messages[1].role: a system message must come first, as messages[0]; move or merge it"
    )


@pytest.mark.parametrize(
    "data, message",
    [
        ({"messages": "hi"}, "messages: expected a list of messages, got a string"),
        (chat(USER, "hello"), "messages[1]: expected an object with role and content, got a string"),
        (chat(USER, {"role": "assistant"}),
         "messages[1]: missing required field 'content'; each message needs role and content"),
        (chat(USER, {"role": 3, "content": "x"}), "messages[1].role: expected a string, got a number"),
        (chat(USER, {"role": "assistant", "content": ["x"]}), "messages[1].content: expected a string, got a list"),
        ({"instruction": "a", "output": None}, "output: expected a string, got null"),
        ({"instruction": "a", "input": 5, "output": "b"}, "input: expected a string, got a number"),
        ({"prompt": {"x": 1}, "completion": "b"}, "prompt: expected a string, got an object"),
        ({"text": True}, "text: expected a string, got a boolean"),
        ({"instruction": "", "output": "b"}, "instruction: empty; it needs some text (whitespace only counts as empty)"),
    ],
)
def test_wrong_types_and_empty_fields(data, message):
    assert error(data) == f"train.jsonl:1: {message}"


def test_forced_format_names_the_missing_field():
    assert error({"text": "a"}, format="chat") == (
        "train.jsonl:1: missing required field 'messages'; chat records need: messages"
    )


def test_later_record_missing_a_field_of_the_detected_format():
    assert error({"instruction": "a", "output": "b"}, {"instruction": "c"}) == (
        "train.jsonl:2: missing required field 'output'; alpaca records need: instruction, output "
        "(optional: input, system)"
    )


def test_mixed_formats_in_a_file():
    assert error({"prompt": "a", "completion": "b"}, {"text": "c"}, name="val.jsonl") == (
        "val.jsonl:2: this record looks like text (text) but earlier records are prompt_completion "
        "(prompt/completion); one file must use one format"
    )


def test_first_error_is_reported_with_the_count_of_other_bad_records():
    bad = chat(USER)
    assert error(chat(USER, ASSISTANT), bad, bad, {"messages": 1}) == (
        "train.jsonl:2: messages: no assistant turn; each chat example needs at least one assistant message to "
        "learn from\n(2 more invalid records in this file)"
    )
    assert error(bad, bad).endswith("\n(1 more invalid record in this file)")


def test_unknown_format_name():
    assert error({"text": "a"}, format="sharegpt") == (
        "unknown data format 'sharegpt'; expected one of auto, chat, alpaca, prompt_completion, text"
    )
