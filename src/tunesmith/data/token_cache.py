"""Tokenized-dataset cache: a repeated run (resume, sweep, method trial) does not tokenize again.

The key covers everything the encoding depends on: the examples themselves, the tokenizer's vocabulary and
rules, its chat template, max_length, train_on and the encoder version. Change any of them and the key
changes, so a stale entry is never read. Entries are JSON (token ids), never pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict

from tunesmith.cache import cache_root
from tunesmith.data.formats import Example
from tunesmith.data.tokenize import encode_dataset

ENCODER_VERSION = 1  # bump when tokenize.py changes what it produces


def cache_key(examples: list[Example], tokenizer, max_length: int, train_on: str) -> str:
    digest = hashlib.sha256()
    for part in (
        json.dumps([_content(e) for e in examples], sort_keys=True),
        _rules(tokenizer),
        tokenizer.chat_template or "",
        json.dumps({"max_length": max_length, "train_on": train_on, "version": ENCODER_VERSION}),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def encode_cached(examples: list[Example], tokenizer, max_length: int, train_on: str) -> tuple[list[dict], int]:
    """encode_dataset, served from the cache when the same inputs were encoded before."""
    path = cache_root() / "tokenized" / f"{cache_key(examples, tokenizer, max_length, train_on)}.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        return saved["encoded"], saved["dropped"]
    encoded, dropped = encode_dataset(examples, tokenizer, max_length, train_on)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"encoded": encoded, "dropped": dropped}))
    os.replace(tmp, path)  # atomic: a reader never sees half an entry
    return encoded, dropped


def _rules(tokenizer) -> str:
    """The tokenizer's vocabulary and rules, without its truncation and padding: a call with truncation=True sets
    those on the backend and leaves them set, which would change the key between two identical encodings."""
    if not hasattr(tokenizer, "backend_tokenizer"):
        return repr(tokenizer)
    rules = json.loads(tokenizer.backend_tokenizer.to_str())
    rules.pop("truncation", None)
    rules.pop("padding", None)
    return json.dumps(rules, sort_keys=True)


def _content(example: Example) -> dict:
    # Where an example came from does not change its tokens; only its content does.
    data = asdict(example)
    for key in ("source", "line", "unit"):
        data.pop(key, None)
    return data
