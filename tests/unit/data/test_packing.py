import random

import pytest
import torch
import torch.nn.functional as F

from tunesmith.data.packing import PackingCollator, TokenBudgetBatchSampler, pack_into_bins
from tunesmith.tasks.causal_lm.cpu_attention import NAME as CPU_ATTENTION

LENGTHS = (5, 7, 4)


@pytest.fixture(params=["sdpa", "eager", CPU_ATTENTION])
def model(request, tiny_llama):
    tiny_llama.set_attn_implementation(request.param)
    assert tiny_llama.config._attn_implementation == request.param
    return tiny_llama


@pytest.fixture
def examples(tokenizer):
    generator = torch.Generator().manual_seed(1)
    out = []
    for length in LENGTHS:
        ids = torch.randint(0, len(tokenizer), (length,), generator=generator).tolist()
        # A two-token "prompt" that is not trained, as completion-only masking would produce.
        out.append({"input_ids": ids, "labels": [-100, -100, *ids[2:]]})
    return out


@pytest.fixture
def collator(tokenizer):
    return PackingCollator(pad_token_id=tokenizer.pad_token_id)


def summed_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed CE of one example: logits [T, V], labels [T], with the causal shift."""
    return F.cross_entropy(logits[:-1].float(), labels[1:], ignore_index=-100, reduction="sum")


def spans():
    starts = [sum(LENGTHS[:i]) for i in range(len(LENGTHS))]
    return [slice(start, start + length) for start, length in zip(starts, LENGTHS)]


@torch.no_grad()
def packed_logits(model, batch):
    # use_cache=False is required: transformers only detects packing when there is no KV cache.
    return model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]


def test_collator_layout(collator, examples):
    batch = collator(examples)
    assert set(batch) == {"input_ids", "labels", "position_ids"}  # no attention_mask, so packing is detected
    assert all(tensor.shape == (1, sum(LENGTHS)) for tensor in batch.values())
    assert batch["input_ids"][0].tolist() == sum((e["input_ids"] for e in examples), [])
    assert batch["position_ids"][0].tolist() == sum((list(range(n)) for n in LENGTHS), [])


def test_boundary_label_is_masked(tokenizer, examples):
    # Fully trained examples: only the first token of each must become -100.
    trained = [{"input_ids": e["input_ids"], "labels": list(e["input_ids"])} for e in examples]
    labels = PackingCollator(tokenizer.pad_token_id)(trained)["labels"][0]
    for span, example in zip(spans(), trained):
        assert labels[span].tolist() == [-100, *example["labels"][1:]]


def test_packed_loss_equals_each_example_alone(model, collator, examples):
    batch = collator(examples)
    logits = packed_logits(model, batch)
    for span, example in zip(spans(), examples):
        with torch.no_grad():
            alone = model(input_ids=torch.tensor([example["input_ids"]])).logits[0]
        expected = summed_ce(alone, torch.tensor(example["labels"]))
        assert torch.allclose(summed_ce(logits[span], batch["labels"][0, span]), expected, atol=1e-4)
        assert torch.allclose(logits[span], alone, atol=1e-4)


def test_hf_loss_on_packed_batch_is_the_token_mean_over_examples(model, collator, examples):
    batch = collator(examples)
    with torch.no_grad():
        loss = model(**batch, use_cache=False).loss
        alone = [model(input_ids=torch.tensor([e["input_ids"]])).logits[0] for e in examples]
    total = sum(summed_ce(logits, torch.tensor(e["labels"])) for logits, e in zip(alone, examples))
    count = sum(sum(label != -100 for label in e["labels"][1:]) for e in examples)
    assert torch.allclose(loss, total / count, atol=1e-4)


def test_examples_do_not_attend_to_each_other(model, collator, examples):
    batch = collator(examples)
    perturbed = [dict(e) for e in examples]
    perturbed[1]["input_ids"] = [(token + 1) % model.config.vocab_size for token in examples[1]["input_ids"]]
    before = packed_logits(model, batch)
    after = packed_logits(model, collator(perturbed))
    first, second, third = spans()
    assert torch.allclose(before[first], after[first], atol=1e-4)
    assert torch.allclose(before[third], after[third], atol=1e-4)
    assert not torch.allclose(before[second], after[second], atol=1e-4)


def test_pad_to_multiple_is_an_untrained_separate_sequence(model, tokenizer, collator, examples):
    padded = PackingCollator(tokenizer.pad_token_id, pad_to_multiple_of=10)(examples)
    total = sum(LENGTHS)
    assert padded["input_ids"].shape == (1, 20)
    assert padded["input_ids"][0, total:].eq(tokenizer.pad_token_id).all()
    assert padded["labels"][0, total:].eq(-100).all()
    assert padded["position_ids"][0, total:].tolist() == list(range(20 - total))
    assert torch.allclose(packed_logits(model, padded)[:total], packed_logits(model, collator(examples)), atol=1e-4)


def test_empty_examples_are_skipped(collator, examples):
    batch = collator([{"input_ids": [], "labels": []}, *examples])
    assert batch["input_ids"].shape == (1, sum(LENGTHS))


def reference_first_fit_decreasing(lengths, max_tokens):
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins, room = [], []
    for index in order:
        if lengths[index] > max_tokens:
            bins.append([index])
            room.append(-1)
            continue
        for b, free in enumerate(room):
            if free >= lengths[index]:
                bins[b].append(index)
                room[b] -= lengths[index]
                break
        else:
            bins.append([index])
            room.append(max_tokens - lengths[index])
    return bins


def test_pack_into_bins_first_fit_decreasing():
    assert pack_into_bins([6, 5, 4, 3, 2], 10) == [[0, 2], [1, 3, 4]]
    assert pack_into_bins([], 10) == []


@pytest.mark.parametrize("seed", range(5))
def test_pack_into_bins_respects_budget_and_covers_every_index_once(seed):
    rng = random.Random(seed)
    max_tokens = 64
    lengths = [rng.randint(1, 80) for _ in range(300)]
    bins = pack_into_bins(lengths, max_tokens)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    for b in bins:
        assert sum(lengths[i] for i in b) <= max_tokens or len(b) == 1
    assert all(len(b) == 1 for b in bins if any(lengths[i] > max_tokens for i in b))
    assert bins == reference_first_fit_decreasing(lengths, max_tokens)
    assert bins == pack_into_bins(lengths, max_tokens)


def test_sampler_is_deterministic_per_seed_and_epoch():
    rng = random.Random(0)
    lengths = [rng.randint(1, 50) for _ in range(200)]
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=128, seed=3)
    epoch0 = list(sampler)
    assert len(epoch0) == len(sampler) == len(pack_into_bins(lengths, 128))
    assert sorted(i for batch in epoch0 for i in batch) == list(range(200))
    assert all(sum(lengths[i] for i in batch) <= 128 for batch in epoch0)

    assert list(TokenBudgetBatchSampler(lengths, max_tokens=128, seed=3)) == epoch0
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch1 != epoch0
    assert sorted(map(tuple, epoch1)) == sorted(map(tuple, epoch0))
    sampler.set_epoch(0)
    assert list(sampler) == epoch0
    assert list(TokenBudgetBatchSampler(lengths, max_tokens=128, seed=4)) != epoch0


def test_sampler_without_shuffle_keeps_packing_order():
    lengths = [6, 5, 4, 3, 2]
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=10, seed=0, shuffle=False)
    sampler.set_epoch(7)
    assert list(sampler) == pack_into_bins(lengths, 10)
