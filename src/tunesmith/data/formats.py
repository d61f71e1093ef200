"""The four data formats: recognise them, validate every record, and turn records into Examples.

Every record is checked before anything is returned, so a bad line fails in seconds rather than an hour
into training, and each error names the file, line and field, and what would be right. Two chat problems
are common in real exports and mechanical to fix (a conversation ending on a user turn, two turns of one
role in a row): they are marked repairable, and a run counts them and points at `tunesmith data prepare`,
which repairs them, instead of stopping at the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tunesmith.data.readers import Record, json_type, location, read_records
from tunesmith.errors import DataError

Format = Literal["chat", "alpaca", "prompt_completion", "text"]
FORMATS: tuple[str, ...] = ("chat", "alpaca", "prompt_completion", "text")
ROLES = ("system", "user", "assistant")

# The keys that identify each format, in detection priority order.
_SIGNATURES: dict[str, tuple[str, ...]] = {
    "chat": ("messages",),
    "alpaca": ("instruction", "output"),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}
_NEEDS = {
    "chat": "messages",
    "alpaca": "instruction, output (optional: input, system)",
    "prompt_completion": "prompt, completion",
    "text": "text",
}
_EMPTY = "empty; it needs some text (whitespace only counts as empty)"

# What `tunesmith data prepare` repairs, and how a summary counts it.
TRAILING_USER = "trailing_user"
REPEATED_ROLE = "repeated_role"
REPAIRS = {TRAILING_USER: "ending on a user turn", REPEATED_ROLE: "two turns of one role in a row"}


@dataclass
class Example:
    messages: list[dict] | None = None  # chat, and alpaca converted to chat
    prompt: str | None = None  # prompt_completion
    completion: str | None = None
    text: str | None = None  # raw text (continued pre-training)
    source: str = ""
    line: int = 0
    unit: str = "line"  # "row" when line is a row index (JSON arrays, Parquet)

    @property
    def where(self) -> str:
        return location(self.source, self.line, self.unit)


class RecordProblem(Exception):
    """What is wrong inside one record; the caller prefixes where the record is.

    `repairs` names the repairs (TRAILING_USER, REPEATED_ROLE) that would make the record valid; it is empty
    when a person has to fix the record.
    """

    def __init__(self, field: str, message: str, repairs: frozenset[str] = frozenset()):
        super().__init__(f"{field}: {message}" if field else message)
        self.repairs = repairs


def detect_format(records: list[Record]) -> Format:
    """The format of the first record; any later record that clearly has another format is an error."""
    if not records:
        raise DataError("no records to detect the data format from")
    first = classify(records[0].data)
    if first is None:
        raise DataError(f"{records[0].where}: {unknown_format(records[0].data)}")
    for record in records[1:]:
        found = classify(record.data)
        if found is not None and found != first:
            raise DataError(f"{record.where}: {mixed_formats(found, first)}")
    return first


def check_format_name(format: str) -> None:
    if format != "auto" and format not in FORMATS:
        raise DataError(f"unknown data format '{format}'; expected one of auto, {', '.join(FORMATS)}")


def load_examples(path: str | Path, format: str = "auto") -> tuple[list[Example], Format]:
    check_format_name(format)
    records = read_records(path)
    fmt = detect_format(records) if format == "auto" else format
    return _convert_all(records, fmt, str(path)), fmt


def classify(data: dict) -> Format | None:
    """The format a record's keys say, or None when they fit none."""
    return next((fmt for fmt, keys in _SIGNATURES.items() if all(key in data for key in keys)), None)


def unknown_format(data: dict) -> str:
    keys = ", ".join(sorted(map(str, data))) or "none"
    return (
        f"cannot tell the data format from this record's fields ({keys}); expected messages (chat), "
        "instruction + output (alpaca), prompt + completion (prompt_completion) or text (text)"
    )


def mixed_formats(found: str, first: str) -> str:
    return (f"this record looks like {_describe(found)} but earlier records are {_describe(first)}; one file must use "
            "one format")


def _describe(fmt: str) -> str:
    return f"{fmt} ({'/'.join(_SIGNATURES[fmt])})"


def convert_record(record: Record, fmt: str) -> Example:
    """The record as an Example of `fmt`; raises RecordProblem naming the field and what would be right."""
    _require(record.data, fmt)
    fields = _CONVERTERS[fmt](record.data)
    return Example(**fields, source=record.source, line=record.line, unit=record.unit)


def _convert_all(records: list[Record], fmt: str, source: str) -> list[Example]:
    examples, problems, repairable = [], [], []  # repairable: (message, repairs)
    for record in records:
        try:
            examples.append(convert_record(record, fmt))
        except RecordProblem as problem:
            message = f"{record.where}: {problem}"
            if problem.repairs:
                repairable.append((message, problem.repairs))
            else:
                problems.append(message)
    if not problems and not repairable:
        return examples
    lines = problems[:1]
    if len(problems) > 1:
        more = len(problems) - 1
        lines.append(f"({more} more invalid record{'s' if more > 1 else ''} in this file)")
    if repairable:
        lines.append(repair_summary(source, [kinds for _, kinds in repairable], len(records)))
        if not problems:
            lines.append(f"first: {repairable[0][0]}")
    raise DataError("\n".join(lines))


