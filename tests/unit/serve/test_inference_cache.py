"""Tuned LoRA models share one loaded base: each answers as its own adapter does, the base as the base, and the
cache keeps at most `capacity` tuned models."""

import pytest

from tunesmith.evaluate.generate import generate_texts
from tunesmith.models.load import load_trained
from tunesmith.serve.inference import ModelCache

from .conftest import make_run

pytestmark = pytest.mark.slow  # loads models and generates

PROMPT = "<|im_start|>user\nHow do I cook rice?<|im_end|>\n<|im_start|>assistant\n"


def answer(generator):
    return generate_texts(generator.model, generator.tokenizer, [PROMPT], max_new_tokens=8)[0]


@pytest.fixture
def runs(tmp_path, tiny_model_dir):
    return [make_run(tmp_path / f"run{i}", tiny_model_dir, seed=i) for i in range(2)]


def test_adapters_share_the_base_and_answer_like_their_own_run(runs, tiny_model_dir):
    cache = ModelCache(capacity=4)
    with cache.base(str(tiny_model_dir)) as generator:
        base_before = answer(generator)
    tuned = []
    for i, run in enumerate(runs):
        with cache.tuned(f"ft:tiny:acme::{i}", run) as generator:
            tuned.append(answer(generator))
        model, tokenizer = load_trained(run)
        assert tuned[-1] == generate_texts(model, tokenizer, [PROMPT], max_new_tokens=8)[0]
    assert tuned[0] != tuned[1] != base_before
    with cache.base(str(tiny_model_dir)) as generator:
        assert answer(generator) == base_before  # adapters disabled for the base itself
    assert len(cache._bases) == 1


def test_the_least_recently_used_adapter_is_evicted_and_reloads_the_same(runs, tiny_model_dir):
    cache = ModelCache(capacity=1)
    with cache.tuned("ft:a", runs[0]) as generator:
        first = answer(generator)
    with cache.tuned("ft:b", runs[1]) as generator:
        second = answer(generator)
    assert cache.loaded() == ["ft:b"]
    base = cache.load_base(str(tiny_model_dir))
    assert len(base.peft.peft_config) == 1  # a's adapter is gone from the shared model
    with cache.tuned("ft:a", runs[0]) as generator:
        assert answer(generator) == first
    with cache.tuned("ft:b", runs[1]) as generator:
        assert answer(generator) == second
