"""Which examples a report was scored on: a fingerprint that `tunesmith compare` checks before lining runs up."""

from __future__ import annotations

import hashlib
import json

from tunesmith.data.formats import Example


def content_key(example: Example) -> str:
    """What an example says, without where it came from."""
    return json.dumps([example.messages, example.prompt, example.completion, example.text], sort_keys=True)


def fingerprint(examples: list[Example]) -> str:
    """The same for the same examples in any order or file; different when any example differs or is missing."""
    digests = sorted(hashlib.sha256(content_key(example).encode()).hexdigest() for example in examples)
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()[:16]


def test_set_info(examples: list[Example], name: str) -> dict:
    """What report.json records about its test set: `name` is "test", "validation" or the --test file."""
    return {"name": name, "n": len(examples), "fingerprint": fingerprint(examples)}
