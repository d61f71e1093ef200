import pytest
import torch

from tunesmith.data.packing import PackingCollator
from tunesmith.tasks.causal_lm import cpu_attention as attention_module
from tunesmith.tasks.causal_lm.cpu_attention import NAME, cpu_attention


def padded(tokenizer, lengths=(11, 6, 9)):
    generator = torch.Generator().manual_seed(4)
    width = max(lengths)
    input_ids = torch.full((len(lengths), width), tokenizer.pad_token_id)
    attention_mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = torch.randint(0, len(tokenizer), (length,), generator=generator)
        attention_mask[row, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def packed(tokenizer):
    generator = torch.Generator().manual_seed(5)
    examples = [{"input_ids": torch.randint(0, len(tokenizer), (n,), generator=generator).tolist(), "labels": [1] * n}
                for n in (5, 8, 4)]
    batch = PackingCollator(tokenizer.pad_token_id)(examples)
    return {key: batch[key] for key in ("input_ids", "position_ids")}


def unpadded(tokenizer):
    return {"input_ids": padded(tokenizer, (10, 10))["input_ids"]}


def logits_and_grads(model, batch):
    model.zero_grad(set_to_none=True)
    logits = model(**batch, use_cache=False).logits
    mask = batch.get("attention_mask", torch.ones_like(batch["input_ids"]))[..., None]
    (logits * mask).square().mean().backward()
    return logits.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("make_batch", [padded, packed, unpadded])
@pytest.mark.parametrize("max_scores", [attention_module.MAX_SCORES, 0])  # three-op form, then SDPA fallback
def test_same_logits_and_gradients_as_sdpa(tiny_llama, tokenizer, make_batch, max_scores, monkeypatch):
    monkeypatch.setattr(attention_module, "MAX_SCORES", max_scores)
    batch = make_batch(tokenizer)
    tiny_llama.train()
    reference_logits, reference_grads = logits_and_grads(tiny_llama, batch)
    fused_calls = []
    sdpa = attention_module.sdpa_attention_forward
    monkeypatch.setattr(attention_module, "sdpa_attention_forward", lambda *a, **k: fused_calls.append(1) or sdpa(*a, **k))
    with cpu_attention(tiny_llama, torch.device("cpu")) as active:
        assert active and tiny_llama.config._attn_implementation == NAME
        logits, grads = logits_and_grads(tiny_llama, batch)
    assert tiny_llama.config._attn_implementation == "sdpa"
    calls_per_layer = 3 if make_batch is packed else 1  # a packed row is attended example by example
    assert len(fused_calls) == (0 if max_scores else calls_per_layer * tiny_llama.config.num_hidden_layers)
    real = batch.get("attention_mask", torch.ones_like(batch["input_ids"])).bool()
    torch.testing.assert_close(logits[real], reference_logits[real], atol=1e-5, rtol=1e-4)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, reference_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_three_op_form_runs_under_bf16_autocast(tiny_llama, tokenizer):
    batch = padded(tokenizer)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = tiny_llama(**batch).logits.float()
        with cpu_attention(tiny_llama, torch.device("cpu")):
            logits = tiny_llama(**batch).logits.float()
    real = batch["attention_mask"].bool()
    assert (logits[real] - reference[real]).abs().max() < 0.05 * reference.abs().max()


def test_other_devices_and_implementations_are_left_alone(tiny_llama):
    with cpu_attention(tiny_llama, torch.device("cuda")) as active:
        assert not active and tiny_llama.config._attn_implementation == "sdpa"
    tiny_llama.set_attn_implementation("eager")
    with cpu_attention(tiny_llama, torch.device("cpu")) as active:
        assert not active and tiny_llama.config._attn_implementation == "eager"


def test_softmax_keeps_only_its_output_and_matches_torch():
    weights = torch.randn(2, 3, 5, 7)
    grads = []
    for softmax in (lambda s: torch.softmax(s, dim=-1), lambda s: attention_module._Softmax.apply(s, torch.float32)):
        scores = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0), requires_grad=True)
        (softmax(scores) * weights).sum().backward()
        grads.append(scores.grad)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-6, rtol=1e-5)

    scores = torch.randn(2, 3, 5, 7, dtype=torch.bfloat16, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        probs = attention_module._Softmax.apply(scores, torch.bfloat16)
    assert [t.dtype for t in saved] == [torch.bfloat16]  # no float32 copy of the probabilities
    reference = torch.softmax(scores.float(), dim=-1)
    torch.testing.assert_close(probs.float(), reference, atol=1e-2, rtol=1e-2)
