"""The four data formats: recognise them, validate every record, and turn records into Examples.

Every record is checked before anything is returned, so a bad line fails in seconds rather than an hour
into training, and each error names the file, line and field, and what would be right.
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


class _Problem(Exception):
    """What is wrong inside one record; the caller prefixes where the record is."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)


def detect_format(records: list[Record]) -> Format:
    """The format of the first record; any later record that clearly has another format is an error."""
    if not records:
        raise DataError("no records to detect the data format from")
    first = _classify(records[0].data)
    if first is None:
        keys = ", ".join(sorted(map(str, records[0].data))) or "none"
        raise DataError(
            f"{records[0].where}: cannot tell the data format from this record's fields ({keys}); expected "
            "messages (chat), instruction + output (alpaca), prompt + completion (prompt_completion) or text (text)"
        )
    for record in records[1:]:
        found = _classify(record.data)
        if found is not None and found != first:
            raise DataError(
                f"{record.where}: this record looks like {_describe(found)} but earlier records are "
                f"{_describe(first)}; one file must use one format"
            )
    return first


def load_examples(path: str | Path, format: str = "auto") -> tuple[list[Example], Format]:
    if format != "auto" and format not in FORMATS:
        raise DataError(f"unknown data format '{format}'; expected one of auto, {', '.join(FORMATS)}")
    records = read_records(path)
    fmt = detect_format(records) if format == "auto" else format
    return _convert_all(records, fmt), fmt


def _classify(data: dict) -> Format | None:
    return next((fmt for fmt, keys in _SIGNATURES.items() if all(key in data for key in keys)), None)


def _describe(fmt: str) -> str:
    return f"{fmt} ({'/'.join(_SIGNATURES[fmt])})"


def _convert_all(records: list[Record], fmt: str) -> list[Example]:
    examples, problems = [], []
    for record in records:
        try:
            _require(record.data, fmt)
            fields = _CONVERTERS[fmt](record.data)
        except _Problem as problem:
            problems.append(f"{record.where}: {problem}")
            continue
        examples.append(Example(**fields, source=record.source, line=record.line, unit=record.unit))
    if problems:
        more = len(problems) - 1
        suffix = f"\n({more} more invalid record{'s' if more > 1 else ''} in this file)" if more else ""
        raise DataError(problems[0] + suffix)
    return examples


def _require(data: dict, fmt: str) -> None:
    for key in _SIGNATURES[fmt]:
        if key not in data:
            raise _Problem("", f"missing required field '{key}'; {fmt} records need: {_NEEDS[fmt]}")


def _string(value: object, field: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise _Problem(field, f"expected a string, got {json_type(value)}")
    if not allow_empty and not value.strip():
        raise _Problem(field, _EMPTY)
    return value


def _optional_string(data: dict, field: str) -> str:
    # Parquet and CSV exports write absent optional values as null.
    value = data.get(field)
    return "" if value is None else _string(value, field, allow_empty=True)


def _chat(data: dict) -> dict:
    messages = data["messages"]
    if not isinstance(messages, list):
        raise _Problem("messages", f"expected a list of messages, got {json_type(messages)}")
    cleaned = [_message(message, index) for index, message in enumerate(messages)]
    if not any(message["role"] == "assistant" for message in cleaned):
        raise _Problem(
            "messages", "no assistant turn; each chat example needs at least one assistant message to learn from"
        )
    if cleaned[0]["role"] == "assistant":
        # The template needs a conversation before the first reply to render that reply's header.
        raise _Problem("messages[0].role", "a conversation cannot start with an assistant message; start with user")
    last = cleaned[-1]["role"]
    if last != "assistant":
        raise _Problem(
            f"messages[{len(cleaned) - 1}].role",
            f"the conversation ends with a {last} message; a chat example must end with an assistant message "
            "(add the reply or drop the trailing messages)",
        )
    return {"messages": cleaned}


def _message(message: object, index: int) -> dict:
    field = f"messages[{index}]"
    if not isinstance(message, dict):
        raise _Problem(field, f"expected an object with role and content, got {json_type(message)}")
    for key in ("role", "content"):
        if key not in message:
            raise _Problem(field, f"missing required field '{key}'; each message needs role and content")
    role = _string(message["role"], f"{field}.role", allow_empty=True)
    if role not in ROLES:
        raise _Problem(f"{field}.role", f"unknown role '{role}'; expected one of {', '.join(ROLES)}")
    if role == "system" and index > 0:
        raise _Problem(f"{field}.role", "a system message must come first, as messages[0]; move or merge it")
    content = _string(message["content"], f"{field}.content", allow_empty=True)
    if role != "system" and not content.strip():
        raise _Problem(f"{field}.content", "empty content; user and assistant messages need some text")
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
