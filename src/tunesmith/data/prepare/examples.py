"""The text fields of an Example, by name, and the record a prepared file holds for it.

Every step that changes text (cleaning, redaction) works field by field through these, so each format's
layout is known in one place.
"""

from __future__ import annotations

from dataclasses import replace

from tunesmith.data.formats import Example

PREVIEW_CHARS = 400  # how much of an example the report shows


def output_format(fmt: str) -> str:
    """The format prepared files are written in: alpaca examples are already chats."""
    return "chat" if fmt == "alpaca" else fmt


def text_fields(example: Example) -> list[tuple[str, str]]:
    """(field name as messages name it, text) for every text of the example, in order."""
    if example.messages is not None:
        return [(f"messages[{i}].content", m["content"]) for i, m in enumerate(example.messages)]
    if example.prompt is not None:
        return [("prompt", example.prompt), ("completion", example.completion)]
    return [("text", example.text)]


def with_texts(example: Example, texts: list[str]) -> Example:
    """The example with its text fields replaced, in text_fields order."""
    if example.messages is not None:
        return replace(example, messages=[{**m, "content": t} for m, t in zip(example.messages, texts)])
    if example.prompt is not None:
        return replace(example, prompt=texts[0], completion=texts[1])
    return replace(example, text=texts[0])


def to_record(example: Example, label: str | None = None, label_field: str | None = None) -> dict:
    """What a prepared file holds for the example: the format's keys, and the label it was stratified by."""
    if example.messages is not None:
        record = {"messages": example.messages}
    elif example.prompt is not None:
        record = {"prompt": example.prompt, "completion": example.completion}
    else:
        record = {"text": example.text}
    if label is not None and label_field:
        record[label_field] = label
    return record


def compared_parts(example: Example) -> tuple[str, str]:
    """What deduplication compares: (prompt, response). System messages are left out, because one system prompt
    shared by every example would make them all look alike; raw text is all response."""
    if example.messages is not None:
        said = [m for m in example.messages if m["role"] != "system"]
        return ("\n".join(m["content"] for m in said if m["role"] != "assistant"),
                "\n".join(m["content"] for m in said if m["role"] == "assistant"))
    if example.prompt is not None:
        return example.prompt, example.completion
    return "", example.text


def preview(record: dict | None) -> str:
    """A short, readable rendering of a (redacted) record for the report."""
    if record is None:
        return ""
    messages = record.get("messages")
    if isinstance(messages, list):
        text = "\n".join(
            f"{m.get('role', '?')}: {m.get('content', '')}" if isinstance(m, dict) else str(m) for m in messages
        )
    else:
        text = "\n".join(f"{key}: {value}" for key, value in record.items())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def from_record(record: dict) -> Example:
    """The Example a prepared record holds (written by to_record, so already valid)."""
    if "messages" in record:
        return Example(messages=record["messages"])
    if "prompt" in record:
        return Example(prompt=record["prompt"], completion=record["completion"])
    return Example(text=record["text"])
