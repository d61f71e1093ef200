"""The tokenization cache returns what encoding returns, and any changed setting misses it."""

import pytest

from tunesmith.data import token_cache
from tunesmith.data.formats import Example
from tunesmith.data.token_cache import cache_key, encode_cached


def chat(answer: str) -> Example:
    return Example(messages=[{"role": "user", "content": "How do I cook rice?"},
                             {"role": "assistant", "content": answer}], source="a.jsonl", line=1)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path))


def test_second_call_is_served_from_the_cache(tokenizer, monkeypatch):
    examples = [chat("Simmer 18 minutes."), chat("Rinse it first.")]
    first = encode_cached(examples, tokenizer, 64, "completions")

    def fail(*args, **kwargs):
        raise AssertionError("tokenized again")

    monkeypatch.setattr(token_cache, "encode_dataset", fail)
    assert encode_cached(examples, tokenizer, 64, "completions") == first


def test_changed_settings_or_content_change_the_key(tokenizer):
    examples = [chat("Simmer 18 minutes.")]
    key = cache_key(examples, tokenizer, 64, "completions")
    assert cache_key(examples, tokenizer, 32, "completions") != key
    assert cache_key(examples, tokenizer, 64, "all") != key
    assert cache_key([chat("Simmer 20 minutes.")], tokenizer, 64, "completions") != key
    tokenizer_with_other_template = tokenizer.__class__.from_pretrained(tokenizer.name_or_path)
    tokenizer_with_other_template.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert cache_key(examples, tokenizer_with_other_template, 64, "completions") != key


def test_where_an_example_came_from_does_not_matter(tokenizer):
    moved = chat("Simmer 18 minutes.")
    moved.source, moved.line = "b.jsonl", 9
    assert cache_key([moved], tokenizer, 64, "completions") == cache_key([chat("Simmer 18 minutes.")], tokenizer, 64,
                                                                          "completions")


def test_a_truncating_call_before_does_not_change_the_key(tokenizer, monkeypatch):
    """A call with truncation=True leaves its setting on the backend tokenizer: the key must not see it."""
    tokenizer("rice " * 40, truncation=True, max_length=16)
    examples = [chat("Simmer 18 minutes.")]
    key = cache_key(examples, tokenizer, 64, "completions")
    encode_cached(examples, tokenizer, 64, "completions")  # encodes with its own truncation
    assert cache_key(examples, tokenizer, 64, "completions") == key