def repair_summary(source: str, repairs: list[frozenset[str]], total: int) -> str:
    """'train.jsonl: 3 of 10 examples need a repair ...': what a run says instead of stopping at the first."""
    counts = "; ".join(
        f"{text}: {sum(kind in kinds for kinds in repairs):,}" for kind, text in REPAIRS.items()
        if any(kind in kinds for kinds in repairs)
    )
    verb = "needs" if len(repairs) == 1 else "need"
    return (
        f"{source}: {len(repairs):,} of {total:,} examples {verb} a repair before training ({counts}); "
        f"`tunesmith data prepare {source} --out DIR` repairs them (trailing user turns trimmed, consecutive turns "
        "of one role merged), or set data.prepare in the config to prepare the data on every run"
    )


def _require(data: dict, fmt: str) -> None:
    for key in _SIGNATURES[fmt]:
        if key not in data:
            raise RecordProblem("", f"missing required field '{key}'; {fmt} records need: {_NEEDS[fmt]}")


def _string(value: object, field: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise RecordProblem(field, f"expected a string, got {json_type(value)}")
    if not allow_empty and not value.strip():
        raise RecordProblem(field, _EMPTY)
    return value


def _optional_string(data: dict, field: str) -> str:
    # Parquet and CSV exports write absent optional values as null.
    value = data.get(field)
    return "" if value is None else _string(value, field, allow_empty=True)


def _chat(data: dict) -> dict:
    messages = data["messages"]
    if not isinstance(messages, list):
        raise RecordProblem("messages", f"expected a list of messages, got {json_type(messages)}")
    cleaned = [_message(message, index) for index, message in enumerate(messages)]
    if not any(message["role"] == "assistant" for message in cleaned):
        raise RecordProblem(
            "messages", "no assistant turn; each chat example needs at least one assistant message to learn from"
        )
    if cleaned[0]["role"] == "assistant":
        # The template needs a conversation before the first reply to render that reply's header.
        raise RecordProblem("messages[0].role",
                            "a conversation cannot start with an assistant message; start with user")
    repairs = _repairs_needed(cleaned)
    if repairs:
        field, message, _ = repairs[0]
        raise RecordProblem(field, message, frozenset(kind for _, _, kind in repairs))
    return {"messages": cleaned}


def _repairs_needed(messages: list[dict]) -> list[tuple[str, str, str]]:
    """(field, message, repair) for each repairable problem of a conversation, the first one first."""
    found = []
    repeated = next((i for i in range(1, len(messages)) if messages[i]["role"] == messages[i - 1]["role"]), None)
    if repeated is not None:
        role = messages[repeated]["role"]
        found.append((
            f"messages[{repeated}].role",
            f"two {role} messages in a row (messages[{repeated - 1}] and messages[{repeated}]); user and assistant "
            "turns must alternate (merge them into one message)",
            REPEATED_ROLE,
        ))
    last = messages[-1]["role"]
    if last != "assistant":
        found.append((
            f"messages[{len(messages) - 1}].role",
            f"the conversation ends with a {last} message; a chat example must end with an assistant message "
            "(add the reply or drop the trailing messages)",
            TRAILING_USER,
        ))
    return found


def _message(message: object, index: int) -> dict:
    field = f"messages[{index}]"
    if not isinstance(message, dict):
        raise RecordProblem(field, f"expected an object with role and content, got {json_type(message)}")
    for key in ("role", "content"):
        if key not in message:
            raise RecordProblem(field, f"missing required field '{key}'; each message needs role and content")
    role = _string(message["role"], f"{field}.role", allow_empty=True)
    if role not in ROLES:
        raise RecordProblem(f"{field}.role", f"unknown role '{role}'; expected one of {', '.join(ROLES)}")
    if role == "system" and index > 0:
        raise RecordProblem(f"{field}.role", "a system message must come first, as messages[0]; move or merge it")
    content = _string(message["content"], f"{field}.content", allow_empty=True)
    if role != "system" and not content.strip():
        raise RecordProblem(f"{field}.content", "empty content; user and assistant messages need some text")
    # Keep only what the chat template uses; extra keys (name, weight, ...) would change the rendering.
    return {"role": role, "content": content}


def _alpaca(data: dict) -> dict:
    instruction = _string(data["instruction"], "instruction")
    output = _string(data["output"], "output")
    extra = _optional_string(data, "input")
    system = _optional_string(data, "system")
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages = [{"role": "system", "content": system}] if system.strip() else []
    messages += [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    return {"messages": messages}


def _prompt_completion(data: dict) -> dict:
    return {"prompt": _string(data["prompt"], "prompt"), "completion": _string(data["completion"], "completion")}


def _text(data: dict) -> dict:
    return {"text": _string(data["text"], "text")}


_CONVERTERS = {"chat": _chat, "alpaca": _alpaca, "prompt_completion": _prompt_completion, "text": _text}
