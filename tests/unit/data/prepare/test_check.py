"""`check_file`: every problem of a crafted bad file, word for word, in one pass."""

import json

from tunesmith.config.prepare import SplitSettings
from tunesmith.data.prepare.check import check_file

USER = {"role": "user", "content": "How long do I boil an egg?"}
ASSISTANT = {"role": "assistant", "content": "Nine minutes."}


def chat(*messages):
    return json.dumps({"messages": list(messages)})


def lines(result):
    return result.problems.lines() + [result.summary()]


def test_every_problem_of_a_chat_file_is_listed_with_its_line_and_fix(workdir):
    (workdir / "train.jsonl").write_bytes("\n".join([
        chat(USER, ASSISTANT),
        chat(USER, {"role": "bot", "content": "hi"}),
        chat(USER, ASSISTANT, USER),
        chat(USER, USER, ASSISTANT),
        chat({"role": "system", "content": "Be brief."}, USER, {"role": "assistant", "content": "  "}),
        chat(USER, {"role": "system", "content": "late"}, ASSISTANT),
        chat(ASSISTANT, USER, ASSISTANT),
        chat(USER),
        json.dumps({"instruction": "Say hi", "output": "hi"}),
        '{"messages": [}',
        "[1, 2]",
    ]).encode() + b"\n" + b'{"messages": "caf\xe9"}\n')
    result = check_file("train.jsonl")
    assert lines(result) == [
        "train.jsonl:2: messages[1].role: unknown role 'bot'; expected one of system, user, assistant",
        "train.jsonl:3: messages[2].role: the conversation ends with a user message; a chat example must end with "
        "an assistant message (add the reply or drop the trailing messages) (tunesmith data prepare repairs this)",
        "train.jsonl:4: messages[1].role: two user messages in a row (messages[0] and messages[1]); user and "
        "assistant turns must alternate (merge them into one message) (tunesmith data prepare repairs this)",
        "train.jsonl:5: messages[2].content: empty content; user and assistant messages need some text",
        "train.jsonl:6: messages[1].role: a system message must come first, as messages[0]; move or merge it",
        "train.jsonl:7: messages[0].role: a conversation cannot start with an assistant message; start with user",
        "train.jsonl:8: messages: no assistant turn; each chat example needs at least one assistant message to "
        "learn from",
        "train.jsonl:9: this record looks like alpaca (instruction/output) but earlier records are chat (messages); "
        "one file must use one format",
        "train.jsonl:10: invalid JSON (Expecting value at column 15)",
        "train.jsonl:11: expected a JSON object ({...}) for each record, got a list",
        "train.jsonl:12: not valid UTF-8 text (byte 0xe9 at column 18); save the file as UTF-8",
        "train.jsonl: only 1 valid example; a split into train, validation and test needs at least 3",
        "train.jsonl: 12 problems in 12 records, 1 valid chat example; fix them, or let `tunesmith data prepare` "
        "quarantine the bad rows",
    ]
    assert not result.ok


def test_a_clean_file_reports_its_count(workdir):
    (workdir / "train.jsonl").write_text("\n".join([chat(USER, ASSISTANT)] * 3) + "\n")
    result = check_file("train.jsonl")
    assert result.ok and lines(result) == ["train.jsonl: 3 chat examples, no problems"]


def test_a_byte_order_mark_is_not_a_problem(workdir):
    (workdir / "train.csv").write_bytes("\ufeffprompt,completion\n2+2=,4\n3+3=,6\n1+1=,2\n".encode())
    result = check_file("train.csv")
    assert lines(result) == ["train.csv: 3 prompt_completion examples, no problems"]


def test_alpaca_and_prompt_completion_columns(workdir):
    (workdir / "data.csv").write_text("instruction,input,output\nSay hi,,hi\n,x,y\nSay bye,,\n")
    assert lines(check_file("data.csv", split=SplitSettings(validation=0, test=0))) == [
        "data.csv:3: instruction: empty; it needs some text (whitespace only counts as empty)",
        "data.csv:4: output: empty; it needs some text (whitespace only counts as empty)",
        "data.csv: 2 problems in 3 records, 1 valid alpaca example; fix them, or let `tunesmith data prepare` "
        "quarantine the bad rows",
    ]
    (workdir / "pc.jsonl").write_text('{"prompt": "a", "completion": 4}\n{"prompt": "b"}\n')
    assert check_file("pc.jsonl", format="prompt_completion").problems.lines() == [
        "pc.jsonl:1: completion: expected a string, got a number",
        "pc.jsonl:2: missing required field 'completion'; prompt_completion records need: prompt, completion",
        "pc.jsonl: only 0 valid examples; a split into train, validation and test needs at least 3",
    ]


def test_an_empty_file(workdir):
    (workdir / "train.jsonl").write_text("\n\n")
    assert lines(check_file("train.jsonl")) == [
        "train.jsonl: the file is empty; it holds no records",
        "train.jsonl: 1 problem in 0 records, 0 valid examples; fix them, or let `tunesmith data prepare` "
        "quarantine the bad rows",
    ]


def test_a_problem_shared_by_many_records_is_listed_three_times_then_counted(workdir):
    (workdir / "train.jsonl").write_text("\n".join([chat(USER)] * 50 + [chat(USER, ASSISTANT)] * 3) + "\n")
    assert check_file("train.jsonl").problems.lines() == [
        f"train.jsonl:{n}: messages: no assistant turn; each chat example needs at least one assistant message to "
        "learn from" for n in (1, 2, 3)
    ] + ["  ... and 47 more records with this problem"]


def test_the_split_minimum_follows_the_split_settings(workdir):
    (workdir / "train.jsonl").write_text("\n".join([chat(USER, ASSISTANT)] * 5) + "\n")
    assert check_file("train.jsonl", split=SplitSettings(validation=3, test=2)).problems.lines() == [
        "train.jsonl: only 5 valid examples; a split into train, validation and test needs at least 6"
    ]
    assert check_file("train.jsonl", split=SplitSettings(validation=0.2, test=0)).ok
