"""Cleaning: repair chats that real exports break, and normalise text, counting every change.

Repairs act on the raw record, before validation, so a conversation that ends on a user turn or repeats a
speaker becomes a valid example instead of a rejected one. Text cleaning keeps meaning and layout: line
breaks and indentation stay (answers hold code), only what no reader sees or wants goes.
"""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser

from tunesmith.config.prepare import CleanSettings
from tunesmith.data.formats import REPEATED_ROLE, TRAILING_USER, Example
from tunesmith.data.prepare.examples import text_fields, with_texts

# C0 and C1 control characters except tab and line ends, plus the invisible BOM and zero-width space.
_CONTROL = {code: None for code in (*range(0x20), *range(0x7F, 0xA0)) if chr(code) not in "\t\n\r"}
_CONTROL.update({0xFEFF: None, 0x200B: None})
_ODD_SPACES = re.compile(r"[^\S\n\t ]")  # non-breaking and other Unicode spaces (line ends are handled apart)
_LINE_END = re.compile(r"\r\n?")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)
_INNER_RUN = re.compile(r"(?<=\S) {2,}(?=\S)")
_BLANK_LINES = re.compile(r"\n{3,}")
_BLOCKS = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6"}

OPERATIONS = ("unicode_nfc", "control_characters", "whitespace", "html")


def repair_record(data: dict) -> tuple[dict, frozenset[str]]:
    """A chat record with consecutive turns of one role merged and trailing user turns trimmed.

    Records whose messages are not well-formed are returned as they are: validation then names the problem.
    """
    messages = data.get("messages")
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in messages
    ):
        return data, frozenset()
    merged: list[dict] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1] = {**merged[-1], "content": f"{merged[-1]['content']}\n\n{message['content']}"}
        else:
            merged.append(dict(message))
    made = {REPEATED_ROLE} if len(merged) < len(messages) else set()
    trimmed = merged
    while trimmed and trimmed[-1]["role"] != "assistant":
        trimmed = trimmed[:-1]
    if not any(m["role"] == "assistant" for m in trimmed):
        return data, frozenset()  # nothing to learn from either way; validation says so
    if len(trimmed) < len(merged):
        made.add(TRAILING_USER)
    return ({**data, "messages": trimmed}, frozenset(made)) if made else (data, frozenset())


def clean_example(example: Example, settings: CleanSettings) -> tuple[Example, set[str]]:
    """The example with every text field cleaned, and the operations that changed something."""
    changed: set[str] = set()
    texts = []
    for _, text in text_fields(example):
        cleaned, ops = clean_text(text, settings)
        texts.append(cleaned)
        changed |= ops
    return (with_texts(example, texts) if changed else example), changed


def clean_text(text: str, settings: CleanSettings) -> tuple[str, set[str]]:
    changed = set()
    for name, step in _STEPS:
        if getattr(settings, name):
            after = step(text)
            if after != text:
                changed.add(name)
                text = after
    return text, changed


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _controls(text: str) -> str:
    return text.translate(_CONTROL)


def _whitespace(text: str) -> str:
    text = _LINE_END.sub("\n", text)
    text = _ODD_SPACES.sub(" ", text)
    text = _TRAILING.sub("", text)
    text = _INNER_RUN.sub(" ", text)  # leading indentation is kept: it is layout, not a stray space
    return _BLANK_LINES.sub("\n\n", text).strip()


class _TextOnly(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._hidden += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._hidden = max(0, self._hidden - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._hidden:
            self.parts.append(data)


def _html(text: str) -> str:
    if "<" not in text and "&" not in text:
        return text
    parser = _TextOnly()
    parser.feed(text)
    parser.close()
    return html.unescape("".join(parser.parts))


# NFC first, so later steps see composed characters; HTML before whitespace, so removed tags leave no gaps.
_STEPS = (("unicode_nfc", _nfc), ("control_characters", _controls), ("html", _html), ("whitespace", _whitespace))
