import pytest
import torch

from tunesmith.data.packing import PackingCollator
from tunesmith.errors import ConfigError
from tunesmith.tasks.causal_lm import linear_cross_entropy as lce_module
from tunesmith.tasks.causal_lm import loss as loss_module
from tunesmith.tasks.causal_lm.loss import causal_lm_loss, count_label_tokens, plain_causal_lm_loss


@pytest.fixture
def padded_batch(tokenizer):
    """Two right-padded rows with an untrained prompt and -100 on the padding."""
    generator = torch.Generator().manual_seed(2)
    pad = tokenizer.pad_token_id
    lengths, width = (13, 9), 13
    input_ids = torch.full((2, width), pad)
    labels = torch.full((2, width), -100)
    attention_mask = torch.zeros(2, width, dtype=torch.long)
    for row, length in enumerate(lengths):
        ids = torch.randint(0, len(tokenizer), (length,), generator=generator)
        input_ids[row, :length] = ids
        labels[row, 3:length] = ids[3:]
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


@pytest.fixture
def packed_batch(tokenizer):
    generator = torch.Generator().manual_seed(3)
    examples = []
    for length in (6, 9, 5):
        ids = torch.randint(0, len(tokenizer), (length,), generator=generator).tolist()
        examples.append({"input_ids": ids, "labels": [-100, *ids[1:]]})
    return PackingCollator(tokenizer.pad_token_id)(examples)


def loss_and_grads(model, compute):
    model.zero_grad(set_to_none=True)
    loss = compute()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads


def assert_same(reference, candidate, atol=1e-5):
    (ref_loss, ref_grads), (loss, grads) = reference, candidate
    assert torch.allclose(loss, ref_loss, atol=atol)
    assert ref_grads.keys() == grads.keys()
    for name, grad in grads.items():
        assert torch.allclose(grad, ref_grads[name], atol=atol), name


def test_count_label_tokens(padded_batch):
    # Rows train positions 3..12 and 3..8; the shift never drops them since position 0 is untrained.
    assert count_label_tokens(padded_batch["labels"]) == 10 + 6
    assert count_label_tokens(torch.tensor([[5, 6, -100, 7]])) == 2


@pytest.mark.parametrize("chunk_size", [1, 7, 1024])
def test_chunked_loss_and_grads_match_hf_and_plain(tiny_llama, padded_batch, chunk_size, monkeypatch):
    monkeypatch.setattr(lce_module, "CHUNK_TOKENS", chunk_size)
    reference = loss_and_grads(tiny_llama, lambda: tiny_llama(**padded_batch).loss)
    assert_same(reference, loss_and_grads(tiny_llama, lambda: plain_causal_lm_loss(tiny_llama, padded_batch)))
    chunked = loss_and_grads(tiny_llama, lambda: causal_lm_loss(tiny_llama, padded_batch, chunk_size=chunk_size))
    assert_same(reference, chunked)


def test_num_label_tokens_sets_the_denominator(tiny_llama, padded_batch):
    with torch.no_grad():
        mean = causal_lm_loss(tiny_llama, padded_batch, chunk_size=7)
        window = causal_lm_loss(tiny_llama, padded_batch, num_label_tokens=64, chunk_size=7)
    assert torch.allclose(window, mean * count_label_tokens(padded_batch["labels"]) / 64, atol=1e-6)


def test_batch_without_trained_tokens_gives_zero_and_backpropagates(tiny_llama, padded_batch):
    batch = {**padded_batch, "labels": torch.full_like(padded_batch["labels"], -100)}
    loss = causal_lm_loss(tiny_llama, batch)
    loss.backward()
    assert loss.item() == 0.0


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_packed_batch_matches_plain_and_hf(tiny_llama, packed_batch, attn_implementation):
    tiny_llama.set_attn_implementation(attn_implementation)
    reference = loss_and_grads(tiny_llama, lambda: tiny_llama(**packed_batch, use_cache=False).loss)
    assert_same(reference, loss_and_grads(tiny_llama, lambda: plain_causal_lm_loss(tiny_llama, packed_batch)))
    assert_same(reference, loss_and_grads(tiny_llama, lambda: causal_lm_loss(tiny_llama, packed_batch, chunk_size=7)))


def test_lora_model_keeps_adapters_active_and_trains_them(tiny_llama, padded_batch):
    from peft import LoraConfig, get_peft_model

    # Random B (not the zero init) so the adapters change the output and both A and B get gradients.
    config = LoraConfig(target_modules=["q_proj", "v_proj"], r=4, init_lora_weights=False)
    model = get_peft_model(tiny_llama, config)
    reference = loss_and_grads(model, lambda: plain_causal_lm_loss(model, padded_batch))
    chunked = loss_and_grads(model, lambda: causal_lm_loss(model, padded_batch, chunk_size=7))
    assert_same(reference, chunked)
    assert chunked[1] and all("lora_" in name for name in chunked[1])
    assert all(grad.abs().sum() > 0 for grad in chunked[1].values())
    with torch.no_grad(), model.disable_adapter():
        base = causal_lm_loss(model, padded_batch)
    assert not torch.allclose(base, chunked[0], atol=1e-4)


@pytest.mark.filterwarnings("ignore:Model has `tie_word_embeddings=True`")
@pytest.mark.parametrize("chunk_size", [3, 1024])
def test_adapted_head_takes_the_checkpointed_path(tiny_llama, padded_batch, chunk_size, monkeypatch):
    from peft import LoraConfig, get_peft_model

    fused = []
    monkeypatch.setattr(loss_module, "linear_cross_entropy", lambda *args: fused.append(args))
    config = LoraConfig(target_modules=["q_proj", "lm_head"], r=4, init_lora_weights=False)
    model = get_peft_model(tiny_llama, config)
    reference = loss_and_grads(model, lambda: plain_causal_lm_loss(model, padded_batch))
    assert_same(reference, loss_and_grads(model, lambda: causal_lm_loss(model, padded_batch, chunk_size=chunk_size)))
    assert not fused


def test_lora_model_with_packed_batch(tiny_llama, packed_batch):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama, LoraConfig(target_modules=["q_proj", "v_proj"], r=4, init_lora_weights=False))
    reference = loss_and_grads(model, lambda: plain_causal_lm_loss(model, packed_batch))
    assert_same(reference, loss_and_grads(model, lambda: causal_lm_loss(model, packed_batch, chunk_size=7)))


def test_prompt_tuning_falls_back_to_the_plain_path(tiny_llama, padded_batch, packed_batch):
    from peft import PromptTuningConfig, get_peft_model

    model = get_peft_model(tiny_llama, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3))
    reference = loss_and_grads(model, lambda: model(**padded_batch).loss)
    assert_same(reference, loss_and_grads(model, lambda: causal_lm_loss(model, padded_batch, chunk_size=7)))
    with pytest.raises(ConfigError, match="packing"):
        causal_lm_loss(model, packed_batch)


def test_models_that_transform_logits_take_the_plain_path(tiny_llama, padded_batch, monkeypatch):
    calls = []
    monkeypatch.setattr(loss_module, "plain_causal_lm_loss", lambda *args: calls.append(args) or torch.tensor(0.0))
    causal_lm_loss(tiny_llama, padded_batch)
    assert not calls
    tiny_llama.config.final_logit_softcapping = 30.0
    causal_lm_loss(tiny_llama, padded_batch)
    assert len(calls) == 1
