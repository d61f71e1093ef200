"""How long an example is: in the model's tokens when a tokenizer is known, else in words (and the report says
which). Lengths count the text itself; the chat template's markup adds a few tokens per turn on top."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from tunesmith.data.formats import Example


class Lengths(NamedTuple):
    prompt: int  # everything the model reads: system and user turns, the prompt
    response: int  # everything it learns to write: assistant turns, the completion, raw text
    turns: int  # user and assistant messages (0 for non-chat examples)

    @property
    def total(self) -> int:
        return self.prompt + self.response


class LengthCounter:
    def __init__(self, tokenizer=None):
        self.tokenizer = tokenizer
        self.unit = "tokens" if tokenizer is not None else "words"

    def count(self, text: str) -> int:
        if self.tokenizer is None:
            return len(text.split())
        return len(self.tokenizer.encode(text, add_special_tokens=False)) if text else 0

    def measure(self, example: Example) -> Lengths:
        if example.messages is not None:
            said = [m for m in example.messages if m["role"] != "system"]
            response = sum(self.count(m["content"]) for m in said if m["role"] == "assistant")
            prompt = sum(self.count(m["content"]) for m in example.messages if m["role"] != "assistant")
            return Lengths(prompt, response, len(said))
        if example.prompt is not None:
            return Lengths(self.count(example.prompt), self.count(example.completion), 0)
        return Lengths(0, self.count(example.text), 0)


def tokenizer_identity(tokenizer) -> str:
    """What the lengths depend on, for the preparation's fingerprint: the vocabulary and rules, or 'words'."""
    if tokenizer is None:
        return "words"
    rules = tokenizer.backend_tokenizer.to_str() if hasattr(tokenizer, "backend_tokenizer") else repr(tokenizer)
    return hashlib.sha256(rules.encode()).hexdigest()[:16]
